"""The `openai` embedder: OpenAI's embeddings endpoint (or any server speaking its wire format).

Requests stay within OpenAI's published limits: at most 2,048 inputs and 300,000 tokens summed per
request, and 8,191 tokens per input, all counted with cl100k_base (the tokenizer of every OpenAI
embedding model) before anything is sent, so an over-long text fails here with the text named,
never as an opaque 400 from upstream.

Truncation (`embed(..., truncate=True)`) cuts the token ids at 8,191 and sends the decoded text,
not the token ids: OpenAI accepts token arrays but many OpenAI-compatible servers do not, and text
works everywhere. A cut can fall inside a multi-byte character or re-tokenise differently, so the
decoded text is counted again and trimmed until it fits.

Vectors are requested as base64 (4 bytes a value instead of ~20 characters of JSON) and decoded
straight into float32.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence

import numpy as np
import openai

from rag.config import Settings
from rag.embeddings.base import Embedder, TooLong
from rag.errors import ConfigError, UpstreamMalformed, UpstreamUnavailable
from rag.openai_client import call_with_retries, make_client, translate_openai_error
from rag.tokens import DEFAULT_ENCODING, get_encoding
from rag.upstream_replies import embedding_rows

__all__ = ["KNOWN_DIMENSIONS", "MAX_INPUTS_PER_REQUEST", "MAX_TOKENS_PER_REQUEST", "OpenAIEmbedder"]

MAX_INPUTS_PER_REQUEST = 2_048
MAX_TOKENS_PER_REQUEST = 300_000
MAX_INPUT_TOKENS = 8_191

KNOWN_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
"""Native output size of OpenAI's embedding models; any other model is measured by one probe."""
_SHORTENABLE = ("text-embedding-3-small", "text-embedding-3-large")
_PROBE_TEXT = "dimension probe"


class OpenAIEmbedder(Embedder):
    """Embeds through `client.embeddings.create`, in requests packed up to OpenAI's limits.

    `dim` is known without a call for OpenAI's own models (or when `dimensions` is given); for any
    other model name (an OpenAI-compatible server's model) it is measured lazily, by embedding one
    short probe text the first time `dim` is read.
    """

    kind = "openai"
    max_input_tokens = MAX_INPUT_TOKENS
    # The base class slices distinct texts into batches of this many; `_embed_batch` then packs
    # each slice into requests that also respect the per-request token budget.
    batch_size = MAX_INPUTS_PER_REQUEST

    def __init__(self, client: openai.OpenAI, model: str = "text-embedding-3-small",
                 dimensions: int | None = None) -> None:
        if dimensions is not None:
            if dimensions < 1:
                raise ConfigError(f"RAG_OPENAI_EMBEDDING_DIMENSIONS must be positive, got {dimensions}")
            native = KNOWN_DIMENSIONS.get(model)
            if model in KNOWN_DIMENSIONS and model not in _SHORTENABLE:
                raise ConfigError(
                    f"{model} cannot shorten its vectors; unset RAG_OPENAI_EMBEDDING_DIMENSIONS")
            if native is not None and dimensions > native:
                raise ConfigError(f"{model} makes at most {native} dimensions, "
                                  f"RAG_OPENAI_EMBEDDING_DIMENSIONS asks for {dimensions}")
        self.client = client
        self.model_id = model
        self.dimensions = dimensions
        self._dim: int | None = dimensions or KNOWN_DIMENSIONS.get(model)
        self._encoding = get_encoding(DEFAULT_ENCODING)

    @classmethod
    def from_settings(cls, settings: Settings, *, client: openai.OpenAI | None = None) -> OpenAIEmbedder:
        """The embedder RAG_OPENAI_EMBEDDING_MODEL / _DIMENSIONS name; needs OPENAI_API_KEY."""
        return cls(client or make_client(settings), settings.openai_embedding_model,
                   settings.openai_embedding_dimensions)

    # The base class declares `dim` as a plain attribute; here it is learnt from the first reply.
    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self._dim = int(self._request([_PROBE_TEXT]).shape[1])
        return self._dim

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self._encode(list(texts))]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        # Special-token strings such as "<|endoftext|>" are ordinary text in a document. One text at
        # a time: tiktoken's encode_batch starts a pool of eight threads on every call, which costs
        # more than the encoding when the chunker counts one document's chunks (and embedding
        # calls already run side by side).
        return [self._encoding.encode(text, disallowed_special=()) for text in texts]

    def _truncated(self, ids: list[int]) -> tuple[str, int]:
        """Text of the first `max_input_tokens` tokens, and its token count once re-encoded."""
        limit = self.max_input_tokens
        while True:
            text = self._encoding.decode(ids[:limit], errors="ignore")
            count = len(self._encoding.encode(text, disallowed_special=()))
            if count <= self.max_input_tokens:
                return text, count
            limit -= count - self.max_input_tokens

    def _embed_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        sized: list[tuple[str, int]] = []
        for position, (text, ids) in enumerate(zip(texts, self._encode(texts), strict=True)):
            if len(ids) <= self.max_input_tokens:
                sized.append((text, len(ids)))
            elif truncate:
                sized.append(self._truncated(ids))
            else:
                raise TooLong(position, len(ids))
        parts = [self._request(request) for request in _pack(sized)]
        return np.concatenate(parts) if parts else np.empty((0, self.dim), np.float32)

    def _request(self, inputs: list[str]) -> np.ndarray:
        """One embeddings call; rows in input order whatever order the server answers in."""
        options: dict = {"model": self.model_id, "input": inputs, "encoding_format": "base64"}
        if self.dimensions is not None:
            options["dimensions"] = self.dimensions
        try:
            raw = call_with_retries(self.client, lambda c: c.embeddings.with_raw_response.create(**options))
            # The raw reply, held to the shape asked for (rag.upstream_replies): the SDK checks nothing.
            embeddings = embedding_rows(raw.http_response, len(inputs))
        except openai.OpenAIError as e:
            raise translate_openai_error(e) from e
        try:
            rows = [_decode(embedding) for embedding in embeddings]
        except ValueError as e:
            raise UpstreamMalformed(f"{self.model_id} answered an embedding that cannot be decoded: {e}") from None
        width = {row.shape[0] for row in rows}
        if len(width) != 1 or (self._dim is not None and width != {self._dim}):
            raise UpstreamUnavailable(
                f"{self.model_id} answered vectors of {sorted(width)} dimensions, expected {self._dim}")
        return np.stack(rows)


def _decode(embedding: str | list[float]) -> np.ndarray:
    # base64 as asked; a server that ignores encoding_format may still answer floats.
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding, validate=True)
        if not raw or len(raw) % 4:
            raise ValueError(f"{len(raw)} bytes of base64 are not float32 values")
        return np.frombuffer(raw, dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def _pack(sized: list[tuple[str, int]]) -> Iterator[list[str]]:
    """Consecutive runs of texts, each within the per-request input and token limits."""
    batch: list[str] = []
    tokens = 0
    for text, count in sized:
        if batch and (len(batch) == MAX_INPUTS_PER_REQUEST or tokens + count > MAX_TOKENS_PER_REQUEST):
            yield batch
            batch, tokens = [], 0
        batch.append(text)
        tokens += count
    if batch:
        yield batch

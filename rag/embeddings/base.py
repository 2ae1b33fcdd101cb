"""The embedder interface. Input checks, batching, de-duplication and normalisation live here once;
an implementation only turns one batch of distinct, non-empty texts into vectors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.errors import InputTooLong, InvalidInput


@dataclass(frozen=True)
class EmbedderSpec:
    """What a collection is bound to: vectors from different specs must never be mixed."""

    kind: str
    """`local`, `local-int8` or `openai`."""
    model_id: str
    dim: int


class TooLong(Exception):
    """Raised by `_embed_batch` for the text at `position` of its batch (internal)."""

    def __init__(self, position: int, tokens: int):
        super().__init__(position, tokens)
        self.position = position
        self.tokens = tokens


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors of shape (n, dim).

    Over-long input is never silent: `embed(texts)` raises `InputTooLong` naming the text, and
    `embed(texts, truncate=True)` keeps only the first `max_input_tokens` tokens, as the model
    itself would read them (what a search query wants).
    """

    kind: str
    model_id: str
    dim: int
    max_input_tokens: int
    """Longest input the model reads, in its own tokens (special tokens included)."""
    batch_size: int = 32
    parallel_calls: int | None = None
    """How many `embed` calls are worth running at once: None for as many as the caller allows
    (a remote service answers requests side by side); 1 for a model that already keeps every core
    busy with one call."""

    @property
    def spec(self) -> EmbedderSpec:
        return EmbedderSpec(self.kind, self.model_id, self.dim)

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in the model's own tokens, untruncated."""

    @abstractmethod
    def _embed_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        """Vectors (len(texts), dim) for distinct non-empty texts; raise `TooLong` if not truncating."""

    def embed(self, texts: Sequence[str], *, truncate: bool = False) -> np.ndarray:
        if isinstance(texts, str):
            raise InvalidInput("embed() takes a sequence of texts, not one string", param="input")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"text {i} is {type(text).__name__}, not a string", param="input")
            if not text.strip():
                raise InvalidInput(f"text {i} is empty; there is nothing to embed", param="input")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Identical texts are embedded once: re-ingests and duplicate passages are common.
        unique: dict[str, int] = {}
        for text in texts:
            unique.setdefault(text, len(unique))
        distinct = list(unique)
        vectors = np.empty((len(distinct), self.dim), dtype=np.float32)
        for start in range(0, len(distinct), self.batch_size):
            batch = distinct[start : start + self.batch_size]
            try:
                got = self._embed_batch(batch, truncate)
            except TooLong as e:
                text = batch[e.position]
                first = texts.index(text)
                raise InputTooLong(
                    f"text {first} has {e.tokens} tokens; {self.model_id} reads at most "
                    f"{self.max_input_tokens} (split it, or embed with truncation)", param="input"
                ) from None
            got = np.asarray(got, dtype=np.float32)
            if got.shape != (len(batch), self.dim):
                raise RuntimeError(f"{self.model_id} returned shape {got.shape}, expected {(len(batch), self.dim)}")
            vectors[start : start + len(batch)] = got
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.maximum(norms, 1e-12)
        out[:] = vectors[[unique[t] for t in texts]]
        return out

    def embed_one(self, text: str, *, truncate: bool = True) -> np.ndarray:
        """One vector of shape (dim,); truncates by default, as a query should be."""
        return self.embed([text], truncate=truncate)[0]

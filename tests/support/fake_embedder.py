"""A deterministic embedder for tests about plumbing, not meaning (kind `fake`).

Every whitespace-separated word, lower-cased and stripped of punctuation, is hashed to one of
`DIM` coordinates with a sign (feature hashing); a text's vector is the sum over its words,
L2-normalised by the `Embedder` base. Texts that share words point the same way, so retrieval
order follows word overlap: enough to test ranking, filters, fusion, citations and routes in
milliseconds, with no model to load. Like a real model it has a token limit and counts exactly:
one token per word plus the two markers a BERT-style model adds around a text.

`register()` makes the kind available to `Service`; the suite's conftest does it once per session,
so `Settings(embedder="fake")` or `create_collection(name, embedder="fake")` works in every test.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from rag.embeddings import register_embedder
from rag.embeddings.base import Embedder, TooLong
from rag.errors import InvalidInput

__all__ = ["DIM", "KIND", "MAX_INPUT_TOKENS", "MODEL_ID", "SPECIAL_TOKENS", "FakeEmbedder", "register"]

KIND = "fake"
MODEL_ID = "fake-hashed-words"
DIM = 64
MAX_INPUT_TOKENS = 512
SPECIAL_TOKENS = 2
"""Tokens added to every text, as [CLS] and [SEP] are by MiniLM: an empty text counts 2."""


def feature(word: str) -> str:
    """What a word contributes: "Panels," and "panels" are the same feature."""
    lowered = word.lower()
    return re.sub(r"\W+", "", lowered) or lowered


def coordinate(feature_: str) -> tuple[int, float]:
    """The coordinate and sign a feature adds to; a stable hash, so vectors never change between
    runs or processes (Python's own `hash` is salted per process)."""
    value = int.from_bytes(hashlib.blake2b(feature_.encode(), digest_size=8).digest(), "little")
    return value % DIM, 1.0 if (value >> 32) & 1 else -1.0


class FakeEmbedder(Embedder):
    """Hashed bag of words, `DIM` dimensions, at most `MAX_INPUT_TOKENS` tokens per text."""

    kind = KIND
    model_id = MODEL_ID
    dim = DIM
    max_input_tokens = MAX_INPUT_TOKENS

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if isinstance(texts, str):
            raise InvalidInput("count_tokens() takes a sequence of texts, not one string", param="input")
        return [len(text.split()) + SPECIAL_TOKENS for text in texts]

    def _embed_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = text.split()
            tokens = len(words) + SPECIAL_TOKENS
            if tokens > self.max_input_tokens:
                if not truncate:
                    raise TooLong(row, tokens)
                words = words[: self.max_input_tokens - SPECIAL_TOKENS]
            for word in words:
                index, sign = coordinate(feature(word))
                vectors[row, index] += sign
            if not vectors[row].any():
                # Signed words can cancel out; a zero vector cannot be normalised, so fall back
                # to the whole text as one feature.
                index, sign = coordinate(" ".join(words))
                vectors[row, index] = sign
        return vectors


def register() -> None:
    """Make kind `fake` available to every `Service` in this process."""
    register_embedder(KIND, lambda settings, client: FakeEmbedder())

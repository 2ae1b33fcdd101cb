"""Vectors of the texts the offline answerer compares, remembered between answers.

The extractive answerer embeds every sentence, row and item of the passages it reads, and that is
nearly all of its time: on a 2-core machine a few hundred milliseconds a question. The same
passages come back for related questions (a collection's FAQ, its annual report), so their units'
vectors are kept, least recently used dropped first. A vector depends only on the text and the
embedder, so a remembered one is the one that would be computed: answers do not change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from rag.embeddings import Embedder
from rag.embeddings.base import EmbedderSpec

__all__ = ["MemoEmbedder", "VectorMemo"]

DEFAULT_ENTRIES = 20_000
"""About 30 MB of 384-dimension float32 vectors: the units of a few thousand passages."""


class VectorMemo:
    """Vectors by (embedder, text), at most `entries` of them; safe to share between threads."""

    def __init__(self, entries: int = DEFAULT_ENTRIES):
        if entries < 0:
            raise ValueError("entries must be 0 or more")
        self.entries = entries
        self._vectors: OrderedDict[tuple[EmbedderSpec, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        """`embedder.embed(texts, truncate=True)`, computing only the texts not remembered."""
        spec = embedder.spec
        out = np.empty((len(texts), embedder.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                vector = self._vectors.get((spec, text))
                if vector is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._vectors.move_to_end((spec, text))
                    out[i] = vector
        if missing:
            fresh = embedder.embed(list(missing), truncate=True)
            with self._lock:
                for (text, rows), vector in zip(missing.items(), fresh, strict=True):
                    out[rows] = vector
                    if self.entries:
                        # A copy: a row of the batch would keep the whole batch's array alive.
                        self._vectors[(spec, text)] = vector.copy()
                        self._vectors.move_to_end((spec, text))
                while len(self._vectors) > self.entries:
                    self._vectors.popitem(last=False)
        return out


class MemoEmbedder:
    """An embedder's `embed`/`embed_one`/`dim`, answered through a `VectorMemo`."""

    def __init__(self, embedder: Embedder, memo: VectorMemo):
        self.embedder = embedder
        self.memo = memo
        self.dim = embedder.dim

    def embed(self, texts: Sequence[str], *, truncate: bool = True) -> np.ndarray:
        if not truncate:
            raise ValueError("the memo holds truncated vectors only")
        return self.memo.embed(self.embedder, texts)

    def embed_one(self, text: str) -> np.ndarray:
        return self.memo.embed(self.embedder, [text])[0]

"""The benchmarks' embedder (kind `bench`): precomputed MiniLM vectors for known texts, a
deterministic hash vector for any other, so query embedding costs microseconds and is left out of
search timings (it is timed apart, with the real model).

Known texts are SciFact's train queries with their real all-MiniLM-L6-v2 vectors: a dense search
for one of them is the search a user would run, and recall against exact search is measured with
real query vectors. Any other text (an uploaded document, a query not in the table) gets a unit
vector seeded by its sha256, like the house issue's `fake` embedder: the upload path is timed
without a model in it.

`register()` makes the kind known to the `Service`s of this process; `python -m bench.serve` is
`rag serve` with it registered (the plugin hook a server needs to open a `bench` collection).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rag.embeddings import register_embedder
from rag.embeddings.base import Embedder, TooLong

__all__ = ["DIM", "KIND", "LookupEmbedder", "register", "TABLE_ENV"]

KIND = "bench"
MODEL_ID = "all-MiniLM-L6-v2+bench-lookup"
DIM = 384
TABLE_ENV = "RAG_BENCH_QUERY_TABLE"
"""A .npz with `texts` and `vectors`: the table a server process loads (set by the bench)."""


def hash_vector(text: str, dim: int = DIM) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class LookupEmbedder(Embedder):
    """Table lookup, else a hash vector; one token a word (plus two markers), at most 256."""

    kind = KIND
    model_id = MODEL_ID
    dim = DIM
    max_input_tokens = 256
    batch_size = 256

    def __init__(self, table: Mapping[str, np.ndarray]):
        self._table = dict(table)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) + 2 for text in texts]

    def _embed_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            if not truncate and len(text.split()) + 2 > self.max_input_tokens:
                raise TooLong(row, len(text.split()) + 2)
            known = self._table.get(text)
            out[row] = known if known is not None else hash_vector(text, self.dim)
        return out


def save_table(path: Path, texts: Sequence[str], vectors: np.ndarray) -> None:
    np.savez(path, texts=np.asarray(list(texts)), vectors=np.asarray(vectors, dtype=np.float32))


def load_table(path: Path | None) -> dict[str, np.ndarray]:
    if path is None:
        return {}
    data = np.load(path)
    return dict(zip(data["texts"].tolist(), data["vectors"], strict=True))


def register(table: Mapping[str, np.ndarray] | None = None) -> None:
    """Make kind `bench` available; without `table`, the one named by RAG_BENCH_QUERY_TABLE."""
    if table is None:
        raw = os.environ.get(TABLE_ENV, "").strip()
        table = load_table(Path(raw) if raw else None)
    embedder = LookupEmbedder(table)
    register_embedder(KIND, lambda settings, client: embedder)

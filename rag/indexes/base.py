"""What retrieval and the writer ask of a search index: one protocol for words, one for vectors.

Both kinds are derived from the store (the truth) and follow its commits: the writer hands each
committed `ChunkChange` to `apply`, `save` persists what a batch of writes built, `forget` drops a
deleted collection, and `load` brings a collection's index up to the store's change number (so a
write made by another process is seen, and this process's later writes are followed in memory).
An index kept inside the store's own transactions (say, a full-text table maintained by triggers)
has nothing to do in those; one kept outside (FAISS files, tantivy, pgvector) does its work there.

Scores: higher is better, and each implementation keeps its own scale (cosine for dense, BM25
for lexical); hybrid retrieval min-max scales each list before fusing them.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from rag.records import ChunkChange, Collection

__all__ = ["DenseIndex", "LexicalIndex", "Ranking"]

Ranking = list[tuple[int, float]]
"""(chunk id, score) pairs, best first."""


class LexicalIndex(Protocol):
    """Search a collection's chunks by the words of a query."""

    def search(self, collection: Collection, query: str, k: int, allowed: np.ndarray | None = None, *,
               filter: dict[str, list] | None = None) -> Ranking:
        """The top `k` chunks for the user's words `query` (the index parses them its own way: no
        query syntax reaches it from the user). `filter` (a metadata filter as
        `rag.filters.validate_filter` returns it: keys ANDed, values ORed) and `allowed` (int64
        chunk ids) restrict the chunks searched; an empty `allowed` finds nothing. A query with no
        searchable word finds nothing."""
        ...

    def load(self, collection: Collection) -> int:
        """Bring the collection's index up to the store now; returns how many chunks it holds."""
        ...

    def apply(self, collection: Collection, change: ChunkChange) -> None:
        """Follow one change this process committed to the store. Called whether or not `load`
        ran first: an index not loaded follows the change log at its next catch-up."""
        ...

    def save(self, collection: Collection) -> None:
        """Persist the collection's index after a batch of writes."""
        ...

    def forget(self, collection_id: int) -> None:
        """Drop a collection's index (the collection was deleted, or is to be rebuilt)."""
        ...

    def saved_stamp(self, collection_id: int) -> int | None:
        """The change number the index kept on disk reflects (what every process can restart
        from), or None when there is none; the store's change log before it may be trimmed."""
        ...


class DenseIndex(Protocol):
    """Search a collection's chunks by the similarity of their vectors to a query vector."""

    @property
    def loaded(self) -> int:
        """How many collections' indexes this process holds in memory."""
        ...

    def search(self, collection: Collection, vector: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> Ranking:
        """The top `k` chunks by cosine similarity to `vector` (float32, L2-normalised, the
        collection's dimension). `allowed` (int64 chunk ids) restricts the chunks searched; an
        empty `allowed` finds nothing."""
        ...

    def vectors_of(self, collection: Collection, chunk_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, float32 vectors) of those of `chunk_ids` that exist, in id order: the stored
        vectors exactly (a hybrid search scores the hits only its lexical half found with them)."""
        ...

    def load(self, collection: Collection) -> int:
        """Bring the collection's index up to the store now; returns how many vectors it holds."""
        ...

    def apply(self, collection: Collection, change: ChunkChange, added_vectors: np.ndarray | None = None) -> None:
        """Follow one change this process committed to the store; `added_vectors` are the vectors
        of `change.added_chunk_ids`, in that order."""
        ...

    def save(self, collection: Collection) -> None:
        """A batch of writes ended (a bulk ingest): persist the collection's index if enough
        changed. Nothing needs saving per request: every change is in the store's log, which a
        restart replays."""
        ...

    def forget(self, collection_id: int) -> None:
        """Drop a collection's index (the collection was deleted, or is to be rebuilt)."""
        ...

    def saved_stamp(self, collection_id: int) -> int | None:
        """As `LexicalIndex.saved_stamp`: the change number of the checkpoint on disk, or None."""
        ...

    def close(self) -> None:
        """Shutting down: stop background work and persist what a restart would otherwise replay."""
        ...

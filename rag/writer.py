"""Writes into one collection: the store and the derived indexes changed together.

`Service.writer(collection)` makes one; the ingest pipeline and the upload worker write through it
and never see the store or the indexes. Every write commits to the store first (the truth) and then
moves this process's indexes along (dense and lexical alike), so a crash between the two leaves an
index that is merely stale and is rebuilt on next use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.chunking import Chunker
from rag.embeddings import Embedder
from rag.indexes import DenseIndex, LexicalIndex
from rag.limits import InputLimits
from rag.records import ChunkChange, ChunkDraft, Collection, Document, DocumentDraft
from rag.store import Store

__all__ = ["CollectionWriter", "KnownDocument"]


@dataclass(frozen=True)
class KnownDocument:
    """What the store holds at a source: enough to tell an unchanged document from a changed one."""

    id: int
    content_hash: str
    status: str


class CollectionWriter:
    """Document writes into one collection with the embedder and chunker it was built with."""

    def __init__(self, store: Store, dense: DenseIndex, lexical: LexicalIndex, collection: Collection,
                 embedder: Embedder, *, embed_concurrency: int = 1, limits: InputLimits | None = None):
        collection.check_embedder(embedder.spec)
        self.embed_concurrency = embed_concurrency
        """How many embedding calls an ingest may have in flight at once (RAG_EMBED_CONCURRENCY)."""
        self.limits = limits or InputLimits()
        """What one document may hold (RAG_MAX_DOCUMENT_TOKENS): the pipeline checks before chunking."""
        self._store = store
        self._dense = dense
        self._lexical = lexical
        self.collection = collection
        self.embedder = embedder
        self.chunker = Chunker(collection.chunk_size, collection.chunk_overlap,
                               embedder_limit=embedder.max_input_tokens, embedder_count=embedder.count_tokens)

    def known(self, sources: Iterable[str]) -> dict[str, KnownDocument]:
        """The documents the collection holds at those of `sources` it has, by source (one index
        probe per source: an ingest costs what it touches, not what the collection holds)."""
        return {src: KnownDocument(i, h, st)
                for src, (i, h, st) in self._store.document_hashes(self.collection.id, sources).items()}

    def known_under(self, prefixes: Iterable[str]) -> dict[str, KnownDocument]:
        """Every document whose source starts with one of `prefixes` (a prune of the folders an
        ingest walked reads those, and nothing else of the collection)."""
        return {src: KnownDocument(i, h, st)
                for src, (i, h, st) in self._store.document_hashes_under(self.collection.id, prefixes).items()}

    def open_index(self) -> None:
        """Load (or rebuild) the dense index once, so later writes follow it in memory. The lexical
        index is not waited for: it catches up from the store's change log when `save` asks, off
        the writer's path (a catch-up here would put a commit's fsyncs in every upload)."""
        self._dense.load(self.collection)

    def put_document(self, *, source: str, content_hash: str, title: str | None, text: str, metadata: dict,
                     chunks: Sequence[ChunkDraft], vectors: np.ndarray, expect_id: int | None = None) -> int:
        """Insert or replace the document at `source` with its chunks in one transaction; returns its id.
        With `expect_id` the document must still be the one queued under that id (see `Store.put_document`)."""
        change = self._store.put_document(
            self.collection.id, source=source, content_hash=content_hash, title=title, text_=text,
            metadata=metadata, chunks=chunks, vectors=vectors, dim=self.embedder.dim, expect_id=expect_id)
        self._dense.apply(self.collection, change, vectors)
        self._lexical.apply(self.collection, change)
        return change.document_id

    def put_documents(self, drafts: Sequence[DocumentDraft]) -> list[int]:
        """Insert or replace several documents in one transaction (see `Store.put_documents`), then
        move the indexes along document by document; returns their ids, in order."""
        changes = self._store.put_documents(self.collection.id, drafts, dim=self.embedder.dim)
        for draft, change in zip(drafts, changes, strict=True):
            self._dense.apply(self.collection, change, draft.vectors)
            self._lexical.apply(self.collection, change)
        return [change.document_id for change in changes]

    def put_failed_document(self, *, source: str, content_hash: str, error: str) -> int:
        return self._store.put_failed_document(self.collection.id, source=source, content_hash=content_hash,
                                               error=error)

    def delete_documents(self, document_ids: Sequence[int], *, missing_ok: bool = False) -> list[int]:
        """Delete documents and their chunks; returns the removed chunk ids."""
        removed, stamp = self._store.delete_documents(self.collection.id, document_ids, missing_ok=missing_ok)
        change = ChunkChange(removed, [], stamp)
        self._dense.apply(self.collection, change)
        self._lexical.apply(self.collection, change)
        return removed

    def save_index(self) -> None:
        """Persist the indexes after a batch of writes."""
        self._dense.save(self.collection)
        self._lexical.save(self.collection)

    # -- the upload queue's bookkeeping -------------------------------------------------------------

    def queue_document(self, *, source: str, content_hash: str, title: str | None, text: str, metadata: dict,
                       owner: str) -> int:
        return self._store.queue_document(self.collection.id, source=source, content_hash=content_hash,
                                          title=title, text_=text, metadata=metadata, owner=owner)

    def fail_document(self, document_id: int, error: str) -> bool:
        """A queued document's ingest failed: a re-upload keeps its previous version ready, a new
        document becomes `failed` (`Store.fail_document`). False when it no longer exists."""
        return self._store.fail_document(document_id, error)

    def set_status(self, document_id: int, status: str, error: str | None = None) -> bool:
        """False when the document no longer exists (deleted while queued)."""
        return self._store.set_status(document_id, status, error)

    def document(self, document_id: int) -> Document:
        return self._store.get_document(self.collection.id, document_id, with_text=False)

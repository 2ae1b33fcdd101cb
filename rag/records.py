"""The plain records the store hands out and takes in: collections, documents, chunks, changes.

No database here: these are what the rest of the library (retrieval, the writer, the answerers,
the front ends) passes around, so they can be imported without SQLAlchemy's tables or a session.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.embeddings.base import EmbedderSpec
from rag.errors import EmbedderMismatch

__all__ = ["HEADING_CHARS", "STATUSES", "ChunkChange", "ChunkDraft", "ChunkText", "Collection", "Document",
           "DocumentDraft", "Replaced", "StoredChunk", "VectorScan", "heading_excerpt"]

STATUSES = ("queued", "processing", "ready", "failed")
"""A document's life: queued for the ingest worker, being processed, ready (searchable) or failed."""

HEADING_CHARS = 200
"""Longest heading the store keeps as a chunk's `section` or a document's `title`. Every chunk
carries its section, so an unbounded heading (a one-line text file without a full stop is one long
"title") made storage and search answers grow with chunks x heading length: the square of the file."""


def heading_excerpt(heading: str | None) -> str | None:
    """`heading` cut to HEADING_CHARS for display, a cut one ending in "…" (migration 0007 cuts
    stored rows the same way, in SQL)."""
    if heading is None or len(heading) <= HEADING_CHARS:
        return heading
    return heading[:HEADING_CHARS - 1] + "…"


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    embedder: EmbedderSpec
    chunk_size: int
    chunk_overlap: int
    change_number: int
    created_at: str
    documents: int = 0
    chunks: int = 0

    def to_dict(self) -> dict:
        """The collection as the API and `rag collections --json` show it."""
        return {"name": self.name,
                "embedder": {"kind": self.embedder.kind, "model": self.embedder.model_id, "dim": self.embedder.dim},
                "chunk_size": self.chunk_size, "chunk_overlap": self.chunk_overlap, "documents": self.documents,
                "chunks": self.chunks, "created_at": self.created_at}

    def check_embedder(self, spec: EmbedderSpec) -> None:
        """Refuse to mix vectors: a collection answers only to the embedder that built it."""
        if spec != self.embedder:
            raise EmbedderMismatch(
                f"collection {self.name!r} was built with {self.embedder.kind} embedder "
                f"{self.embedder.model_id} ({self.embedder.dim} dimensions); "
                f"{spec.kind} {spec.model_id} ({spec.dim}) cannot be used on it"
            )


@dataclass(frozen=True)
class Document:
    id: int
    collection_id: int
    source: str
    content_hash: str
    title: str | None
    status: str
    error: str | None
    metadata: dict
    created_at: str
    updated_at: str
    chunks: int = 0
    text: str | None = None

    def to_dict(self) -> dict:
        """The document as the API and `rag documents list --json` show it (text only if loaded)."""
        out = {"id": self.id, "source": self.source, "title": self.title, "status": self.status,
               "error": self.error, "metadata": self.metadata, "chunks": self.chunks,
               "content_hash": self.content_hash, "created_at": self.created_at, "updated_at": self.updated_at}
        if self.text is not None:
            out["text"] = self.text
        return out


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk before it is stored: the chunker makes these, the store gives them ids."""

    text: str
    token_count: int
    start_char: int
    end_char: int
    page: int | None = None
    section: str | None = None


@dataclass(frozen=True, kw_only=True)
class DocumentDraft:
    """A document ready to store: its chunks and their vectors (what one write puts in or replaces)."""

    source: str
    content_hash: str
    title: str | None
    text: str
    metadata: dict
    chunks: Sequence[ChunkDraft]
    vectors: np.ndarray
    """(len(chunks), dim) float32: row i is the vector of chunk i."""
    expect_id: int | None = None
    """The id the document was queued under (see `Store.put_documents`), or None."""


@dataclass(frozen=True)
class StoredChunk:
    id: int
    document_id: int
    text: str
    token_count: int
    start_char: int
    end_char: int
    page: int | None
    section: str | None
    source: str
    title: str | None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkText:
    """A chunk as a lexical index takes it: its words, and its document's metadata."""

    id: int
    text: str
    metadata: tuple[tuple[str, object], ...] = ()
    """(key, value) for each non-null top-level key, the value as SQLite's JSON functions read it
    (str, int for whole numbers and booleans, float, or the JSON text of an array or object)."""


@dataclass(frozen=True)
class ChunkChange:
    """One committed change to a collection's chunks: what the derived indexes must follow."""

    removed_chunk_ids: list[int]
    added_chunk_ids: list[int]
    change_number: int
    """The collection's change number after the commit (an index is stamped with it)."""


@dataclass(frozen=True, kw_only=True)
class Replaced(ChunkChange):
    """What a document write changed: its chunks, and which document it was."""

    document_id: int


@dataclass(frozen=True)
class VectorScan:
    """A collection's vectors, read a batch at a time (`Store.scan_vectors`)."""

    stamp: int
    """The collection's change number when the scan began: the batches hold every chunk committed
    by then (and still there), and may hold later ones."""
    count: int
    """How many chunks the collection held when the scan began."""
    batches: Iterator[tuple[np.ndarray, np.ndarray]]
    """(int64 chunk ids, float32 vectors (n, dim)) in id order, one batch at a time."""

"""The tables, as SQLAlchemy classes: what the store reads and writes through.

`rag.migrations` builds these tables in every database, step by step.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "ChunkRow", "CollectionRow", "DocumentRow", "IngestWorkerRow"]


class Base(DeclarativeBase):
    pass


class CollectionRow(Base):
    __tablename__ = "collections"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    embedder_kind: Mapped[str]
    embedder_model: Mapped[str]
    dim: Mapped[int]
    chunk_size: Mapped[int]
    chunk_overlap: Mapped[int]
    change_number: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[str]


class DocumentRow(Base):
    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    source: Mapped[str]
    content_hash: Mapped[str]
    title: Mapped[str | None]
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str]
    error: Mapped[str | None]
    metadata_json: Mapped[str] = mapped_column("metadata", Text, default="{}")
    created_at: Mapped[str]
    updated_at: Mapped[str]
    owner: Mapped[str | None] = mapped_column(default=None)
    """The ingest worker that queued this document (while it is queued or processing)."""


class IngestWorkerRow(Base):
    __tablename__ = "ingest_workers"
    id: Mapped[str] = mapped_column(primary_key=True)
    heartbeat_at: Mapped[float]


class ChunkRow(Base):
    __tablename__ = "chunks"
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    collection_id: Mapped[int]
    ordinal: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int]
    start_char: Mapped[int]
    end_char: Mapped[int]
    page: Mapped[int | None]
    section: Mapped[str | None]
    vector: Mapped[bytes] = mapped_column(LargeBinary)

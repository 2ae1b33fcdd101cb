"""The current schema, as SQLAlchemy table classes: what the store reads and writes through.

`rag.migrations` builds this schema step by step in every database, and a test migrates an empty
database and holds it equal to this metadata (columns, affinities, nullability, defaults, indexes,
unique and foreign keys). So a schema change is two edits that must agree: a new migration step,
and the classes here.

Written for SQLite as the migrations wrote it: `TEXT` columns, server-side defaults, AUTOINCREMENT
ids. (Migration 0001 also made an FTS5 table over chunk text, with triggers; 0005 dropped them when
lexical search moved to its own index, `rag.indexes.lexical_tantivy`.)

On PostgreSQL (`rag.migrations_postgres`) two columns take the engine's own types, through
`with_variant`: a chunk's vector is a pgvector `vector` (searched in the database, `rag.indexes.pg`)
and a metadata value is `jsonb`. What the classes cannot say (the generated `tsvector` of chunk
text, its GIN index, the per-collection HNSW indexes) is named in `POSTGRES_ONLY`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import Double, ForeignKey, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, UserDefinedType

__all__ = ["POSTGRES_ONLY", "AnswerCacheRow", "Base", "ChunkChangeRow", "ChunkRow", "CollectionRow",
           "DocumentMetadataRow", "DocumentRow", "IngestWorkerRow", "VectorBytes", "parse_vector", "vector_literal"]


POSTGRES_ONLY = {"columns": {"chunks": {"terms"}}, "indexes": {"chunks_terms"}, "index_prefix": "chunks_hnsw_"}
"""What PostgreSQL's schema holds beyond these classes: `chunks.terms`, a generated `tsvector` of the
chunk text, with its GIN index, and one HNSW index per collection (`chunks_hnsw_<id>`)."""


class _PgVector(UserDefinedType):
    """pgvector's `vector`, dimension left open: collections differ (the HNSW index of each casts)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"


class VectorBytes(TypeDecorator):
    """A chunk's embedding as the store hands it around: float32 bytes. SQLite keeps the bytes
    (BLOB); PostgreSQL keeps a pgvector `vector`, written and read as its text form, whose
    shortest-round-trip decimals give back the same float32 values bit for bit."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(_PgVector() if dialect.name == "postgresql" else LargeBinary())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return vector_literal(np.frombuffer(value, dtype=np.float32))

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return parse_vector(value).tobytes()


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form of a float32 vector (each float32 printed exactly: its double repr)."""
    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).tolist())) + "]"


def parse_vector(literal: str) -> np.ndarray:
    """A pgvector text value as float32."""
    return np.array(literal[1:-1].split(","), dtype=np.float32) if len(literal) > 2 else np.zeros(0, np.float32)


class Base(DeclarativeBase):
    # Every string column is TEXT in the migrations; Double keeps full precision beyond SQLite.
    type_annotation_map = {str: Text(), float: Double()}


class CollectionRow(Base):
    __tablename__ = "collections"
    # AUTOINCREMENT: ids are never reused, so a stale derived index can never point at a new row.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    embedder_kind: Mapped[str]
    embedder_model: Mapped[str]
    dim: Mapped[int]
    chunk_size: Mapped[int]
    chunk_overlap: Mapped[int]
    change_number: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    created_at: Mapped[str]
    changes_from: Mapped[int] = mapped_column(default=0, server_default=sql_text("0"))
    """`chunk_changes` holds every change after this change number (an index stamped earlier is rebuilt)."""


_UNFINISHED = "status IN ('queued', 'processing')"


class DocumentRow(Base):
    __tablename__ = "documents"
    # A source names one document in a collection: re-ingesting it replaces, never duplicates.
    __table_args__ = (
        UniqueConstraint("collection_id", "source"),
        # The uploads still to finish (rag.workers.claim_orphaned), without reading every document.
        Index("documents_unfinished", "id", sqlite_where=sql_text(_UNFINISHED),
              postgresql_where=sql_text(_UNFINISHED)),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    source: Mapped[str]
    content_hash: Mapped[str]
    title: Mapped[str | None]
    text: Mapped[str]
    status: Mapped[str]
    error: Mapped[str | None]
    metadata_json: Mapped[str] = mapped_column("metadata", default="{}", server_default=sql_text("'{}'"))
    created_at: Mapped[str]
    updated_at: Mapped[str]
    owner: Mapped[str | None] = mapped_column(default=None)
    """The ingest worker that queued this document (while it is queued or processing)."""


class IngestWorkerRow(Base):
    __tablename__ = "ingest_workers"

    # Nullable as migration 0002 made it: SQLite lets a non-INTEGER primary key hold NULL unless it
    # says NOT NULL. Harmless (a worker id is always a fresh uuid), and describing the table as it
    # is keeps the schema test honest; tightening it would take a table rebuild in a new step.
    id: Mapped[str] = mapped_column(primary_key=True, nullable=True)
    heartbeat_at: Mapped[float]
    """When the worker last proved it is alive, in seconds since the epoch."""


class ChunkRow(Base):
    __tablename__ = "chunks"
    __table_args__ = (
        Index("chunks_document", "document_id"),
        Index("chunks_collection", "collection_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    collection_id: Mapped[int]
    """Copied from the document so a collection's chunks are found without a join (no foreign key:
    the document's own key already ties the chunk to the collection)."""
    ordinal: Mapped[int]
    text: Mapped[str]
    token_count: Mapped[int]
    start_char: Mapped[int]
    end_char: Mapped[int]
    page: Mapped[int | None]
    section: Mapped[str | None]
    vector: Mapped[bytes] = mapped_column(VectorBytes)
    """The chunk's embedding: float32, L2-normalised, the collection's dimension."""


class ChunkChangeRow(Base):
    """Which chunks a change number added and removed: a lagging index replays these."""

    __tablename__ = "chunk_changes"
    __table_args__ = {"sqlite_with_rowid": False}

    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    change_number: Mapped[int] = mapped_column(primary_key=True)
    chunk_id: Mapped[int] = mapped_column(primary_key=True)
    added: Mapped[bool]
    """True for a chunk the change added, False for one it removed."""


class DocumentMetadataRow(Base):
    """One top-level key of a document's metadata with its value: what a metadata filter looks up.

    Kept equal to `documents.metadata` by the store, in the transaction that writes the document,
    and deleted with it. Written by SQL from `json_each`, never through this class: `value` holds
    the SQLite value json_each gives (TEXT, INTEGER, REAL), which BLOB affinity keeps as it is."""

    __tablename__ = "document_metadata"
    __table_args__ = (Index("document_metadata_document", "document_id"), {"sqlite_with_rowid": False})

    collection_id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary().with_variant(JSONB(), "postgresql"), primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)


class AnswerCacheRow(Base):
    """An answer kept for replay (`rag.answer.cache`), valid while its collection's change number is."""

    __tablename__ = "answer_cache"
    __table_args__ = (
        Index("answer_cache_collection", "collection_id", "change_number"),
        Index("answer_cache_used", "used_at"),
    )

    key: Mapped[str] = mapped_column(primary_key=True)
    """SHA-256 of what shapes the answer: change number, answerer and prompt version, model, base URL,
    normalised messages, k, mode, filter, min_score, max_tokens."""
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    change_number: Mapped[int]
    events: Mapped[str]
    """The answer's events as JSON: deltas, citations, done."""
    created_at: Mapped[float]
    used_at: Mapped[float]
    """When it was last written or replayed (seconds since the epoch): the least recent go first."""

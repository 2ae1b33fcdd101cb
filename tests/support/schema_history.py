"""Databases as older releases left them, for tests that upgrade them.

Every schema change adds a migration step, and must upgrade a database that migrations 0001-0002
built and an ingest of that time filled, with every document still searchable afterwards. The
rows are written here in raw SQL against the schema of step 0002, frozen like the steps
themselves: never change `build_database_at_0002` to follow a newer schema.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import Connection, Engine, create_engine, text

from rag.migrations import DROPPED_TEXT_ERROR, migrate

STEP_0002 = "0002_ingest_workers"


@dataclass(frozen=True)
class OldDocument:
    """A document as a release at schema 0002 stored it: one row, and one row per chunk."""

    source: str
    chunks: list[str]
    vectors: np.ndarray
    """(len(chunks), dim) float32, L2-normalised."""
    metadata: dict = field(default_factory=dict)
    title: str | None = None


@dataclass(frozen=True)
class OldCollection:
    name: str
    dim: int
    documents: Sequence[OldDocument]
    embedder_kind: str = "local"
    embedder_model: str = "test-model"


def build_database_at_0002(path: Path, collections: Sequence[OldCollection]) -> None:
    """Create `path` with migrations 0001-0002 only, holding `collections` as an ingest of that
    release wrote them (documents ready, chunks indexed by the FTS5 triggers, one change number
    per document written)."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            migrate(conn, upto=STEP_0002)
            for coll in collections:
                collection_id = conn.execute(text(
                    "INSERT INTO collections (name, embedder_kind, embedder_model, dim, chunk_size, "
                    "chunk_overlap, change_number, created_at) "
                    "VALUES (:name, :kind, :model, :dim, 200, 20, :changes, '2026-01-01T00:00:00+00:00')"),
                    {"name": coll.name, "kind": coll.embedder_kind, "model": coll.embedder_model,
                     "dim": coll.dim, "changes": len(coll.documents)}).lastrowid
                for doc in coll.documents:
                    _insert_document(conn, collection_id, doc, coll.dim)
    finally:
        engine.dispose()


def _insert_document(conn, collection_id: int, doc: OldDocument, dim: int) -> None:  # noqa: ANN001
    vectors = np.ascontiguousarray(doc.vectors, dtype=np.float32)
    if vectors.shape != (len(doc.chunks), dim):
        raise ValueError(f"{doc.source}: vectors have shape {vectors.shape}, expected {(len(doc.chunks), dim)}")
    body = "\n\n".join(doc.chunks)
    document_id = conn.execute(text(
        "INSERT INTO documents (collection_id, source, content_hash, title, text, status, error, metadata, "
        "created_at, updated_at) VALUES (:cid, :source, :hash, :title, :text, 'ready', NULL, :metadata, "
        "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')"),
        {"cid": collection_id, "source": doc.source, "hash": hashlib.sha256(body.encode()).hexdigest(),
         "title": doc.title, "text": body, "metadata": json.dumps(doc.metadata)}).lastrowid
    start = 0
    for ordinal, (chunk, vector) in enumerate(zip(doc.chunks, vectors, strict=True)):
        conn.execute(text(
            "INSERT INTO chunks (document_id, collection_id, ordinal, text, token_count, start_char, end_char, "
            "page, section, vector) VALUES (:doc, :cid, :ordinal, :text, :tokens, :start, :end, NULL, NULL, :vector)"),
            {"doc": document_id, "cid": collection_id, "ordinal": ordinal, "text": chunk,
             "tokens": len(chunk.split()), "start": start, "end": start + len(chunk), "vector": vector.tobytes()})
        start += len(chunk) + 2


STEP_0008 = "0008_unfinished_documents"
SPANNED_TEXT = "Alphé ☀üx.\n\nBeta two.\n\nGamma three.\n\n   \n\nΩ end."
"""A document of paragraphs at [0, 10), [12, 21), [23, 35) and [42, 48), with only blank lines
between the third and the fourth; offsets count characters (the first paragraph is not ASCII)."""


def fill_at_0008_with_spans(conn: Connection, covers: dict[str, list[tuple[int, int]]]) -> None:
    """Migrate `conn`'s empty database to step 0008 and store one document of `SPANNED_TEXT` per
    source, chunked at the given spans, as a chunker of that time could have left it."""
    migrate(conn, upto=STEP_0008)
    postgres = conn.dialect.name == "postgresql"
    vector = "CAST('[0,0]' AS vector)" if postgres else "x'00'"
    conn.execute(text("INSERT INTO collections(name, embedder_kind, embedder_model, dim, chunk_size, chunk_overlap, "
                      "created_at) VALUES ('c', 'local', 'm', 2, 200, 32, '2025-01-01')"))
    collection = conn.execute(text("SELECT id FROM collections WHERE name = 'c'")).scalar_one()
    for source, spans in covers.items():
        doc = conn.execute(text(
            "INSERT INTO documents(collection_id, source, content_hash, text, status, created_at, updated_at) "
            "VALUES (:c, :s, 'hash', :t, 'ready', '2025-01-01', '2025-01-01') RETURNING id"),
            {"c": collection, "s": source, "t": SPANNED_TEXT}).scalar_one()
        for ordinal, (a, b) in enumerate(spans):
            conn.execute(text(
                "INSERT INTO chunks(document_id, collection_id, ordinal, text, token_count, start_char, end_char, "
                f"vector) VALUES (:d, :c, :o, :x, 3, :a, :b, {vector})"),
                {"d": doc, "c": collection, "o": ordinal, "x": SPANNED_TEXT[a:b], "a": a, "b": b})


DROPPED_TEXT_COVERS = {
    "whole.md": [(0, 10), (12, 21), (23, 35), (42, 48)],  # blank lines between chunks are no loss
    "overlapping.md": [(0, 21), (12, 35), (42, 48)],
    "inside.md": [(0, 48), (0, 10), (23, 35)],  # chunks inside an earlier one
    "skipped.md": [(0, 10), (23, 35), (42, 48)],  # "Beta two." in no chunk
    "tail.md": [(0, 10), (12, 21), (23, 35)],  # "Ω end." in no chunk
}
DROPPED_TEXT_MARKED = {"whole.md": "hash", "overlapping.md": "hash", "inside.md": "hash", "skipped.md": "",
                       "tail.md": ""}


def upgrade_spanned_documents(engine: Engine) -> dict[str, str]:
    """Fill an empty database at step 0008 with `DROPPED_TEXT_COVERS`, run every later step, and
    return each document's content hash."""
    with engine.begin() as conn:  # as the release before this step left it
        fill_at_0008_with_spans(conn, DROPPED_TEXT_COVERS)
    with engine.begin() as conn:
        migrate(conn)
        assert "0009_dropped_text" in set(conn.execute(text("SELECT name FROM schema_migrations")).scalars())
        rows = conn.execute(text("SELECT source, content_hash, status, error FROM documents")).all()
    # A marked document stays ready (what its chunks hold is searchable) and says why it is marked.
    assert all(status == "ready" and (error == DROPPED_TEXT_ERROR) == (digest == "")
               for _, digest, status, error in rows)
    return {source: digest for source, digest, _, _ in rows}

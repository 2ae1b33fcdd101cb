"""One schema truth: the migrations build exactly what `rag.schema` describes, and a database that
an older release built and filled is still fully searchable after the upgrade."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Column, Engine, MetaData, Text, create_engine, inspect, text
from support.schema_history import STEP_0002, OldCollection, OldDocument, build_database_at_0002

from rag.embeddings.base import EmbedderSpec
from rag.errors import MigrationError
from rag.indexes.dense_faiss import IndexCache
from rag.indexes.lexical_tantivy import TantivyIndex
from rag.migrations import MIGRATIONS, migrate
from rag.retrieval import Retriever
from rag.schema import Base
from rag.store import Store

NOT_IN_THE_METADATA = {
    "schema_migrations",  # the migration runner's own record
    "sqlite_sequence",  # SQLite's AUTOINCREMENT counters
}
"""What migration builds that SQLAlchemy's metadata cannot describe; anything else must be in it."""


def affinity(declared: str) -> str:
    """SQLite's type affinity for a declared column type (the rules of its "Datatypes" page, 3.1)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(s in t for s in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if any(s in t for s in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def describe(engine: Engine, tables: list[str]) -> dict:
    """Every property of `tables` that the schema promises, normalised where SQLite spells one
    thing two ways (VARCHAR and TEXT are both TEXT; an INTEGER PRIMARY KEY is never NULL)."""
    insp = inspect(engine)
    out = {}
    with engine.connect() as conn:
        for table in tables:
            columns = insp.get_columns(table)
            pk = insp.get_pk_constraint(table)["constrained_columns"]
            # A lone INTEGER primary key is the rowid: SQLite reports it nullable, yet it never is.
            rowid = pk[0] if len(pk) == 1 and any(
                c["name"] == pk[0] and affinity(str(c["type"])) == "INTEGER" for c in columns) else None
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                               {"t": table}).scalar_one()
            out[table] = {
                "columns": {c["name"]: {"affinity": affinity(str(c["type"])),
                                        "nullable": c["nullable"] and c["name"] != rowid,
                                        "default": c["default"]} for c in columns},
                "primary_key": pk,
                "autoincrement": bool(re.search(r"\bAUTOINCREMENT\b", sql, re.IGNORECASE)),
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in insp.get_indexes(table)),
                "unique": sorted((u["name"] or "", tuple(u["column_names"]))
                                 for u in insp.get_unique_constraints(table)),
                # PRAGMA, not the inspector: SQLAlchemy does not read ON DELETE written on a column
                # (`REFERENCES documents(id) ON DELETE CASCADE`), which is how migration 0001 wrote it.
                "foreign_keys": sorted(
                    (r.table, r._mapping["from"], r.to, r.on_update, r.on_delete, r.match)
                    for r in conn.exec_driver_sql(f"PRAGMA foreign_key_list({table})")),
            }
    return out


def migrated(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        migrate(conn)
    return engine


def from_metadata(metadata: MetaData, path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    return engine


TABLES = sorted(Base.metadata.tables)


def test_the_migrations_build_exactly_what_the_metadata_describes(tmp_path: Path) -> None:
    by_migrations = migrated(tmp_path / "migrated.sqlite3")
    by_metadata = from_metadata(Base.metadata, tmp_path / "metadata.sqlite3")
    try:
        assert describe(by_migrations, TABLES) == describe(by_metadata, TABLES)
        with by_migrations.connect() as conn:
            objects = set(conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger')")).scalars())
        assert objects - set(TABLES) == NOT_IN_THE_METADATA
    finally:
        by_migrations.dispose()
        by_metadata.dispose()


def _drop_index(md: MetaData) -> None:
    table = md.tables["chunks"]
    table.indexes.discard(next(i for i in table.indexes if i.name == "chunks_document"))


def _drop_unique(md: MetaData) -> None:
    table = md.tables["documents"]
    table.constraints.discard(next(c for c in table.constraints if type(c).__name__ == "UniqueConstraint"))


def _no_cascade(md: MetaData) -> None:
    for fk in md.tables["chunks"].foreign_key_constraints:
        fk.ondelete = None


def _no_autoincrement(md: MetaData) -> None:
    md.tables["documents"].dialect_options["sqlite"]["autoincrement"] = False


def _no_default(md: MetaData) -> None:
    md.tables["collections"].c.change_number.server_default = None


def _not_null(md: MetaData) -> None:
    md.tables["chunks"].c.page.nullable = False


def _text_heartbeat(md: MetaData) -> None:
    md.tables["ingest_workers"].c.heartbeat_at.type = Text()


def _extra_column(md: MetaData) -> None:
    md.tables["documents"].append_column(Column("language", Text, nullable=True))


@pytest.mark.parametrize(("table", "change"), [
    ("chunks", _drop_index), ("documents", _drop_unique), ("chunks", _no_cascade),
    ("documents", _no_autoincrement), ("collections", _no_default), ("chunks", _not_null),
    ("ingest_workers", _text_heartbeat), ("documents", _extra_column),
], ids=lambda v: v.__name__.strip("_") if callable(v) else v)
def test_the_comparison_sees_every_kind_of_difference(tmp_path: Path, table: str,
                                                      change: Callable[[MetaData], None]) -> None:
    """The test above must fail when the metadata drifts in any way it promises to check."""
    variant = MetaData()
    for t in Base.metadata.sorted_tables:
        t.to_metadata(variant)
    change(variant)
    by_migrations = migrated(tmp_path / "migrated.sqlite3")
    by_variant = from_metadata(variant, tmp_path / "variant.sqlite3")
    try:
        expected, got = describe(by_migrations, TABLES), describe(by_variant, TABLES)
        assert got[table] != expected[table]
        assert {t: v for t, v in got.items() if t != table} == {t: v for t, v in expected.items() if t != table}
    finally:
        by_migrations.dispose()
        by_variant.dispose()


def test_migrating_stops_at_the_step_asked_for_and_refuses_a_newer_database(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rag.sqlite3'}")
    try:
        with engine.begin() as conn:
            assert migrate(conn, upto="0001_initial") == 1
            assert "owner" not in {c["name"] for c in inspect(conn).get_columns("documents")}
            assert migrate(conn) == len(MIGRATIONS)
            assert "owner" in {c["name"] for c in inspect(conn).get_columns("documents")}
            with pytest.raises(ValueError, match="9999_nope"):
                migrate(conn, upto="9999_nope")
            conn.execute(text("INSERT INTO schema_migrations(version, name) VALUES (99, '0099_future')"))
            with pytest.raises(MigrationError, match="0099_future"):
                migrate(conn)
    finally:
        engine.dispose()


SHIPPED = ["0001_initial", "0002_ingest_workers", "0003_chunk_changes", "0004_document_metadata",
           "0005_drop_chunks_fts", "0006_answer_cache", "0007_bounded_headings", "0008_unfinished_documents",
           "0009_dropped_text"]
"""Every step a release has shipped, by the name its databases record: append, never edit."""


def test_shipped_steps_keep_their_names_and_order_on_both_engines():
    """A database records the names of the steps it ran, and a name this release does not know makes
    it refuse the database: renaming a shipped step locks every database written before out."""
    from rag.migrations_postgres import POSTGRES_MIGRATIONS

    assert [name for name, _ in MIGRATIONS][: len(SHIPPED)] == SHIPPED
    postgres = {version: name for version, name, _ in POSTGRES_MIGRATIONS}
    for version, name in enumerate(SHIPPED, start=1):
        if version > min(postgres):  # PostgreSQL starts from its own baseline
            assert postgres[version] == name


# -- upgrading a database an older release filled ------------------------------------------------

DIM = 8


class QueryVectors:
    """A stand-in embedder for these queries: each query's vector is a document's chunk vector."""

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors
        self.spec = EmbedderSpec("local", "test-model", DIM)

    def embed_one(self, query: str) -> np.ndarray:
        return self.vectors[query]


def _old_collections() -> list[OldCollection]:
    rng = np.random.default_rng(8)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    words = ["aquifer", "basalt", "cirrus", "delta", "estuary", "fjord", "glacier"]
    docs = [OldDocument(f"{w}.txt", [f"notes about the {w}", f"more on {w} formation and survey"], unit(2),
                        metadata={"topic": w, "n": i}, title=w.title())
            for i, w in enumerate(words)]
    other = [OldDocument("moraine.txt", ["a moraine of glacial debris"], unit(1), metadata={"topic": "moraine"})]
    return [OldCollection("geo", DIM, docs[:5]), OldCollection("more", DIM, docs[5:] + other)]


def test_a_database_built_by_migrations_0001_0002_upgrades_with_every_document_searchable(tmp_path: Path) -> None:
    path = tmp_path / "rag.sqlite3"
    old = _old_collections()
    build_database_at_0002(path, old)

    store = Store(path)  # opening a store runs every later step
    try:
        assert store.schema_version == len(MIGRATIONS)
        with store.read() as s:
            applied = list(s.execute(text("SELECT name FROM schema_migrations ORDER BY version")).scalars())
        assert applied == [name for name, _ in MIGRATIONS] and applied[1] == STEP_0002
        with store.read() as s:  # 0005 dropped the FTS5 table and triggers 0001 made
            objects = set(s.execute(text("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')"))
                          .scalars())
        assert objects - set(TABLES) == NOT_IN_THE_METADATA
        dense, lexical = IndexCache(store, tmp_path / "indexes"), TantivyIndex(store, tmp_path / "tantivy")
        for coll in old:
            collection = store.get_collection(coll.name, counts=True)
            assert (collection.documents, collection.chunks) == (
                len(coll.documents), sum(len(d.chunks) for d in coll.documents))
            stored = {d.source: d for d in store.list_documents(collection.id)}
            assert set(stored) == {d.source for d in coll.documents}
            assert dense.load(collection) == lexical.load(collection) == collection.chunks
            queries = {doc.source: doc.vectors[1 if len(doc.chunks) > 1 else 0] for doc in coll.documents}
            retriever = Retriever(store, dense, lexical, lambda _c, q=queries: QueryVectors(q))
            for doc in coll.documents:
                assert stored[doc.source].status == "ready"
                # Lexical: the document's own word finds its chunks and no other document's.
                word = doc.source.removesuffix(".txt")
                hits = retriever.search(collection, word, k=10, mode="lexical")
                assert {h.source for h in hits} == {doc.source}
                assert sorted(h.text for h in hits) == sorted(c for c in doc.chunks if word in c)
                # Dense: a chunk's own vector finds that chunk first, with cosine 1.
                top = retriever.search(collection, doc.source, k=1, mode="dense")[0]
                assert top.source == doc.source and top.text == doc.chunks[1 if len(doc.chunks) > 1 else 0]
                assert top.score == pytest.approx(1.0, abs=1e-5)
                assert top.metadata == doc.metadata and top.title == doc.title
                # Filters read the old rows' metadata.
                filtered = retriever.search(collection, word, k=10, mode="lexical",
                                            filter={"topic": doc.metadata["topic"]})
                assert {h.source for h in filtered} == {doc.source}
    finally:
        store.close()

"""Metadata filters by index, not by scan: the `document_metadata` table (migration 0004) answers
exactly what the json_extract scan over every chunk answered, for old rows and new writes alike,
without reading a chunk or a document outside the result."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, text
from support.schema_history import OldCollection, OldDocument, build_database_at_0002

from rag import sqlite_ids
from rag.embeddings.base import EmbedderSpec
from rag.records import ChunkDraft
from rag.store import Store

DIM = 4
SPEC = EmbedderSpec("local", "test-model", DIM)

METADATA = [
    {"lang": "en", "year": 2024, "score": 0.5, "draft": True, "tags": ["a", "b"], "note": None},
    {"lang": "fr", "year": 2023, "score": 1.0, "draft": False, "author": {"name": "Ana"}},
    {"lang": "en", "year": 2023.0, "n": "2024", "dotted.key": "x"},
    {"lang": "de", "year": "2024", "é": "ü"},
    {},
]
FILTERS = [
    {"lang": ["en"]}, {"lang": ["en", "fr"]}, {"lang": ["xx"]}, {"year": [2024]}, {"year": [2023]},
    {"year": ["2024"]}, {"year": [2023.0]}, {"score": [1]}, {"score": [0.5]}, {"draft": [True]},
    {"draft": [1]}, {"draft": [False]}, {"draft": [0]}, {"note": ["None"]}, {"tags": ['["a","b"]']},
    {"n": [2024]}, {"n": ["2024"]}, {"dotted.key": ["x"]}, {"lang": ["en"], "year": [2023]},
    {"lang": ["en", "fr"], "year": [2023], "draft": [False]}, {"missing": ["en"]},
]


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def scanned(store: Store, collection_id: int, filter_: dict[str, list]) -> list[int]:
    """What the filter selected before migration 0004: json_extract over every chunk's document."""
    sql = ["SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.collection_id = :cid"]
    params: dict[str, object] = {"cid": collection_id}
    for n, (key, values) in enumerate(filter_.items()):
        names = []
        for m, v in enumerate(values):
            params[f"v{n}_{m}"] = v
            names.append(f":v{n}_{m}")
        params[f"k{n}"] = f'$."{key}"'
        sql.append(f"AND json_extract(d.metadata, :k{n}) IN ({', '.join(names)})")
    with store.engine.connect() as conn:
        return sorted(conn.execute(text(" ".join(sql)), params).scalars())


def table_matches_documents(store: Store) -> None:
    """The table holds exactly each document's non-null top-level keys, as json_each reads them."""
    with store.engine.connect() as conn:
        kept = set(conn.execute(text("SELECT collection_id, key, value, document_id FROM document_metadata")).all())
        derived = set(conn.execute(text(
            "SELECT d.collection_id, j.key, j.value, d.id FROM documents d, json_each(d.metadata) j "
            "WHERE j.type != 'null'")).all())
    assert kept == derived


def put(store: Store, cid: int, source: str, metadata: dict, n_chunks: int, rng: np.random.Generator) -> list[int]:
    chunks = [ChunkDraft(f"{source} part {i}", 3, 0, 10) for i in range(n_chunks)]
    return store.put_document(cid, source=source, content_hash=source, title=None, text_=source,
                              metadata=metadata, chunks=chunks, vectors=unit(rng, n_chunks),
                              dim=DIM).added_chunk_ids


def test_an_upgraded_database_filters_as_the_scan_did(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    docs = [OldDocument(f"doc{i}.txt", [f"chunk {i}.{j}" for j in range(1 + i % 3)], unit(rng, 1 + i % 3),
                        metadata=m) for i, m in enumerate(METADATA)]
    build_database_at_0002(tmp_path / "rag.sqlite3", [OldCollection("one", DIM, docs),
                                                      OldCollection("two", DIM, docs[:2])])
    store = Store(tmp_path / "rag.sqlite3")
    try:
        table_matches_documents(store)
        for name in ("one", "two"):
            cid = store.get_collection(name).id
            for filter_ in FILTERS:
                assert store.filtered_chunk_ids(cid, filter_).tolist() == scanned(store, cid, filter_), filter_
        # Something was selected, of every kind: the comparison above is not all empty lists.
        cid = store.get_collection("one").id
        assert len(store.filtered_chunk_ids(cid, {"draft": [True]})) == 1
        assert len(store.filtered_chunk_ids(cid, {"year": [2023]})) == 2 + 3
        assert len(store.filtered_chunk_ids(cid, {"tags": ['["a","b"]']})) == 1
        # A key an older writer escaped ({"\u00e9": ...}) is found now; json_extract's path missed it.
        assert len(store.filtered_chunk_ids(cid, {"é": ["ü"]})) == 1 and scanned(store, cid, {"é": ["ü"]}) == []
    finally:
        store.close()


def test_writes_keep_the_table_equal_to_the_documents(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = Store(tmp_path / "rag.sqlite3")
    try:
        c = store.create_collection("docs", SPEC, 200, 20)
        other = store.create_collection("other", SPEC, 200, 20)
        ids = {i: put(store, c.id, f"d{i}", m, 2, rng) for i, m in enumerate(METADATA)}
        put(store, other.id, "d0", METADATA[0], 1, rng)
        table_matches_documents(store)
        assert store.filtered_chunk_ids(c.id, {"lang": ["en"]}).tolist() == sorted(ids[0] + ids[2])

        replaced = put(store, c.id, "d0", {"lang": "fr"}, 1, rng)  # metadata changed with the document
        store.queue_document(c.id, source="queued", content_hash="q", title=None, text_="", metadata={"lang": "en"})
        table_matches_documents(store)
        assert store.filtered_chunk_ids(c.id, {"lang": ["en"]}).tolist() == ids[2]  # a queued one has no chunks
        assert store.filtered_chunk_ids(c.id, {"lang": ["fr"]}).tolist() == sorted(ids[1] + replaced)

        doc2 = store.document_hashes(c.id, ["d2"])["d2"][0]
        store.delete_documents(c.id, [doc2])
        table_matches_documents(store)
        assert store.filtered_chunk_ids(c.id, {"lang": ["en"]}).tolist() == []
        store.delete_collection("docs")
        table_matches_documents(store)
        with store.engine.connect() as conn:
            assert set(conn.execute(text("SELECT DISTINCT collection_id FROM document_metadata")).scalars()) == {
                other.id}
        for filter_ in FILTERS:
            assert store.filtered_chunk_ids(other.id, filter_).tolist() == scanned(store, other.id, filter_)
    finally:
        store.close()


@pytest.mark.parametrize("filter_", [{"lang": ["en"]}, {"lang": ["en", "fr"], "year": [2023]}])
def test_a_filter_searches_indexes_and_never_scans(tmp_path: Path, filter_: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    store = Store(tmp_path / "rag.sqlite3")
    try:
        c = store.create_collection("docs", SPEC, 200, 20)
        for i in range(40):
            put(store, c.id, f"d{i}", METADATA[i % len(METADATA)], 3, rng)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
        # Every statement as SQLite runs it, values bound (the store runs this one on a connection
        # of its own, `rag.sqlite_ids`, opened at the first filter).
        statements: list[str] = []
        store.engine.dispose()
        listener = lambda dbapi_conn, record: dbapi_conn.set_trace_callback(statements.append)  # noqa: E731
        event.listen(store.engine, "connect", listener)
        connect = sqlite3.connect

        def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            conn = connect(*args, **kwargs)
            conn.set_trace_callback(statements.append)
            return conn

        monkeypatch.setattr(sqlite_ids.sqlite3, "connect", traced)
        try:
            store.filtered_chunk_ids(c.id, filter_)
        finally:
            event.remove(store.engine, "connect", listener)
        [sql] = [s for s in statements if "document_metadata" in s]
        with store.engine.connect() as conn:
            plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        # Only the (small) matching document list may be walked; chunks and metadata are searched.
        assert not [step for step in plan if step.startswith("SCAN") and step != "SCAN m"], plan
        assert any(step.startswith("SEARCH c USING") and "chunks_document (document_id=?)" in step
                   for step in plan), plan
        assert any("SEARCH document_metadata USING PRIMARY KEY (collection_id=? AND key=? AND value=?)" in step
                   for step in plan), plan
    finally:
        store.close()

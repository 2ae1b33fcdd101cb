"""Writes cost what they touch: an ingest looks up the hashes of the sources in its batch (and a
prune the sources under its roots) through the unique (collection_id, source) index, never by
reading every document of the collection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event

from rag.embeddings.base import EmbedderSpec
from rag.records import ChunkDraft
from rag.store import _SLICE, Store

SPEC = EmbedderSpec("local", "test-model", 4)


def put(store: Store, cid: int, source: str, content_hash: str = "h") -> int:
    vector = np.ones((1, 4), np.float32) / 2
    return store.put_document(cid, source=source, content_hash=content_hash, title=None, text_="text",
                              metadata={}, chunks=[ChunkDraft("text", 1, 0, 4)], vectors=vector,
                              dim=4).document_id


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "rag.sqlite3")
    yield s
    s.close()


def test_hashes_are_looked_up_for_the_sources_asked_only(store: Store) -> None:
    c = store.create_collection("docs", SPEC, 200, 20)
    other = store.create_collection("other", SPEC, 200, 20)
    a, b = put(store, c.id, "/d/a.txt", "ha"), put(store, c.id, "/d/b.txt", "hb")
    put(store, other.id, "/d/c.txt")
    assert store.document_hashes(c.id, ["/d/a.txt", "/d/c.txt", "/nowhere"]) == {"/d/a.txt": (a, "ha", "ready")}
    assert store.document_hashes(c.id, iter(["/d/b.txt", "/d/b.txt"])) == {"/d/b.txt": (b, "hb", "ready")}
    assert store.document_hashes(c.id, []) == {}
    # More sources than one IN list may bind: looked up in slices, none lost at a slice's edge.
    asked = [f"/missing/{i:06d}" for i in range(2 * _SLICE + 1)] + ["/d/a.txt", "/d/b.txt"]
    assert set(store.document_hashes(c.id, asked)) == {"/d/a.txt", "/d/b.txt"}


def test_sources_under_prefixes_are_one_range_each(store: Store) -> None:
    c = store.create_collection("docs", SPEC, 200, 20)
    for source in ("/d/docs", "/d/docs/a.txt", "/d/docs/sub/b.md", "/d/docs#7", "/d/docs-old/c.txt",
                   "/d/doc", "/d/docr/z", "/e/docs/a.txt", "/d/docs\U0010ffff"):
        put(store, c.id, source)
    under = store.document_hashes_under(c.id, ["/d/docs"])
    # Every source with the prefix (the pipeline then keeps those under the root, see `_under`).
    assert sorted(under) == ["/d/docs", "/d/docs#7", "/d/docs-old/c.txt", "/d/docs/a.txt", "/d/docs/sub/b.md",
                             "/d/docs\U0010ffff"]
    assert sorted(store.document_hashes_under(c.id, ["/d/docs/", "/e/"])) == [
        "/d/docs/a.txt", "/d/docs/sub/b.md", "/e/docs/a.txt"]
    # A prefix ending in the last code point has no upper bound: still exact.
    assert sorted(store.document_hashes_under(c.id, ["/d/docs\U0010ffff"])) == ["/d/docs\U0010ffff"]


def test_the_lookups_search_the_unique_index_and_never_scan_the_collection(store: Store) -> None:
    c = store.create_collection("docs", SPEC, 200, 20)
    for i in range(50):
        put(store, c.id, f"/d/{i:03d}.txt")
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if "FROM documents" in statement:
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.document_hashes(c.id, ["/d/001.txt", "/d/002.txt"])
        store.document_hashes_under(c.id, ["/d/01"])
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert len(statements) == 2
    with store.engine.connect() as conn:
        for statement, parameters in statements:
            plan = " ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "SEARCH documents USING INDEX sqlite_autoindex_documents_1 (collection_id=? AND source" in plan, plan
            assert "SCAN" not in plan, plan

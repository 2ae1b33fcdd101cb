"""The store (a real SQLite file, or a real PostgreSQL database) and the FAISS indexes derived from it."""

import numpy as np
import pytest
from sqlalchemy import inspect

from rag.embeddings.base import EmbedderSpec
from rag.errors import AlreadyExists, CollectionNotFound, DocumentNotFound, EmbedderMismatch, InvalidInput
from rag.indexes.dense_faiss import IndexCache, VectorIndex
from rag.indexes.lexical_tantivy import TantivyIndex
from rag.migrations import MIGRATIONS
from rag.migrations_postgres import POSTGRES_MIGRATIONS
from rag.records import ChunkDraft
from rag.schema import POSTGRES_ONLY, Base
from rag.store import Store

SPEC = EmbedderSpec("local", "test-model", 8)


def unit(rng, n, dim=8):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def put(store, cid, source, texts, vectors, metadata=None):
    chunks = [ChunkDraft(t, len(t.split()), 0, len(t)) for t in texts]
    return store.put_document(cid, source=source, content_hash=str(hash(tuple(texts))), title=None,
                              text_=" ".join(texts), metadata=metadata or {}, chunks=chunks,
                              vectors=vectors, dim=8)


@pytest.fixture
def store(tmp_path, backend):
    s = Store(backend.store_location(tmp_path / "rag.sqlite3"))
    yield s
    s.close()


def test_migrations_are_recorded_and_the_models_match_the_schema(tmp_path, store, backend):
    assert store.schema_version == len(MIGRATIONS)
    Store(backend.store_location(tmp_path / "rag.sqlite3")).close()  # reopening applies nothing twice
    insp = inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        columns = {c["name"] for c in insp.get_columns(table.name)}
        if store.on_postgres:
            columns -= POSTGRES_ONLY["columns"].get(table.name, set())
        assert columns == {c.name for c in table.columns}, table.name
    with store.engine.connect() as conn:
        if not store.on_postgres:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        names = [r[0] for r in conn.exec_driver_sql("SELECT name FROM schema_migrations ORDER BY version")]
    if store.on_postgres:
        assert names == [name for _, name, _ in POSTGRES_MIGRATIONS]
    else:
        assert names == [name for name, _ in MIGRATIONS]


def test_collections_are_unique_and_bound_to_their_embedder(store):
    c = store.create_collection("docs", SPEC, 200, 20)
    with pytest.raises(AlreadyExists):
        store.create_collection("docs", SPEC, 200, 20)
    with pytest.raises(InvalidInput):
        store.create_collection("bad name!", SPEC, 200, 20)
    with pytest.raises(EmbedderMismatch, match="test-model"):
        c.check_embedder(EmbedderSpec("openai", "text-embedding-3-small", 1536))
    with pytest.raises(CollectionNotFound):
        store.get_collection("nope")


def test_replacing_a_document_swaps_its_chunks_in_both_indexes(tmp_path, store):
    rng = np.random.default_rng(0)
    c = store.create_collection("docs", SPEC, 200, 20)
    lexical = TantivyIndex(store, tmp_path / "tantivy")
    first = put(store, c.id, "a.txt", ["solar panels on the roof", "inverters convert current"], unit(rng, 2))
    assert first.change_number == 1 and first.removed_chunk_ids == []
    lexical.save(c)
    assert [i for i, _ in lexical.search(c, "inverters", 5)] == [first.added_chunk_ids[1]]
    second = put(store, c.id, "a.txt", ["batteries store energy"], unit(rng, 1))
    assert second.document_id == first.document_id
    assert second.removed_chunk_ids == first.added_chunk_ids
    assert second.change_number == 2
    lexical.save(c)
    assert lexical.search(c, "inverters", 5) == []  # the lexical index followed the delete
    assert [i for i, _ in lexical.search(c, "batteries", 5)] == second.added_chunk_ids
    ids, vectors, stamp = store.vectors(c.id)
    assert ids.tolist() == second.added_chunk_ids and vectors.shape == (1, 8) and stamp == 2
    # Chunk ids are never reused, so a stale index can never name a different chunk.
    assert min(second.added_chunk_ids) > max(first.added_chunk_ids)


def test_failed_write_leaves_nothing_behind(store):
    c = store.create_collection("docs", SPEC, 200, 20)
    with pytest.raises(ValueError):
        put(store, c.id, "a.txt", ["one", "two"], np.zeros((1, 8), np.float32))
    assert store.list_documents(c.id) == []
    assert store.change_number(c.id) == 0


def test_delete_documents_and_missing_ids(store):
    rng = np.random.default_rng(1)
    c = store.create_collection("docs", SPEC, 200, 20)
    a = put(store, c.id, "a.txt", ["alpha"], unit(rng, 1))
    with pytest.raises(DocumentNotFound, match="999"):
        store.delete_documents(c.id, [a.document_id, 999])
    assert len(store.list_documents(c.id)) == 1  # nothing deleted by the refused call
    removed, stamp = store.delete_documents(c.id, [a.document_id])
    assert removed == a.added_chunk_ids and stamp == 2


def test_metadata_filter(store):
    rng = np.random.default_rng(2)
    c = store.create_collection("docs", SPEC, 200, 20)
    en = put(store, c.id, "en.txt", ["hello"], unit(rng, 1), {"lang": "en", "year": 2024})
    fr = put(store, c.id, "fr.txt", ["bonjour"], unit(rng, 1), {"lang": "fr", "year": 2023})
    assert store.filtered_chunk_ids(c.id, {"lang": ["en"]}).tolist() == en.added_chunk_ids
    both = store.filtered_chunk_ids(c.id, {"lang": ["en", "fr"]}).tolist()
    assert sorted(both) == sorted(en.added_chunk_ids + fr.added_chunk_ids)
    assert store.filtered_chunk_ids(c.id, {"lang": ["en"], "year": [2023]}).tolist() == []


def test_index_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    vectors = unit(rng, 50)
    index = VectorIndex(8, stamp=7)
    index.add(np.arange(100, 150), vectors)
    path = tmp_path / "i.faiss"
    index.save(path)
    again = VectorIndex.load(path)
    assert again.stamp == 7 and len(again) == 50
    for q in vectors[:5]:
        assert again.search(q, 5) == index.search(q, 5)
    np.testing.assert_array_equal(again.ids(), np.arange(100, 150))
    # The best match of a stored vector is itself, with cosine 1.
    top = index.search(vectors[3], 1)[0]
    assert top[0] == 103 and top[1] == pytest.approx(1.0, abs=1e-5)
    # Filtered search never returns an id outside the allowed set.
    allowed = np.array([110, 120, 130])
    assert {i for i, _ in index.search(vectors[3], 10, allowed)} == {110, 120, 130}


def test_index_cache_follows_the_store_and_rebuilds_when_stale_or_damaged(tmp_path, store):
    rng = np.random.default_rng(4)
    c = store.create_collection("docs", SPEC, 200, 20)
    put(store, c.id, "a.txt", ["one", "two"], unit(rng, 2))
    cache = IndexCache(store, tmp_path / "indexes")
    index = cache.current(c)
    assert sorted(index.ids().tolist()) == sorted(store.vectors(c.id)[0].tolist())
    # Another process commits: the stamp moves, the next search sees the new chunks.
    other = put(store, c.id, "b.txt", ["three"], unit(rng, 1))
    index = cache.current(c)
    assert index.stamp == other.change_number
    assert set(other.added_chunk_ids) <= set(index.ids().tolist())
    # A damaged file on disk is ignored and rebuilt from the store.
    cache.path(c.id).write_bytes(b"garbage")
    fresh = IndexCache(store, tmp_path / "indexes").current(c)
    assert sorted(fresh.ids().tolist()) == sorted(store.vectors(c.id)[0].tolist())
    assert VectorIndex.load(cache.path(c.id)).stamp == store.change_number(c.id)


def test_a_lagging_index_replays_the_change_log_instead_of_rebuilding(tmp_path):
    """Two processes on one store: B's index follows A's commits from the log, never re-reading
    every vector; when the log no longer reaches back to B's stamp, B rebuilds."""
    rng = np.random.default_rng(7)
    writer, reader = Store(tmp_path / "rag.sqlite3"), Store(tmp_path / "rag.sqlite3")
    c = writer.create_collection("docs", SPEC, 200, 20)
    a, b = IndexCache(writer, tmp_path / "a"), IndexCache(reader, tmp_path / "b")
    first = put(writer, c.id, "one", ["alpha", "beta"], unit(rng, 2))
    assert sorted(b.current(c).ids().tolist()) == first.added_chunk_ids

    full_reads = []
    real_vectors = reader.vectors
    reader.vectors = lambda cid: full_reads.append(cid) or real_vectors(cid)  # type: ignore[method-assign]
    vectors = unit(rng, 3)
    second = put(writer, c.id, "two", ["gamma", "delta", "epsilon"], vectors)
    replaced = put(writer, c.id, "one", ["alpha again"], unit(rng, 1))  # removes one's two chunks
    removed, _ = writer.delete_documents(c.id, [second.document_id])
    third = put(writer, c.id, "three", ["zeta"], unit(rng, 1))
    index = b.current(c)
    assert sorted(index.ids().tolist()) == sorted(replaced.added_chunk_ids + third.added_chunk_ids)
    assert index.stamp == writer.change_number(c.id)
    assert full_reads == []

    probe = unit(rng, 1)[0]
    assert b.search(c, probe, 5) == a.search(c, probe, 5)  # A rebuilt from the store: same answer

    writer.forget_changes(c.id, writer.change_number(c.id))
    put(writer, c.id, "four", ["eta"], unit(rng, 1))
    b.forget(c.id)  # drops memory and file: a restart with an index stamped before the log's start
    stale = IndexCache(reader, tmp_path / "b")
    reader.vectors = real_vectors  # type: ignore[method-assign]
    assert len(stale.current(c)) == 3
    assert writer.changes_since(c.id, 0) is None
    writer.close()
    reader.close()

"""Several documents written in one transaction (`Store.put_documents`): what the ingest pipeline
commits per embedding batch. Each document keeps its own change number, so the derived indexes
follow them one by one; a batch is all or nothing."""

import numpy as np
import pytest

from rag.embeddings.base import EmbedderSpec
from rag.errors import DocumentNotFound
from rag.indexes.dense_faiss import IndexCache
from rag.indexes.lexical_tantivy import TantivyIndex
from rag.records import ChunkDraft, DocumentDraft
from rag.store import Store

SPEC = EmbedderSpec("local", "test-model", 8)


def unit(rng, n):
    v = rng.standard_normal((n, 8)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def draft(source, texts, vectors, **extra):
    chunks = [ChunkDraft(t, len(t.split()), 0, len(t)) for t in texts]
    return DocumentDraft(source=source, content_hash=f"h-{'|'.join(texts)}", title=None, text=" ".join(texts),
                         metadata={"source": source}, chunks=chunks, vectors=vectors, **extra)


@pytest.fixture
def store(tmp_path, backend):
    s = Store(backend.store_location(tmp_path / "rag.sqlite3"))
    yield s
    s.close()


def test_a_batch_inserts_and_replaces_with_one_change_number_per_document(store):
    rng = np.random.default_rng(0)
    c = store.create_collection("docs", SPEC, 200, 20)
    first = store.put_document(c.id, source="a", content_hash="1", title=None, text_="old a", metadata={},
                               chunks=[ChunkDraft("old alpha", 2, 0, 9)], vectors=unit(rng, 1), dim=8)
    vectors = [unit(rng, 2), unit(rng, 1), unit(rng, 3)]
    got = store.put_documents(c.id, [draft("b", ["bravo one", "bravo two"], vectors[0]),
                                     draft("a", ["new alpha"], vectors[1]),
                                     draft("c", ["charlie one", "charlie two", "charlie three"], vectors[2])], dim=8)

    assert [r.change_number for r in got] == [first.change_number + 1, first.change_number + 2,
                                              first.change_number + 3]
    assert got[1].document_id == first.document_id  # replaced in place, not duplicated
    assert got[1].removed_chunk_ids == first.added_chunk_ids
    assert [len(r.added_chunk_ids) for r in got] == [2, 1, 3]
    assert got[0].removed_chunk_ids == [] and got[2].removed_chunk_ids == []
    assert store.change_number(c.id) == first.change_number + 3

    docs = {d.source: d for d in store.list_documents(c.id)}
    assert sorted(docs) == ["a", "b", "c"]
    assert all(d.status == "ready" for d in docs.values())
    assert docs["a"].metadata == {"source": "a"} and docs["a"].chunks == 1
    chunks = store.chunks([i for r in got for i in r.added_chunk_ids])
    assert [chunks[i].text for i in got[2].added_chunk_ids] == ["charlie one", "charlie two", "charlie three"]
    ids, stored, _ = store.vectors(c.id)
    by_id = dict(zip(ids.tolist(), stored, strict=True))
    for r, v in zip(got, vectors, strict=True):
        np.testing.assert_array_equal(np.stack([by_id[i] for i in r.added_chunk_ids]), v)

    # The change log holds each document's change on its own, as a lagging index replays them.
    # (PostgreSQL keeps none: its indexes move inside the write, and nothing outside it replays.)
    changes = store.changes_since(c.id, first.change_number)
    if store.on_postgres:
        assert changes is None
        return
    assert [(ch.removed_chunk_ids, ch.added_chunk_ids) for ch in changes] == [
        (r.removed_chunk_ids, r.added_chunk_ids) for r in got]


def test_both_indexes_follow_a_batch(tmp_path, store):
    rng = np.random.default_rng(1)
    c = store.create_collection("docs", SPEC, 200, 20)
    vectors = unit(rng, 3)
    got = store.put_documents(c.id, [draft("x", ["solar inverter"], vectors[:1]),
                                     draft("y", ["wind turbine", "tidal barrage"], vectors[1:])], dim=8)
    dense = IndexCache(store, tmp_path / "indexes")
    assert dense.load(store.get_collection("docs")) == 3
    assert dense.search(store.get_collection("docs"), vectors[2], 1)[0][0] == got[1].added_chunk_ids[1]
    lexical = TantivyIndex(store, tmp_path / "tantivy")
    assert lexical.load(store.get_collection("docs")) == 3
    assert [cid for cid, _ in lexical.search(store.get_collection("docs"), "turbine", 5)] == [got[1].added_chunk_ids[0]]


def test_a_batch_is_all_or_nothing(store):
    rng = np.random.default_rng(2)
    c = store.create_collection("docs", SPEC, 200, 20)
    queued = store.queue_document(c.id, source="q", content_hash="h", title=None, text_="t", metadata={})
    before = store.change_number(c.id)
    with pytest.raises(DocumentNotFound):
        store.put_documents(c.id, [draft("fresh", ["one"], unit(rng, 1)),
                                   draft("q", ["two"], unit(rng, 1), expect_id=queued + 1)], dim=8)
    assert [d.source for d in store.list_documents(c.id)] == ["q"]
    assert store.change_number(c.id) == before

    with pytest.raises(ValueError, match="twice"):
        store.put_documents(c.id, [draft("d", ["one"], unit(rng, 1)), draft("d", ["two"], unit(rng, 1))], dim=8)
    with pytest.raises(ValueError, match="shape"):
        store.put_documents(c.id, [draft("e", ["one", "two"], unit(rng, 1))], dim=8)
    assert store.put_documents(c.id, [], dim=8) == []
    assert store.change_number(c.id) == before

    done = store.put_documents(c.id, [draft("q", ["queued text"], unit(rng, 1), expect_id=queued)], dim=8)
    assert done[0].document_id == queued
    assert store.get_document(c.id, queued).status == "ready"

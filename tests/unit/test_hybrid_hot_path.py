"""What every hybrid search reads after its two lookups, made cheap (issue #9, 1M chunks): the
vectors of the hits only the lexical list found come from the dense index in memory, the BM25 of
those only the dense list found from a lookup of a few ids, the hits' rows and the change number
from driver reads. Each keeps the values it had: the stored vector bit for bit, the same BM25."""

from __future__ import annotations

import numpy as np
import pytest
from support.fake_embedder import FakeEmbedder

from ingest.loaders import document_from_text
from ingest.pipeline import Pipeline
from rag.config import Settings
from rag.embeddings.base import EmbedderSpec
from rag.errors import CollectionNotFound
from rag.indexes import lexical_tantivy
from rag.indexes.dense_faiss import IndexCache
from rag.indexes.lexical_tantivy import TantivyIndex
from rag.indexes.vector_index import VectorIndex
from rag.records import ChunkDraft
from rag.service import Service
from rag.store import Store

DIM = 8
SPEC = EmbedderSpec("local", "test-model", DIM)
WORDS = "solar panel roof inverter battery grid meter cable storm wind river valley".split()


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def put(store: Store, cid: int, source: str, texts: list[str], vectors: np.ndarray, metadata: dict | None = None):
    chunks = [ChunkDraft(t, len(t.split()), 0, len(t)) for t in texts]
    return store.put_document(cid, source=source, content_hash=source, title=f"title of {source}",
                              text_=" ".join(texts), metadata=metadata or {}, chunks=chunks, vectors=vectors,
                              dim=DIM)


@pytest.fixture
def store(tmp_path, backend):
    s = Store(backend.store_location(tmp_path / "rag.sqlite3"))
    yield s
    s.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_an_index_hands_back_the_stored_vectors_of_its_live_ids(kind: str) -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng, 50)
    index = VectorIndex(DIM, kind=kind)
    index.add(np.arange(100, 150), vectors)
    index.remove([120])
    ids, got = index.vectors_of(np.array([140, 120, 7, 101]))  # alive, deleted, never held, alive
    assert ids.tolist() == [140, 101]
    np.testing.assert_array_equal(got, vectors[[40, 1]])
    ids, got = index.vectors_of(np.array([], dtype=np.int64))
    assert ids.tolist() == [] and got.shape == (0, DIM)


def test_the_cache_reads_what_its_index_lacks_from_the_store(tmp_path) -> None:
    store = Store(tmp_path / "rag.sqlite3")
    rng = np.random.default_rng(2)
    c = store.create_collection("docs", SPEC, 200, 20)
    first = put(store, c.id, "a.txt", ["one", "two"], unit(rng, 2))
    cache = IndexCache(store, tmp_path / "indexes", background=False)
    wanted = np.asarray(first.added_chunk_ids, dtype=np.int64)
    ids, got = cache.vectors_of(c, wanted)  # nothing loaded yet: all from the store
    stored_ids, stored = store.vectors_of(collection_id=c.id, chunk_ids=wanted.tolist())
    assert ids.tolist() == stored_ids.tolist()
    np.testing.assert_array_equal(got, stored)
    cache.current(c)
    later = put(store, c.id, "b.txt", ["three"], unit(rng, 1))  # another process's write, not applied here
    # In id order whatever the order asked, as the store gives them; one that does not exist is left out.
    wanted = np.asarray([later.added_chunk_ids[0], first.added_chunk_ids[1], first.added_chunk_ids[0], 10_000])
    ids, got = cache.vectors_of(c, wanted)
    stored_ids, stored = store.vectors_of(collection_id=c.id, chunk_ids=wanted.tolist())
    assert ids.tolist() == stored_ids.tolist() == sorted(wanted[:3].tolist())
    np.testing.assert_array_equal(got, stored)
    cache.close()
    store.close()


def test_a_hybrid_search_reads_no_vector_from_the_store(tmp_path, monkeypatch) -> None:
    with Service(Settings(home=tmp_path, embedder="fake")) as service:
        collection = service.create_collection("docs", chunk_size=16, chunk_overlap=0)
        docs = [document_from_text(f"d{i}", " ".join(WORDS[i % 12:i % 12 + 6]) + f" note{i}") for i in range(12)]
        assert not Pipeline(service.writer(collection)).ingest_documents(docs).failed
        dense = {h.chunk_id: h.score for h in service.search("docs", "solar panel roof", k=100, mode="dense")}
        monkeypatch.setattr("rag.retrieval.HYBRID_DEPTH", 1)  # each list k deep: some hits only one list found

        def refused(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            raise AssertionError("a hybrid search read vectors from the store")

        lexical_only = [h.chunk_id for h in service.search("docs", "solar panel roof", k=3, mode="hybrid")
                        if h.chunk_id not in sorted(dense, key=lambda c: -dense[c])[:3]]
        assert lexical_only  # the case this is about: hits the dense list missed
        # Their cosines as they always were: the stored vectors, in id order, times the query.
        store = Store(service.settings.database_path)
        ids, vectors = store.vectors_of(collection_id=collection.id, chunk_ids=lexical_only)
        store.close()
        query = FakeEmbedder().embed_one("solar panel roof")
        expected = dict(zip(ids.tolist(), (vectors @ query).tolist(), strict=True))
        monkeypatch.setattr(Store, "vectors_of", refused)
        hits = service.search("docs", "solar panel roof", k=3, mode="hybrid")
        assert {h.chunk_id: h.dense_score for h in hits if h.chunk_id in expected} == expected  # bit for bit
        for hit in hits:
            assert hit.dense_score == pytest.approx(dense[hit.chunk_id], abs=1e-6)


def test_a_restriction_to_some_ids_keeps_their_bm25(store: Store, tmp_path, monkeypatch) -> None:
    c = store.create_collection("docs", SPEC, 200, 20)
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(WORDS, size=8)) for _ in range(40)]
    put(store, c.id, "a.txt", texts, unit(rng, len(texts)))
    lexical = TantivyIndex(store, tmp_path / "tantivy")
    lexical.load(c)
    query = "solar storm valley"
    everything = dict(lexical.search(c, query, 1000))
    ids = np.asarray(store.vectors(c.id)[0][::3], dtype=np.int64)
    wanted = {i: everything[i] for i in ids.tolist() if i in everything}
    assert wanted and len(wanted) < len(ids)  # some hold a query word, some none
    few = dict(lexical.search(c, query, len(ids), ids))
    monkeypatch.setattr(lexical_tantivy, "FEW_IDS", 0)  # the term-set path
    many = dict(lexical.search(c, query, len(ids), ids))
    assert few == wanted and many == wanted


def test_driver_reads_give_the_rows_and_the_change_number(store: Store) -> None:
    c = store.create_collection("docs", SPEC, 200, 20)
    rng = np.random.default_rng(4)
    written = put(store, c.id, "a.txt", ["solar panel", "wind river"], unit(rng, 2), metadata={"lang": "en", "n": 2})
    assert store.change_number(c.id) == written.change_number
    chunks = store.chunks([*written.added_chunk_ids, 999_999])
    assert sorted(chunks) == sorted(written.added_chunk_ids)
    first = chunks[written.added_chunk_ids[0]]
    assert (first.text, first.token_count, first.start_char, first.end_char, first.page, first.section) == (
        "solar panel", 2, 0, 11, None, None)
    assert (first.source, first.title, first.metadata) == ("a.txt", "title of a.txt", {"lang": "en", "n": 2})
    assert store.chunks([]) == {}
    store.delete_collection("docs")
    with pytest.raises(CollectionNotFound):
        store.change_number(c.id)

"""Search inside PostgreSQL (rag.indexes.pg): exact cosine scores from the HNSW's candidates, filtered
searches that still fill k, BM25 as its formula says, and no state kept in the process."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from sqlalchemy import text

from rag.embeddings.base import EmbedderSpec
from rag.indexes.pg import BM25_B, BM25_K1, PgDenseIndex, PgLexicalIndex
from rag.records import ChunkDraft, DocumentDraft
from rag.store import Store

DIM = 16
SPEC = EmbedderSpec("local", "test-model", DIM)


@pytest.fixture
def store(pg_url):
    s = Store(pg_url)
    yield s
    s.close()


def unit(rng, n):
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_dense_finds_the_exact_top_k_with_exact_scores_and_a_filter_still_fills_k(store):
    rng = np.random.default_rng(0)
    c = store.create_collection("docs", SPEC, 200, 20)
    vectors = unit(rng, 2000)
    drafts = [DocumentDraft(source=f"d{i}", content_hash=str(i), title=None, text=f"doc {i}",
                            metadata={"shard": i % 40}, chunks=[ChunkDraft(f"doc {i}", 2, 0, 5)],
                            vectors=vectors[i:i + 1]) for i in range(len(vectors))]
    ids = [r.added_chunk_ids[0] for r in store.put_documents(c.id, drafts, dim=DIM)]
    dense = PgDenseIndex(store, ef_search=100)
    assert dense.load(c) == 2000 and dense.loaded == 0  # the index is the database's, not the process's
    with store.read() as s:
        assert s.execute(text(f"SELECT to_regclass('chunks_hnsw_{c.id}')")).scalar() is not None
    query = unit(rng, 1)[0]
    exact = np.argsort(-(vectors @ query), kind="stable")[:10]
    got = dense.search(c, query, 10)
    assert [cid for cid, _ in got] == [ids[i] for i in exact]
    for (_, score), i in zip(got, exact, strict=True):  # full precision, not the index's halfvec
        assert score == pytest.approx(float(vectors[i] @ query), abs=1e-6)
    # A filter keeping 1 chunk in 40: the iterative scan goes on until k pass it.
    allowed = store.filtered_chunk_ids(c.id, {"shard": [7]})
    assert len(allowed) == 50
    keep = [i for i in range(2000) if i % 40 == 7]
    best = sorted(keep, key=lambda i: -float(vectors[i] @ query))[:10]
    assert [cid for cid, _ in dense.search(c, query, 10, allowed)] == [ids[i] for i in best]
    assert dense.search(c, query, 10, np.array([], dtype=np.int64)) == []
    dense.forget(c.id)
    with store.read() as s:
        assert s.execute(text(f"SELECT to_regclass('chunks_hnsw_{c.id}')")).scalar() is None
    assert [cid for cid, _ in dense.search(c, query, 10)] == [ids[i] for i in exact]  # exact without an index


TEXTS = ["Solar panels on the roof make power", "The inverter turns panels' direct current around",
         "Bees live in hives", "Panels, panels and more panels on every roof of the town"]


def test_lexical_scores_are_okapi_bm25(store):
    c = store.create_collection("docs", SPEC, 200, 20)
    rng = np.random.default_rng(1)
    drafts = [DocumentDraft(source=f"t{i}", content_hash=str(i), title=None, text=t, metadata={"n": i},
                            chunks=[ChunkDraft(t, len(t.split()) + i, 0, len(t))], vectors=unit(rng, 1))
              for i, t in enumerate(TEXTS)]
    ids = [r.added_chunk_ids[0] for r in store.put_documents(c.id, drafts, dim=DIM)]
    lexical = PgLexicalIndex(store)
    got = dict(lexical.search(c, "roof panels", 10))
    assert set(got) == {ids[0], ids[1], ids[3]}

    def stem(t: str) -> list[str]:  # the test's stand-in for Snowball here: these words need only this
        return [w.lower().rstrip("s") for w in re.findall(r"[A-Za-z]+", t)]

    lengths = [d.chunks[0].token_count for d in drafts]
    avgdl, n = sum(lengths) / len(lengths), len(TEXTS)
    for i in (0, 1, 3):
        expected = 0.0
        for word in ("roof", "panel"):
            df = sum(word in stem(t) for t in TEXTS)
            tf = stem(TEXTS[i]).count(word)
            if tf:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                expected += idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * lengths[i] / avgdl))
        assert got[ids[i]] == pytest.approx(expected), TEXTS[i]
    assert lexical.search(c, "roof panels", 10, filter={"n": [1, 2]}) == [(ids[1], got[ids[1]])]
    assert lexical.search(c, "the and of", 10) == []  # stopwords only: nothing to look up
    assert lexical.search(c, "panels & !roof | ' \\\\", 10)  # the user's text is never a tsquery
    # A write moves the change number, and the remembered statistics with it.
    gone = store.delete_documents(c.id, [store.document_hashes(c.id, ["t2"])["t2"][0]])
    assert gone[0] == [ids[2]]
    after = dict(lexical.search(c, "roof panels", 10))
    assert after[ids[0]] != got[ids[0]]  # n and avgdl changed: scores follow


def test_metadata_too_long_for_an_index_key_is_stored_but_not_indexed(store):
    """PostgreSQL's btree keys hold ~2.7 kB: a document whose metadata has a longer value is still
    written (SQLite has no such limit), and filters on its other keys still find it."""
    c = store.create_collection("docs", SPEC, 200, 20)
    r = store.put_document(c.id, source="a", content_hash="h", title=None, text_="x",
                           metadata={"notes": "y" * 5000, "tags": list(range(2000)), "lang": "en"},
                           chunks=[ChunkDraft("x", 1, 0, 1)], vectors=unit(np.random.default_rng(3), 1), dim=DIM)
    assert store.filtered_chunk_ids(c.id, {"lang": ["en"]}).tolist() == r.added_chunk_ids
    assert store.get_document(c.id, r.document_id).metadata["notes"] == "y" * 5000

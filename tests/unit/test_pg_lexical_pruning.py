"""PostgreSQL lexical search scores only the chunks holding the query's rarest words (MaxScore's
bound, rag.indexes.maxscore) and still returns exactly the full scoring's top k: ids, scores, ties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import event

from rag.embeddings.base import EmbedderSpec
from rag.indexes import maxscore
from rag.indexes.pg import PgLexicalIndex
from rag.records import ChunkDraft, DocumentDraft
from rag.store import Store

DIM = 4
SPEC = EmbedderSpec("local", "test-model", DIM)
# Invented words, each its own Snowball stem; word j is in a chunk with probability 0.9 * 0.7**j,
# so the first match most chunks and the last a handful.
VOCABULARY = ["zork", "blint", "crump", "frobnik", "glat", "hurk", "jint", "klomp", "mulk", "nurp",
              "plonk", "quib", "rugg", "splat", "trunk", "vlak", "wump", "xant"]
CHUNKS = 1200


def _text(rng: np.random.Generator) -> str:
    words = [w for j, w in enumerate(VOCABULARY) for _ in range(int(rng.integers(1, 4)))
             if rng.random() < 0.9 * 0.7 ** j]
    rng.shuffle(words)
    return " ".join(words) or "nothing"


@pytest.fixture(scope="module")
def corpus(pg_server):
    """A collection of CHUNKS chunks (every tenth a copy of another: equal scores, ordered by id)."""
    name = pg_server.create_database()
    store = Store(pg_server.url(name))
    try:
        c = store.create_collection("docs", SPEC, 200, 20)
        rng = np.random.default_rng(7)
        texts: list[str] = []
        for i in range(CHUNKS):
            texts.append(texts[int(rng.integers(0, i))] if i % 10 == 9 else _text(rng))
        vectors = np.ones((1, DIM), dtype=np.float32) / 2
        drafts = [DocumentDraft(source=f"d{i}", content_hash=str(i), title=None, text=t, metadata={"shard": i % 3},
                                chunks=[ChunkDraft(t, len(t.split()), 0, len(t))], vectors=vectors)
                  for i, t in enumerate(texts)]
        ids = [r.added_chunk_ids[0] for r in store.put_documents(c.id, drafts, dim=DIM)]
        yield store, c, ids
    finally:
        store.close()
        pg_server.drop_database(name)


def _queries(n: int) -> list[str]:
    rng = np.random.default_rng(11)
    out = []
    for _ in range(n):
        size = int(rng.integers(1, 7))
        out.append(" ".join(rng.choice(VOCABULARY, size=size, replace=False)))
    return out


@pytest.mark.parametrize("k", [1, 3, 10, 40, CHUNKS + 5])
def test_pruned_search_is_exactly_the_full_scoring(corpus, k):
    store, c, ids = corpus
    full = PgLexicalIndex(store, posting_budget=math.inf)  # one round, every word: the whole scoring
    pruned = PgLexicalIndex(store, posting_budget=30)
    pruned_rounds = 0
    for q in _queries(60):
        expected = full.search(c, q, k)
        assert full.last_rounds in ((), (len(set(q.split())),))
        assert pruned.search(c, q, k) == expected, q
        pruned_rounds += pruned.last_rounds[-1] < len(set(q.split()))
    if k <= 10:
        assert pruned_rounds >= 10  # most queries with a rare word stop before using every word
    # Ties: copies score alike and keep the full scoring's order by id, at any k.
    scores = [s for _, s in full.search(c, "zork blint xant", CHUNKS)]
    assert len(scores) > len(set(scores))


def test_filters_and_allowed_ids_give_the_full_scoring_result(corpus):
    store, c, ids = corpus
    full = PgLexicalIndex(store, posting_budget=math.inf)
    pruned = PgLexicalIndex(store, posting_budget=30)
    few = np.array(ids[::7], dtype=np.int64)
    many = np.array(ids[: CHUNKS // 2], dtype=np.int64)
    for q in _queries(25):
        for k in (1, 10):
            assert pruned.search(c, q, k, filter={"shard": [1]}) == full.search(c, q, k, filter={"shard": [1]}), q
            assert pruned.search(c, q, k, few) == full.search(c, q, k, few), q
            assert pruned.search(c, q, k, many) == full.search(c, q, k, many), q


def test_the_rare_words_pick_the_candidates_and_common_words_alone_take_more_rounds(corpus):
    store, c, _ = corpus
    pruned = PgLexicalIndex(store, posting_budget=30)
    picked: list[list[str]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if isinstance(parameters, dict) and "picking" in parameters:
            picked.append(list(parameters["picking"]))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        got = pruned.search(c, "zork blint crump jint", 10)
        assert pruned.last_rounds == (1,) and picked == [["jint"]]  # the rarest word alone was enough
        assert got == PgLexicalIndex(store, posting_budget=math.inf).search(c, "zork blint crump jint", 10)
        picked.clear()
        pruned.search(c, "zork blint crump", 1000)  # fewer candidates than k: the other words must pick more
        assert len(pruned.last_rounds) > 1 and [len(p) for p in picked] == list(pruned.last_rounds)
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)


def test_rounds_take_the_rarest_words_within_the_budget_or_as_many_as_the_kth_score_needs():
    assert maxscore.within_budget([5, 10, 20, 400, 900], 30) == 2
    assert maxscore.within_budget([5, 10, 20, 400, 900], 120, used=2) == 3
    assert maxscore.within_budget([100, 200], 30) == 1  # at least one word, even over budget
    assert maxscore.within_budget([1, 2, 3], math.inf) == 3
    assert maxscore.within_budget([1, 2, 3], math.inf, used=3) == 3
    assert maxscore.needed([5.0, 3.0, 1.0, 0.5], 2.0) == 2  # the last two add at most 1.5 < 2
    assert maxscore.needed([5.0, 3.0, 1.0, 0.5], 1.5) == 3  # a tie with the bound is not enough
    assert maxscore.needed([5.0, 3.0], 0.0) == 2


def test_a_tie_with_the_bound_is_not_proof():
    assert maxscore.proven([9.0, 5.0], 2, 4.0)
    assert not maxscore.proven([9.0, 4.0], 2, 4.0)  # a left-out chunk could tie the k-th, with a lower id
    assert not maxscore.proven([9.0], 2, 0.5)  # fewer candidates than k

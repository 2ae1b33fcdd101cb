"""Hybrid search runs its lexical and dense lookups at once (issue #9, item 7), with the same result."""

from __future__ import annotations

import threading
import time

import pytest
from test_dense_scale import WordsEmbedder, ingest, text_of

from rag.config import Settings
from rag.records import Collection
from rag.retrieval import LEXICAL_THREADS, Retriever, fuse
from rag.service import Service
from rag.store import Store


class _SlowLexical:
    def __init__(self, ranking):
        self.ranking = ranking

    def search(self, collection, query, k, *, filter=None):
        time.sleep(0.3)
        return self.ranking[:k]


class _SlowDense:
    def __init__(self, ranking):
        self.ranking = ranking

    def search(self, collection, vector, k, allowed=None):
        time.sleep(0.3)
        return self.ranking[:k]


def _notes(service: Service, documents: int) -> tuple[Collection, Store, list[int]]:
    """A collection of `documents` notes, a store of its own on the same file, and its chunk ids."""
    service.create_collection("notes", embedder="hashed-words")
    ingest(service, "notes", {f"n{i}": text_of(i) for i in range(documents)})
    coll = service.get_collection("notes")
    store = Store(service.settings.database_path)
    return coll, store, store.vectors(coll.id)[0].tolist()


def test_hybrid_runs_its_two_lookups_at_once_with_the_same_result(tmp_path):
    with Service(Settings(home=tmp_path / "home")) as service:
        coll, store, ids = _notes(service, 12)
        dense = [(cid, 1.0 - n / 20) for n, cid in enumerate(ids)]
        lexical = [(cid, 5.0 - n / 10) for n, cid in enumerate(reversed(ids))]
        retriever = Retriever(store, _SlowDense(dense), _SlowLexical(lexical), lambda c: WordsEmbedder())
        started = time.perf_counter()
        hits = retriever.search(coll, "solar panel", k=5, mode="hybrid")
        elapsed = time.perf_counter() - started
        retriever.close()
        assert [h.chunk_id for h in hits] == [c for c, *_ in fuse(dense, lexical)[:5]]
        assert elapsed < 0.55  # about the slower of the two (0.3 s), not their sum (0.6 s)
        store.close()


class _Failing:
    def search(self, *args, **kwargs):
        raise RuntimeError("index unavailable")


def test_an_error_in_either_half_is_the_search_error(tmp_path):
    with Service(Settings(home=tmp_path / "home")) as service:
        service.create_collection("notes", embedder="hashed-words")
        ingest(service, "notes", {"n1": text_of(1)})
        coll = service.get_collection("notes")
        store = Store(service.settings.database_path)
        ranking = [(store.vectors(coll.id)[0][0].item(), 1.0)]
        for dense, lexical in ((_Failing(), _SlowLexical(ranking)), (_SlowDense(ranking), _Failing())):
            retriever = Retriever(store, dense, lexical, lambda c: WordsEmbedder())
            with pytest.raises(RuntimeError, match="index unavailable"):
                retriever.search(coll, "solar", k=1, mode="hybrid")
            retriever.close()
        store.close()


class _ThreadOfLexical:
    def __init__(self, ranking):
        self.ranking = ranking
        self.threads: list[str] = []

    def search(self, collection, query, k, *, filter=None):
        self.threads.append(threading.current_thread().name)
        return self.ranking[:k]


def test_a_lexical_half_no_pool_thread_took_up_is_run_by_the_caller(tmp_path):
    with Service(Settings(home=tmp_path / "home")) as service:
        coll, store, ids = _notes(service, 4)
        ranking = [(cid, 1.0 - n / 10) for n, cid in enumerate(ids)]
        lexical = _ThreadOfLexical(ranking)
        retriever = Retriever(store, _SlowDense(ranking), lexical, lambda c: WordsEmbedder())
        release = threading.Event()
        pool = retriever._lexical_pool()
        busy = [pool.submit(release.wait, 5.0) for _ in range(LEXICAL_THREADS)]  # every pool thread taken
        try:
            started = time.perf_counter()
            hits = retriever.search(coll, "solar panel", k=3, mode="hybrid")
            elapsed = time.perf_counter() - started
        finally:
            release.set()
        assert [f.result() for f in busy] == [True] * LEXICAL_THREADS
        retriever.close()
        assert [h.chunk_id for h in hits] == ids[:3]
        assert lexical.threads == [threading.current_thread().name]  # run here, not queued behind the pool
        assert elapsed < 1.0  # the dense half's 0.3 s, not the pool's 5 s
        store.close()

"""Dense search at scale (issue #9): flat below the exact limit, HNSW above it, tombstones,
compaction, checkpoints instead of saves per request, replay after a crash, several processes on
one data folder, one FAISS thread per caller, and hybrid running its two lookups at once.

Small data throughout (hundreds to a few thousand vectors), with the exact limit set low so the
HNSW path runs; a deterministic bag-of-words embedder stands in for the model (plumbing, not meaning).
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
import pytest

from ingest.loaders import document_from_text
from ingest.pipeline import Pipeline
from rag.config import Settings
from rag.embeddings import Embedder, register_embedder
from rag.embeddings.base import EmbedderSpec
from rag.indexes.dense_faiss import IndexCache
from rag.indexes.rwlock import ReadWriteLock
from rag.indexes.vector_index import VectorIndex, read_stamp
from rag.records import ChunkDraft
from rag.service import Service
from rag.store import Store

ROOT = Path(__file__).resolve().parents[2]
SPEC = EmbedderSpec("local", "test-model", 16)


class WordsEmbedder(Embedder):
    """Each word adds a fixed pseudo-random direction: texts sharing words are close."""

    kind = "hashed-words"
    model_id = "hashed-words-32"
    dim = 32
    max_input_tokens = 512

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def _embed_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
                out[i] += np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        out[~out.any(axis=1), 0] = 1.0
        return out


register_embedder(WordsEmbedder.kind, lambda settings, client: WordsEmbedder())

WORDS = ("solar panel roof inverter battery grid meter cable storm wind river valley glacier delta "
         "forest canopy moss fern pine oak maple birch cedar willow").split()


def text_of(i: int) -> str:
    rng = np.random.default_rng(i)
    return " ".join(rng.choice(WORDS, size=12)) + f" note{i}"


def unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def put(store: Store, cid: int, source: str, vectors: np.ndarray):
    chunks = [ChunkDraft(f"{source} {i}", 2, 0, 1) for i in range(len(vectors))]
    return store.put_document(cid, source=source, content_hash=source, title=None, text_=source,
                              metadata={}, chunks=chunks, vectors=vectors, dim=vectors.shape[1])


def exact_top(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    order = np.argsort(-(vectors @ query), kind="stable")[:k]
    return ids[order].tolist()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "rag.sqlite3")
    yield s
    s.close()


# -- one collection's index ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_delete_takes_effect_at_once_and_survives_a_save(tmp_path, kind):
    rng = np.random.default_rng(0)
    vectors, ids = unit(rng, 400), np.arange(1000, 1400)
    index = VectorIndex(16, 5, kind=kind)
    index.add(ids, vectors)
    assert index.search(vectors[7], 1)[0][0] == 1007
    assert index.remove([1007, 1008, 424242]) == 2
    assert len(index) == 398 and index.rows == 400
    assert 1007 not in [i for i, _ in index.search(vectors[7], 10)]
    # A filter meets the tombstones: only allowed, live ids come back.
    allowed = np.array([1007, 1010, 1020, 1030])
    assert {i for i, _ in index.search(vectors[7], 10, allowed)} == {1010, 1020, 1030}
    assert index.search(vectors[7], 10, np.array([1007, 1008])) == []
    assert index.search(vectors[7], 10, np.array([], dtype=np.int64)) == []

    path = tmp_path / "i.faiss"
    index.save(path)
    again = VectorIndex.load(path)
    assert (again.stamp, again.kind, again.rows, again.dead) == (5, kind, 400, 2)
    np.testing.assert_array_equal(again.ids(), index.ids())
    for q in vectors[:20]:
        assert again.search(q, 10) == index.search(q, 10)
    assert read_stamp(path) == 5


def test_hnsw_finds_what_exact_search_finds(tmp_path):
    """recall@10 against exact on clustered vectors (the real figure, on MiniLM vectors, is in the README)."""
    rng = np.random.default_rng(1)
    centres = unit(rng, 40, 32)
    vectors = centres[rng.integers(0, 40, 3000)] + 0.35 * rng.standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(3000) + 1
    hnsw = VectorIndex(32, kind="hnsw")
    hnsw.add(ids, vectors)
    queries = unit(rng, 100, 32)
    found = [len({i for i, _ in hnsw.search(q, 10)} & set(exact_top(vectors, ids, q, 10))) for q in queries]
    assert sum(found) / (10 * len(queries)) >= 0.95
    # A filter keeping a few rows is answered exactly; one keeping most walks the graph, widened.
    few = rng.choice(ids, 40, replace=False)  # under 2% of the rows
    many = rng.choice(ids, 2500, replace=False)
    for allowed in (few, many):
        keep = np.isin(ids, allowed)
        got = [i for i, _ in hnsw.search(queries[0], 10, allowed)]
        assert set(got) <= set(allowed.tolist())
        want = exact_top(vectors[keep], ids[keep], queries[0], 10)
        assert len(set(got) & set(want)) >= 9


def test_rows_added_out_of_id_order_are_still_found_and_deleted():
    rng = np.random.default_rng(2)
    index = VectorIndex(16, kind="hnsw")
    vectors = unit(rng, 30)
    index.add(np.arange(100, 120), vectors[:20])
    index.add(np.array([5, 300, 7, 6, 8, 9, 10, 11, 12, 13]), vectors[20:])
    assert sorted(index.ids().tolist()) == sorted([*range(100, 120), 5, 300, 6, 7, 8, 9, 10, 11, 12, 13])
    assert index.search(vectors[22], 1)[0][0] == 7
    index.remove([7, 110])
    assert 7 not in index.ids() and 110 not in index.ids()
    index.add([7], vectors[22:23])  # a chunk's vector never changes: its row comes back
    index.add([101], vectors[1:2])  # already held: a repeat
    assert len(index) == 29 and index.rows == 30


def test_a_scan_reads_every_vector_a_batch_at_a_time_and_the_log_makes_it_exact(store):
    rng = np.random.default_rng(11)
    c = store.create_collection("docs", SPEC, 200, 20)
    first = put(store, c.id, "a", unit(rng, 10))
    scan = store.scan_vectors(c.id, batch=4)
    assert (scan.stamp, scan.count) == (first.change_number, 10)
    got_ids, got_vectors = next(scan.batches)
    late = put(store, c.id, "b", unit(rng, 3))  # commits between two batches
    store.delete_documents(c.id, [first.document_id])
    rest = list(scan.batches)
    assert [len(i) for i, _ in rest] == [3]  # the deleted rows are gone, the late ones read
    index = VectorIndex(16, scan.stamp)
    index.add(got_ids, got_vectors)
    for ids, vectors in rest:
        index.add(ids, vectors)
    for change in store.changes_since(c.id, scan.stamp):
        index.remove(change.removed_chunk_ids)
        ids, vectors = store.vectors_of(collection_id=c.id, chunk_ids=change.added_chunk_ids)
        index.add(ids, vectors)
    assert sorted(index.ids().tolist()) == late.added_chunk_ids


# -- the cache: kinds, compaction, checkpoints ----------------------------------------------------------

def test_the_kind_follows_the_size_and_compaction_swaps_while_writes_go_on(tmp_path, store):
    rng = np.random.default_rng(3)
    c = store.create_collection("docs", SPEC, 200, 20)
    vectors = {}
    for d in range(8):
        r = put(store, c.id, f"d{d}", unit(rng, 5))
        vectors.update(zip(r.added_chunk_ids, store.vectors_of(collection_id=c.id, chunk_ids=r.added_chunk_ids)[1],
                           strict=True))
    cache = IndexCache(store, tmp_path / "indexes", exact_limit=50, background=False)
    assert cache.current(c).kind == "flat" and len(cache.current(c)) == 40

    for d in range(8, 12):  # 60 vectors: past the limit, so the index is rebuilt as HNSW
        r = put(store, c.id, f"d{d}", unit(rng, 5))
        cache.apply(c, r, store.vectors_of(collection_id=c.id, chunk_ids=r.added_chunk_ids)[1])
    assert cache.current(c).kind == "flat"

    # Writes committed while the new index is built are replayed before the swap.
    real_build = cache._build
    late = []

    def build_then_write(collection, kind, **options):
        built = real_build(collection, kind, **options)
        late.append(put(store, c.id, "late", unit(rng, 3)))
        removed, _ = store.delete_documents(c.id, [late[0].document_id - 1])
        late.append(removed)
        return built

    cache._build = build_then_write  # type: ignore[method-assign]
    cache.maintain()
    index = cache.current(c)
    assert index.kind == "hnsw" and index.dead == len(late[1])  # deleted after the build: tombstoned
    assert sorted(index.ids().tolist()) == sorted(store.vectors(c.id)[0].tolist())
    assert set(late[0].added_chunk_ids) <= set(index.ids().tolist()) and not set(late[1]) & set(index.ids().tolist())
    assert VectorIndex.load(cache.path(c.id)).kind == "hnsw"  # the compacted index is checkpointed

    # Below half the limit, a compaction goes back to exact search.
    store.delete_documents(c.id, [d.id for d in store.list_documents(c.id)][:9])
    cache._build = real_build  # type: ignore[method-assign]
    assert len(cache.current(c)) < 25
    cache.maintain()
    assert cache.current(c).kind == "flat" and cache.current(c).dead == 0


def test_closing_abandons_a_compaction_under_way(tmp_path, store):
    rng = np.random.default_rng(12)
    c = store.create_collection("docs", SPEC, 200, 20)
    for d in range(30):
        put(store, c.id, f"d{d}", unit(rng, 2))
    cache = IndexCache(store, tmp_path / "indexes", exact_limit=50, background=False)
    live = cache.current(c)
    real_scan = store.scan_vectors

    def slow_scan(collection_id, **options):
        scan = real_scan(collection_id, batch=1)
        return type(scan)(scan.stamp, scan.count, (time.sleep(0.05) or b for b in scan.batches))

    store.scan_vectors = slow_scan  # type: ignore[method-assign]
    result = []
    compaction = threading.Thread(target=lambda: result.append(cache.compact(c)))
    compaction.start()
    time.sleep(0.3)
    started = time.monotonic()
    cache.close()
    compaction.join(5)
    assert result == [False] and time.monotonic() - started < 1.5  # not the 3 s a whole build takes
    assert cache.current(c) is live  # never replaced
    store.scan_vectors = real_scan  # type: ignore[method-assign]


def test_forced_approximate_with_limit_zero_even_from_an_exact_checkpoint(tmp_path, store):
    rng = np.random.default_rng(4)
    c = store.create_collection("docs", SPEC, 200, 20)
    put(store, c.id, "a", unit(rng, 3))
    exact = IndexCache(store, tmp_path / "i", background=False)
    assert exact.current(c).kind == "flat"
    forced = IndexCache(store, tmp_path / "i", exact_limit=0, background=False)
    assert forced.current(c).kind == "hnsw"  # converted at load, not after a while in the background
    assert VectorIndex.load(forced.path(c.id)).kind == "hnsw"


def test_no_checkpoint_per_request_but_after_bulk_on_timer_and_at_close(tmp_path, store):
    rng = np.random.default_rng(5)
    c = store.create_collection("docs", SPEC, 200, 20)
    for d in range(50):
        put(store, c.id, f"d{d}", unit(rng, 20))  # 1000 vectors: a checkpoint waits for 10 changes
    cache = IndexCache(store, tmp_path / "indexes", background=False)
    cache.load(c)
    path = cache.path(c.id)
    first = read_stamp(path)
    assert first == store.change_number(c.id)  # a build from the store is saved at once

    small = put(store, c.id, "small", unit(rng, 2))
    cache.apply(c, small, store.vectors_of(collection_id=c.id, chunk_ids=small.added_chunk_ids)[1])
    cache.save(c)  # what an upload request calls: two changes are not worth 1000 vectors' write
    removed, stamp = store.delete_documents(c.id, [small.document_id])
    from rag.records import ChunkChange
    cache.apply(c, ChunkChange(removed, [], stamp))
    assert read_stamp(path) == first

    bulk = put(store, c.id, "bulk", unit(rng, 12))
    cache.apply(c, bulk, store.vectors_of(collection_id=c.id, chunk_ids=bulk.added_chunk_ids)[1])
    cache.save(c)
    assert read_stamp(path) == bulk.change_number

    timed = IndexCache(store, tmp_path / "indexes", checkpoint_s=0.2)
    timed.load(c)
    more = put(store, c.id, "more", unit(rng, 15))
    timed.apply(c, more, store.vectors_of(collection_id=c.id, chunk_ids=more.added_chunk_ids)[1])
    deadline = time.monotonic() + 10
    while read_stamp(path) != more.change_number and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_stamp(path) == more.change_number
    timed.close()

    last = put(store, c.id, "last", unit(rng, 1))
    cache.load(c)  # replays what the other cache wrote, and this one
    cache.apply(c, last, None)  # already replayed: nothing to do
    cache.close()
    assert read_stamp(path) == last.change_number


def test_a_restart_replays_the_log_from_the_checkpoint_not_the_whole_store(tmp_path, store):
    rng = np.random.default_rng(6)
    c = store.create_collection("docs", SPEC, 200, 20)
    docs = [put(store, c.id, f"d{d}", unit(rng, 4)) for d in range(30)]
    cache = IndexCache(store, tmp_path / "indexes", exact_limit=50, background=False)
    cache.load(c)
    cache.close()
    saved = read_stamp(cache.path(c.id))
    put(store, c.id, "new", unit(rng, 4))
    store.delete_documents(c.id, [docs[0].document_id, docs[1].document_id])

    restarted = IndexCache(store, tmp_path / "indexes", exact_limit=50, background=False)
    scans = []
    real_scan = store.scan_vectors
    store.scan_vectors = lambda *a, **k: scans.append(a) or real_scan(*a, **k)  # type: ignore[method-assign]
    index = restarted.current(c)
    store.scan_vectors = real_scan  # type: ignore[method-assign]
    assert scans == [] and saved < index.stamp == store.change_number(c.id)
    assert sorted(index.ids().tolist()) == sorted(store.vectors(c.id)[0].tolist())
    assert index.kind == "hnsw"  # as saved: 120 vectors over a limit of 50


def test_a_damaged_or_older_format_file_is_rebuilt(tmp_path, store):
    rng = np.random.default_rng(7)
    c = store.create_collection("docs", SPEC, 200, 20)
    put(store, c.id, "a", unit(rng, 5))
    cache = IndexCache(store, tmp_path / "indexes", background=False)
    path = cache.path(c.id)
    path.parent.mkdir(parents=True)
    for damaged in (b"RAGFAISS1\n{\"stamp\": 1, \"dim\": 16}\n" + b"\0" * 64, b"RAGFAISS2\n{\"stamp\": 1}\n", b""):
        path.write_bytes(damaged)
        fresh = IndexCache(store, tmp_path / "indexes", background=False).current(c)
        assert len(fresh) == 5 and read_stamp(path) == store.change_number(c.id)
    # A temporary file left by a checkpoint killed mid-write is ignored.
    (path.parent / f".{path.name}.123.456.tmp").write_bytes(b"RAGFAISS2\n{")
    assert len(IndexCache(store, tmp_path / "indexes", background=False).current(c)) == 5


# -- locks and threads ------------------------------------------------------------------------------------

def test_writers_go_first_and_yield_to_a_long_reader():
    lock = ReadWriteLock()
    order: list[str] = []

    def take(kind: str) -> None:
        with lock.write() if kind == "writer" else lock.read():
            order.append(kind)

    with lock.read():
        writer = threading.Thread(target=take, args=("writer",))
        writer.start()
        time.sleep(0.1)  # the writer now waits for this reader
        reader = threading.Thread(target=take, args=("reader",))
        reader.start()
        time.sleep(0.1)
        assert order == []  # the new reader queues behind the waiting writer
    writer.join(2)
    reader.join(2)
    assert order == ["writer", "reader"]

    with lock.read(long=True):
        with lock.write(yield_to_long_readers=True) as held:
            assert held is False
        with lock.read():  # short readers still get in beside a long one
            pass
    with lock.write(yield_to_long_readers=True) as held:
        assert held is True


def test_faiss_runs_one_thread_in_every_thread_that_searches(tmp_path, store):
    rng = np.random.default_rng(8)
    c = store.create_collection("docs", SPEC, 200, 20)
    put(store, c.id, "a", unit(rng, 5))
    cache = IndexCache(store, tmp_path / "indexes", background=False)
    seen = []

    def search() -> None:
        cache.search(c, unit(rng, 1)[0], 3)
        seen.append(faiss.omp_get_max_threads())

    thread = threading.Thread(target=search)
    thread.start()
    thread.join()
    assert seen == [1]


def test_searches_never_wait_for_a_checkpoint(tmp_path, store):
    """A checkpoint holds the index for reading; writes meanwhile wait in the log, searches go on."""
    rng = np.random.default_rng(9)
    c = store.create_collection("docs", SPEC, 200, 20)
    put(store, c.id, "a", unit(rng, 50))
    cache = IndexCache(store, tmp_path / "indexes", background=False)
    cache.load(c)
    writing = threading.Event()
    release = threading.Event()
    index = cache.current(c)
    real_write = index.write_temp

    def slow_write(path):
        writing.set()
        release.wait(10)
        return real_write(path)

    index.write_temp = slow_write  # type: ignore[method-assign]
    ahead = put(store, c.id, "b", unit(rng, 3))
    cache.apply(c, ahead, store.vectors_of(collection_id=c.id, chunk_ids=ahead.added_chunk_ids)[1])
    late = put(store, c.id, "c", unit(rng, 3))
    checkpoint = threading.Thread(target=cache.checkpoint, args=(c.id,))
    checkpoint.start()
    assert writing.wait(10)
    started = time.monotonic()
    cache.apply(c, late, store.vectors_of(collection_id=c.id, chunk_ids=late.added_chunk_ids)[1])
    assert cache.search(c, unit(rng, 1)[0], 5)
    assert time.monotonic() - started < 2
    release.set()
    checkpoint.join(10)
    assert read_stamp(cache.path(c.id)) == ahead.change_number
    assert set(late.added_chunk_ids) <= set(cache.current(c).ids().tolist())  # replayed after it


# -- services, processes, crashes -------------------------------------------------------------------------

def ingest(service: Service, collection: str, docs: dict[str, str]) -> None:
    writer = service.writer(service.get_collection(collection))
    Pipeline(writer).ingest_documents([document_from_text(s, t) for s, t in docs.items()], save=False)


def sources(service: Service, collection: str, query: str, k: int = 50) -> set[str]:
    return {h.source for h in service.search(collection, query, k=k, mode="dense")}


def test_two_services_on_one_folder_see_each_others_writes(tmp_path):
    settings = Settings(home=tmp_path / "home", dense_exact_limit=20, index_checkpoint_s=3600)
    a, b = Service(settings), Service(settings)
    a.create_collection("notes", embedder="hashed-words")
    ingest(a, "notes", {f"n{i}": text_of(i) for i in range(30)})
    assert sources(b, "notes", text_of(3), k=30) == {f"n{i}" for i in range(30)}
    ingest(b, "notes", {"fresh": "glacier delta river " * 3})
    assert "fresh" in sources(a, "notes", "glacier delta river")
    doomed = [d.id for d in b.list_documents("notes") if d.source in ("n3", "fresh")]
    b.delete_documents("notes", doomed)
    assert not {"n3", "fresh"} & sources(a, "notes", text_of(3))
    a.close()
    b.close()


def test_the_change_log_is_trimmed_at_a_checkpoint_and_a_process_behind_it_starts_from_the_file(tmp_path):
    settings = Settings(home=tmp_path / "home", dense_exact_limit=20, index_checkpoint_s=3600)
    a, b = Service(settings), Service(settings)
    a.create_collection("notes", embedder="hashed-words")
    ingest(a, "notes", {f"n{i}": text_of(i) for i in range(30)})
    assert len(sources(a, "notes", text_of(3), k=30)) == 30  # a holds the index in memory
    ingest(b, "notes", {f"m{i}": text_of(500 + i) for i in range(20)})
    b.warm_up()  # both of b's indexes caught up with the store, and on disk
    assert "m5" in {h.source for h in b.search("notes", "note505", k=3, mode="lexical")}
    b.close()  # checkpoints, and trims the log to what both indexes on disk hold

    store = Store(settings.database_path)
    coll = store.get_collection("notes")
    current = store.change_number(coll.id)
    assert store.changes_since(coll.id, current) == []
    assert store.changes_since(coll.id, current - 1) is None  # nothing before the checkpoint is kept
    store.close()

    scans = []
    real_scan = Store.scan_vectors
    Store.scan_vectors = lambda self, *a, **k: scans.append(a) or real_scan(self, *a, **k)  # type: ignore[method-assign]
    try:
        found = sources(a, "notes", text_of(505), k=60)
    finally:
        Store.scan_vectors = real_scan  # type: ignore[method-assign]
    assert scans == []  # a's index was behind the trimmed log: it loaded the checkpoint, no rebuild
    assert found == {f"n{i}" for i in range(30)} | {f"m{i}" for i in range(20)}
    a.close()


CRASHING_WRITER = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    import test_dense_scale as t
    from rag.config import Settings
    from rag.service import Service
    from pathlib import Path
    service = Service(Settings(home=Path({home!r}), dense_exact_limit=20, index_checkpoint_s=3600))
    t.ingest(service, "notes", {{f"late{{i}}": t.text_of(1000 + i) for i in range(25)}})
    doomed = [d.id for d in service.list_documents("notes", limit=1000) if d.source in ("n1", "n2", "late0")]
    service.delete_documents("notes", doomed)
    print("written", flush=True)
    time.sleep(600)
""")


@pytest.mark.slow
def test_kill_9_of_a_writer_that_never_checkpointed_loses_nothing(tmp_path):
    home = tmp_path / "home"
    settings = Settings(home=home, dense_exact_limit=20, index_checkpoint_s=3600)
    with Service(settings) as service:
        service.create_collection("notes", embedder="hashed-words")
        ingest(service, "notes", {f"n{i}": text_of(i) for i in range(30)})
    index_file = home / "indexes" / "collection-1.faiss"
    checkpointed = read_stamp(index_file)
    assert checkpointed is not None

    code = CRASHING_WRITER.format(root=str(ROOT), tests=str(ROOT / "tests" / "integration"), home=str(home))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert read_stamp(index_file) == checkpointed  # the writer died before any checkpoint

    store = Store(settings.database_path)
    coll = store.get_collection("notes")
    cache = IndexCache(store, settings.index_dir, exact_limit=20, background=False)
    restarted = cache.current(coll)
    assert restarted.stamp == store.change_number(coll.id) > checkpointed
    assert sorted(restarted.ids().tolist()) == sorted(store.vectors(coll.id)[0].tolist())
    store.close()
    with Service(settings) as service:
        found = sources(service, "notes", text_of(1001), k=60)
        assert "late1" in found and not {"n1", "n2", "late0"} & found


# -- memory --------------------------------------------------------------------------------------------------

# Peak RSS from VmHWM: getrusage's ru_maxrss survives exec, so a child of a big test process
# would report its parent's peak.
LOAD_AND_MEASURE = textwrap.dedent("""
    import json, re, sys
    sys.path.insert(0, {root!r})
    from rag.indexes.dense_faiss import IndexCache
    from rag.store import Store
    def peak():
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
    store = Store({db!r})
    coll = store.get_collection("big")
    cache = IndexCache(store, {indexes!r}, exact_limit=1_000_000, background=False)  # flat, as saved
    before = peak()
    n = cache.load(coll)
    print(json.dumps({{"vectors": n, "before": before, "peak": peak()}}))
""")


@pytest.mark.slow
def test_loading_100k_vectors_holds_one_copy(tmp_path):
    """Peak RSS of a process that loads a 100k x 384 checkpoint: at most 2.5x the raw vectors in all,
    and the load itself adds about one copy (the old loader held the file, a copy and the index)."""
    n, dim = 100_000, 384
    store = Store(tmp_path / "rag.sqlite3")
    coll = store.create_collection("big", EmbedderSpec("local", "m", dim), 200, 20)
    store.close()
    index = VectorIndex(dim, 0, kind="flat")
    rng = np.random.default_rng(10)
    for start in range(0, n, 20_000):
        index.add(np.arange(start, start + 20_000) + 1, unit(rng, 20_000, dim))
    index.save(tmp_path / "indexes" / f"collection-{coll.id}.faiss")
    del index
    code = LOAD_AND_MEASURE.format(root=str(ROOT), db=str(tmp_path / "rag.sqlite3"), indexes=str(tmp_path / "indexes"))
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    raw = n * dim * 4
    assert out["vectors"] == n
    assert out["peak"] <= 2.5 * raw
    assert out["peak"] - out["before"] <= 1.25 * raw

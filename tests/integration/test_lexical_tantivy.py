"""The tantivy lexical index: ranking, writes, filters, stamps and catch-up across processes,
damage, and a writer killed mid-way. Real store, real tantivy folders, small data."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support.paths import CORPUS, ROOT

from rag.embeddings.base import EmbedderSpec
from rag.indexes import lexical_tantivy
from rag.indexes.analysis import STOPWORDS, query_terms
from rag.indexes.lexical_tantivy import TantivyIndex
from rag.records import ChunkDraft, Collection, Replaced
from rag.store import Store

DIM = 4
SPEC = EmbedderSpec("local", "test-model", DIM)


def put(store: Store, collection: Collection, source: str, texts: list[str], metadata: dict | None = None
        ) -> Replaced:
    vectors = np.ones((len(texts), DIM), np.float32) / 2
    return store.put_document(collection.id, source=source, content_hash=str(hash(tuple(texts))), title=None,
                              text_=" ".join(texts), metadata=metadata or {},
                              chunks=[ChunkDraft(t, len(t.split()), 0, len(t)) for t in texts],
                              vectors=vectors, dim=DIM)


def ids(ranking: list[tuple[int, float]]) -> list[int]:
    return [i for i, _ in ranking]


def eventually(check, timeout_s: float = 5.0):  # noqa: ANN001, ANN201
    """`check()`'s first truthy value, polled until `timeout_s` (another process's write shows up in
    a searcher once a catch-up has committed it)."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, "not seen in time"
        time.sleep(0.02)
    return value


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "rag.sqlite3")
    yield s
    s.close()


@pytest.fixture
def collection(store: Store) -> Collection:
    return store.create_collection("docs", SPEC, 200, 20)


@pytest.fixture
def lexical(store: Store, tmp_path: Path) -> TantivyIndex:
    return TantivyIndex(store, tmp_path / "indexes" / "tantivy")


# -- analysis and ranking ------------------------------------------------------------------------

def test_queries_and_chunks_share_one_analysis() -> None:
    assert query_terms("The Running of the naïve Cells, cells and CELL") == ["run", "naiv", "cell"]
    assert query_terms("the of and") == []
    # Query syntax in user text is just words.
    assert query_terms('title:"solar" AND (panel* OR -roof) NEAR/2') == ["titl", "solar", "panel", "roof", "near", "2"]
    assert not STOPWORDS & set(query_terms(" ".join(sorted(STOPWORDS))))


def _sentences() -> list[str]:
    """Every sentence of the sample corpus's plain-text documents: a small, real English corpus."""
    texts = [p.read_text() for p in sorted(CORPUS.glob("*.txt")) + sorted(CORPUS.glob("*.md"))]
    texts += [f"{r['title']} {r['text']}" for r in map(json.loads, (CORPUS / "faq.jsonl").read_text().splitlines())]
    return [s.strip() for t in texts for s in re.split(r"(?<=[.?!])\s+|\n+", t) if len(s.split()) >= 4]


def _fts5_reference(sentences: list[str], query: str, k: int) -> list[int]:
    """The ranking the FTS5 path gave: BM25 over OR'd quoted words, stopwords dropped."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')")
    db.executemany("INSERT INTO t(rowid, text) VALUES (?, ?)", enumerate(sentences))
    words = dict.fromkeys(w for w in re.findall(r"\w+", query.lower()) if w not in STOPWORDS)
    match = " OR ".join(f'"{w}"' for w in words)
    return [r[0] for r in db.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY bm25(t) LIMIT ?", (match, k))]


def test_ranking_agrees_with_the_fts5_bm25_it_replaces(store: Store, collection: Collection,
                                                       lexical: TantivyIndex) -> None:
    sentences = _sentences()
    assert len(sentences) >= 60
    written = put(store, collection, "corpus", sentences)
    lexical.save(collection)
    position = {chunk_id: n for n, chunk_id in enumerate(written.added_chunk_ids)}
    rng = np.random.default_rng(5)
    top1, overlap = [], []
    for n in rng.choice(len(sentences), 30, replace=False):
        # A query of a few words of one sentence, as a claim shares words with its evidence.
        words = [w for w in re.findall(r"[A-Za-z]+", sentences[n]) if w.lower() not in STOPWORDS]
        query = " ".join(rng.choice(words, min(4, len(words)), replace=False))
        ours = [position[i] for i in ids(lexical.search(collection, query, 10))]
        reference = _fts5_reference(sentences, query, 10)
        top1.append(ours[0] == reference[0])
        overlap.append(len(set(ours) & set(reference)) / len(reference))
    # Not equal: tantivy stems with Snowball, not Porter, and leaves stopwords out of lengths.
    assert np.mean(top1) >= 0.9 and np.mean(overlap) >= 0.85, (np.mean(top1), np.mean(overlap))


def test_bm25_ranks_by_rarity_and_frequency_and_prunes_to_k(store: Store, collection: Collection,
                                                            lexical: TantivyIndex) -> None:
    common = put(store, collection, "common", [f"solar panel number {i}" for i in range(40)])
    rare = put(store, collection, "rare", ["the inverter hums beside the solar panel",
                                           "inverter inverter inverter fault"])
    lexical.save(collection)
    top = lexical.search(collection, "inverter solar", 3)
    assert ids(top)[:2] == [rare.added_chunk_ids[1], rare.added_chunk_ids[0]] or \
        ids(top)[:2] == [rare.added_chunk_ids[0], rare.added_chunk_ids[1]]
    assert top[0][1] > top[2][1] > 0 and ids(top)[2] in common.added_chunk_ids
    assert len(lexical.search(collection, "solar", 7)) == 7
    assert lexical.search(collection, "the and of", 5) == []
    assert lexical.search(collection, "photosynthesis", 5) == []


# -- writes --------------------------------------------------------------------------------------

def test_add_replace_and_delete_are_followed(store: Store, collection: Collection, lexical: TantivyIndex) -> None:
    first = put(store, collection, "a.txt", ["solar panels on the roof", "inverters convert current"])
    lexical.save(collection)
    assert ids(lexical.search(collection, "inverters", 5)) == [first.added_chunk_ids[1]]
    second = put(store, collection, "a.txt", ["batteries store energy"])
    lexical.save(collection)
    assert lexical.search(collection, "inverters", 5) == []
    assert ids(lexical.search(collection, "batteries", 5)) == second.added_chunk_ids
    other = put(store, collection, "b.txt", ["a battery of tests"])
    removed, stamp = store.delete_documents(collection.id, [second.document_id])
    lexical.apply(collection, Replaced(removed, [], stamp, document_id=second.document_id))
    lexical.save(collection)
    assert ids(lexical.search(collection, "batteries", 5)) == other.added_chunk_ids
    assert lexical.load(collection) == 1
    # Another collection is another index.
    more = store.create_collection("more", SPEC, 200, 20)
    put(store, more, "c.txt", ["batteries elsewhere"])
    assert ids(lexical.search(collection, "batteries", 5)) == other.added_chunk_ids
    assert lexical.load(more) == 1


def test_filters_select_as_the_store_does(store: Store, collection: Collection, lexical: TantivyIndex) -> None:
    metadata = [{"lang": "en", "year": 2024, "draft": True, "tags": ["a", "b"]},
                {"lang": "fr", "year": 2023.0, "score": 0.5}, {"lang": "en", "year": "2024"}, {}]
    for n, m in enumerate(metadata):
        put(store, collection, f"d{n}", [f"shared words {n} {j}" for j in range(3)], m)
    lexical.save(collection)
    for filter_ in ({"lang": ["en"]}, {"lang": ["en", "fr"]}, {"year": [2024]}, {"year": [2023]},
                    {"year": ["2024"]}, {"draft": [True]}, {"draft": [1]}, {"score": [0.5]},
                    {"tags": ['["a","b"]']}, {"lang": ["en"], "year": [2024]}, {"lang": ["de"]}):
        found = sorted(ids(lexical.search(collection, "shared words", 100, filter=filter_)))
        assert found == store.filtered_chunk_ids(collection.id, filter_).tolist(), filter_
    # Filtering selects; it does not change the scores of what it keeps.
    unfiltered = dict(lexical.search(collection, "shared words 1", 100))
    for chunk_id, score in lexical.search(collection, "shared words 1", 100, filter={"lang": ["fr"]}):
        assert score == pytest.approx(unfiltered[chunk_id])
    allowed = np.asarray(store.filtered_chunk_ids(collection.id, {"lang": ["en"]})[:2])
    assert sorted(ids(lexical.search(collection, "shared", 10, allowed))) == allowed.tolist()
    assert lexical.search(collection, "shared", 10, np.asarray([], np.int64)) == []


# -- stamps, catch-up, damage --------------------------------------------------------------------

def stamp_on_disk(lexical: TantivyIndex, collection: Collection) -> int:
    return json.loads((lexical.folder(collection.id) / "stamp.json").read_text())["stamp"]


def rewrite_stamp(lexical: TantivyIndex, collection: Collection, **changes: object) -> None:
    path = lexical.folder(collection.id) / "stamp.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def live_index(lexical: TantivyIndex, collection: Collection) -> Path:
    folder = lexical.folder(collection.id)
    return folder / json.loads((folder / "stamp.json").read_text())["directory"]


def test_the_index_is_stamped_and_a_second_process_replays_the_log(tmp_path: Path) -> None:
    """Two stores and two indexes on one data folder stand in for two processes."""
    a_store, b_store = Store(tmp_path / "rag.sqlite3"), Store(tmp_path / "rag.sqlite3")
    root = tmp_path / "indexes" / "tantivy"
    a, b = TantivyIndex(a_store, root), TantivyIndex(b_store, root)
    try:
        c = a_store.create_collection("docs", SPEC, 200, 20)
        one = put(a_store, c, "one", ["alpha beta"])
        assert a.load(c) == 1
        assert stamp_on_disk(a, c) == one.change_number
        assert ids(b.search(c, "alpha", 5)) == one.added_chunk_ids  # B opens what A committed

        rebuilds = []
        real = b_store.chunk_texts_after
        b_store.chunk_texts_after = lambda *args: rebuilds.append(args) or real(*args)  # type: ignore[method-assign]
        # A commits to the store and does not catch the index up: B's search asks for it (and
        # answers from what is committed meanwhile), B's committer replays the log.
        two = put(a_store, c, "two", ["gamma delta"])
        again = put(a_store, c, "one", ["alpha again"])
        assert ids(eventually(lambda: b.search(c, "gamma", 5))) == two.added_chunk_ids
        assert ids(b.search(c, "alpha", 5)) == again.added_chunk_ids
        assert stamp_on_disk(b, c) == again.change_number and rebuilds == []
        # A sees B's catch-up by reloading (the stamp moved), with nothing to replay itself.
        assert ids(a.search(c, "gamma", 5)) == two.added_chunk_ids
        # B writes and saves, A follows; B reads its own write at once.
        three = put(b_store, c, "three", ["epsilon"])
        b.save(c)
        assert ids(b.search(c, "epsilon", 5)) == three.added_chunk_ids
        assert ids(eventually(lambda: a.search(c, "epsilon", 5))) == three.added_chunk_ids

        # The log no longer reaches back to the stamp: rebuilt from the store.
        a_store.forget_changes(c.id, a_store.change_number(c.id))
        rewrite_stamp(a, c, stamp=0)
        four = put(a_store, c, "four", ["zeta"])
        fresh = TantivyIndex(b_store, root)
        assert fresh.load(c) == 4 and len(rebuilds) > 0
        assert ids(fresh.search(c, "zeta", 5)) == four.added_chunk_ids
        assert stamp_on_disk(fresh, c) == four.change_number
    finally:
        a_store.close()
        b_store.close()


def test_a_lagging_process_asks_for_a_catch_up_at_most_every_interval(tmp_path: Path, monkeypatch) -> None:
    a_store, b_store = Store(tmp_path / "rag.sqlite3"), Store(tmp_path / "rag.sqlite3")
    b = TantivyIndex(b_store, tmp_path / "tantivy")
    try:
        c = a_store.create_collection("docs", SPEC, 200, 20)
        put(a_store, c, "one", ["alpha"])
        assert len(b.search(c, "alpha", 5)) == 1  # nothing on disk yet: built before answering
        put(a_store, c, "two", ["alpha beta"])
        assert len(eventually(lambda: b.search(c, "beta", 5))) == 1  # asked, and caught up
        late = put(a_store, c, "three", ["alpha gamma"])
        monkeypatch.setattr(lexical_tantivy, "CATCH_UP_INTERVAL_S", 3600.0)
        for _ in range(10):  # asked a moment ago: these do not ask again
            assert b.search(c, "gamma", 5) == []
            time.sleep(0.05)
        monkeypatch.setattr(lexical_tantivy, "CATCH_UP_INTERVAL_S", 0.0)
        assert ids(eventually(lambda: b.search(c, "gamma", 5))) == late.added_chunk_ids
    finally:
        a_store.close()
        b_store.close()


@pytest.mark.parametrize("damage", ["garbage meta", "no segments", "garbage stamp", "no stamp", "old format",
                                    "no folder"])
def test_a_damaged_or_missing_index_is_rebuilt(store: Store, collection: Collection, lexical: TantivyIndex,
                                               tmp_path: Path, damage: str) -> None:
    written = put(store, collection, "a", ["solar panels", "wind turbines", "tidal barrage"])
    lexical.load(collection)
    folder = lexical.folder(collection.id)
    if damage == "garbage meta":
        (live_index(lexical, collection) / "meta.json").write_text("{not json")
    elif damage == "no segments":
        for f in live_index(lexical, collection).iterdir():
            if not f.name.startswith((".", "meta")):
                f.unlink()
    elif damage == "garbage stamp":
        (folder / "stamp.json").write_text("garbage")
    elif damage == "no stamp":
        (folder / "stamp.json").unlink()
    elif damage == "old format":
        rewrite_stamp(lexical, collection, format=1)
    else:
        import shutil

        shutil.rmtree(folder)
    fresh = TantivyIndex(store, lexical.root)  # a new process
    assert ids(fresh.search(collection, "turbines", 5)) == [written.added_chunk_ids[1]]
    assert fresh.load(collection) == 3
    assert stamp_on_disk(fresh, collection) == written.change_number


def test_a_stamp_behind_its_content_replays_without_duplicates(store: Store, collection: Collection,
                                                                lexical: TantivyIndex) -> None:
    """A writer killed between its commit and its stamp leaves the stamp behind the content."""
    first = put(store, collection, "a", ["solar"])
    lexical.load(collection)
    second = put(store, collection, "b", ["solar wind"])
    lexical.load(collection)
    rewrite_stamp(lexical, collection, stamp=first.change_number)
    fresh = TantivyIndex(store, lexical.root)
    assert fresh.load(collection) == 2
    assert sorted(ids(fresh.search(collection, "solar", 10))) == first.added_chunk_ids + second.added_chunk_ids


def test_forget_drops_the_index_and_a_rebuild_follows(store: Store, collection: Collection,
                                                      lexical: TantivyIndex) -> None:
    put(store, collection, "a", ["solar"])
    assert lexical.load(collection) == 1
    lexical.forget(collection.id)
    assert not lexical.folder(collection.id).exists()
    assert lexical.load(collection) == 1


# -- a writer killed mid-way ---------------------------------------------------------------------

WRITER = """
import sys, time
import numpy as np
from pathlib import Path
from rag.indexes.lexical_tantivy import TantivyIndex
from rag.indexes.tantivy_folder import IndexFolder
from rag.records import ChunkDraft
from rag.store import Store

home, where = Path(sys.argv[1]), sys.argv[2]
store = Store(home / "rag.sqlite3")
collection = store.get_collection("docs")
for n in range(20):
    texts = [f"killed writer chunk {n} {j}" for j in range(5)]
    store.put_document(collection.id, source=f"k{n}", content_hash="h", title=None, text_="", metadata={},
                       chunks=[ChunkDraft(t, 5, 0, len(t)) for t in texts],
                       vectors=np.ones((5, 4), np.float32) / 2, dim=4)

def stall(*args):
    print("stalled", flush=True)
    time.sleep(60)

if where == "before commit":  # documents added to tantivy's writer, not committed
    IndexFolder._commit = staticmethod(stall)
else:  # committed, the stamp not yet written
    IndexFolder._write_stamp = stall
TantivyIndex(store, home / "tantivy").load(collection)
"""


@pytest.mark.parametrize("where", ["before commit", "before stamp"])
def test_a_writer_killed_mid_way_leaves_an_index_the_others_catch_up(tmp_path: Path, where: str) -> None:
    store = Store(tmp_path / "rag.sqlite3")
    try:
        c = store.create_collection("docs", SPEC, 200, 20)
        before = put(store, c, "before", ["survivor chunk"])
        lexical = TantivyIndex(store, tmp_path / "tantivy")
        lexical.load(c)
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), where], cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "stalled"
            # It holds the lock: a search reads what is committed, a load waits its turn.
            assert ids(lexical.search(c, "survivor", 5)) == before.added_chunk_ids
            waiting = threading.Thread(target=TantivyIndex(store, tmp_path / "tantivy").load, args=(c,))
            waiting.start()
            waiting.join(timeout=0.5)
            assert waiting.is_alive()
            os.kill(child.pid, signal.SIGKILL)
            waiting.join(timeout=30)  # the lock died with the writer: the waiting save goes on
            assert not waiting.is_alive()
        finally:
            child.kill()
            child.wait(timeout=10)
        started = time.monotonic()
        other = TantivyIndex(Store(tmp_path / "rag.sqlite3"), tmp_path / "tantivy")
        assert other.load(c) == 1 + 20 * 5
        assert time.monotonic() - started < 10  # the dead writer's lock did not hold anyone up
        assert len(other.search(c, "killed writer", 1000)) == 100
        assert stamp_on_disk(other, c) == store.change_number(c.id)
        # The first process, which searched while the writer held the lock, follows.
        assert len(eventually(lambda: lexical.search(c, "killed writer", 1000))) == 100
    finally:
        store.close()

"""The lexical index on tantivy: BM25 with block-max WAND pruning, one on-disk index per collection.

An inverted index ranks the top k of a bag-of-words query without scoring every chunk that holds
one of its words (what SQLite FTS5's `bm25()` had to do: half the collection for a typical
claim). Like the FAISS index it is derived from the store and stamped with the change number it
reflects; behind the store, it replays the change log (`Store.changes_since`), reading the text
of the chunks added from the store; when the log does not reach back, or the index is missing or
damaged, it is rebuilt from the store.

On disk, under the data folder's `indexes/tantivy/`:

    collection-<id>/index/      tantivy's segments and meta.json
    collection-<id>/stamp.json  the change number the index reflects, written after each commit
    collection-<id>.lock        held (flock) by the one process updating the index

**Who writes.** tantivy allows one writer per index folder, and several processes share a data
folder (`rag serve`, `rag ingest`, a second server). No process owns the index: whichever needs it
current takes the lock for the length of one catch-up (replay the log from the stamp, commit, write
the stamp, finish merges) and lets go. A process that committed to the store catches up at the end
of its batch (`save`: one tantivy commit per ingest batch, upload job or delete, not per
document); a process that only searches catches up when it finds the index behind the store (at
most every `CATCH_UP_INTERVAL_S`; when another process holds the lock it searches what is
committed and tries again later); the others `reload()` their searcher when the stamp moves. So
every process sees every other's writes within about `CATCH_UP_INTERVAL_S` plus a commit.

**Crashes.** The OS drops the lock of a process that dies (kill -9 included). A tantivy commit is
atomic: a writer killed mid-way leaves the last commit, and unreferenced files that the next
writer's garbage collection removes. The stamp is written after the commit, so a writer killed
between the two leaves a stamp behind the content; replaying from it is harmless, because every
replayed chunk is deleted by id before it is added (a delete applies only to what came before it).

Queries are the distinct analysed words of the user's text (`rag.indexes.analysis`), ORed; a
metadata filter is a non-scoring tantivy clause over the documents' key=value terms, not a list of
allowed ids.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tantivy

from rag.errors import RagError
from rag.indexes.analysis import ANALYZER_NAME, analyzer, query_terms
from rag.records import ChunkChange, ChunkText, Collection
from rag.store import Store

__all__ = ["CATCH_UP_INTERVAL_S", "TantivyIndex", "metadata_term"]

log = logging.getLogger(__name__)

FORMAT = 1
"""Version of the schema below and of the analysis; an index of another version is rebuilt."""

CATCH_UP_INTERVAL_S = 0.25
"""How often a searching process may catch the shared index up with writes it did not make."""

WRITER_WAIT_S = 120.0
"""How long a write or a first load waits for another process's catch-up (a rebuild of a large
collection holds the lock that long)."""

_REPLAY_SLICE = 5_000  # chunks read from the store per query when replaying or rebuilding
_CATCH_UP_HEAP = 32_000_000  # tantivy's indexing memory for a catch-up (one thread)
_REBUILD_HEAP = 256_000_000  # and for a rebuild (tantivy picks the threads)

_CHUNK_ID, _TEXT, _META = "chunk_id", "text", "meta"


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # Indexed to delete by, a fast field to read the hits' ids without fetching stored documents.
    builder.add_integer_field(_CHUNK_ID, indexed=True, fast=True)
    # Frequencies for BM25; no positions, since no phrase query is ever asked.
    builder.add_text_field(_TEXT, tokenizer_name=ANALYZER_NAME, index_option="freq")
    builder.add_text_field(_META, tokenizer_name="raw", index_option="basic")
    return builder.build()


SCHEMA = _schema()


def metadata_term(key: str, value: object) -> str:
    """The term a document's metadata `key` = `value` is indexed as, and a filter looks up.

    Values compare as SQLite compares what its JSON functions give (the store's filter,
    `Store.filtered_chunk_ids`, answers the same): a string equals only that string, numbers equal
    numerically (2023 and 2023.0 are one value), a boolean is the number 1 or 0, and an array or
    object is its JSON text."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{key}\x1fn{value}"
    if isinstance(value, float):
        return f"{key}\x1fn{value!r}"
    return f"{key}\x1fs{value}"


def _document(chunk: ChunkText) -> tantivy.Document:
    doc = tantivy.Document()
    doc.add_integer(_CHUNK_ID, chunk.id)
    doc.add_text(_TEXT, chunk.text)
    for key, value in chunk.metadata:
        doc.add_text(_META, metadata_term(key, value))
    return doc


class LexicalIndexBusy(RagError):
    """Another process has held the lexical index's lock too long (a very large rebuild)."""

    status, type, code = 503, "server_error", "index_busy"


class _WriterLock:
    """The exclusive lock of the one process updating an index folder (flock on a file beside it).

    flock, not tantivy's own lock file: it can be waited for, and the OS releases it when its
    holder dies. A file can be unlinked by `forget` between someone's open and their lock, so the
    lock counts only on the file still at the path."""

    def __init__(self, path: Path):
        self.path = path

    @contextmanager
    def held(self, timeout_s: float) -> Iterator[bool]:
        """Yields True holding the lock, or False if it could not be had within `timeout_s`."""
        fd = self._acquire(timeout_s)
        try:
            yield fd is not None
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _acquire(self, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.01)
                continue
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@dataclass
class _Open:
    """One collection's index as this process has it open."""

    index: tantivy.Index
    stamp: int
    """The change number the searcher reflects (at least)."""
    searcher: tantivy.Searcher
    tried_at: float = 0.0
    """When this process last tried to catch the index up (monotonic seconds)."""


class TantivyIndex:
    """The `rag.indexes.LexicalIndex` on tantivy, shared by every process using the data folder."""

    def __init__(self, store: Store, root: Path):
        self.store = store
        self.root = Path(root)
        self._open: dict[int, _Open] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    # -- paths -----------------------------------------------------------------------------------

    def folder(self, collection_id: int) -> Path:
        return self.root / f"collection-{collection_id}"

    def _index_dir(self, collection_id: int) -> Path:
        return self.folder(collection_id) / "index"

    def _stamp_path(self, collection_id: int) -> Path:
        return self.folder(collection_id) / "stamp.json"

    def _writer_lock(self, collection_id: int) -> _WriterLock:
        return _WriterLock(self.root / f"collection-{collection_id}.lock")

    def _lock(self, collection_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(collection_id, threading.Lock())

    # -- the protocol ----------------------------------------------------------------------------

    def search(self, collection: Collection, query: str, k: int, allowed: np.ndarray | None = None, *,
               filter: dict[str, list] | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, BM25 score) for the words of `query`, higher is better. `filter` (a
        validated metadata filter) and `allowed` (chunk ids) restrict the chunks searched."""
        terms = query_terms(query)
        if not terms or k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        words = [tantivy.Query.term_query(SCHEMA, _TEXT, t) for t in terms]
        q = words[0] if len(words) == 1 else tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, w) for w in words])
        restrictions = []
        for key, values in (filter or {}).items():
            restrictions.append(tantivy.Query.term_set_query(SCHEMA, _META, [metadata_term(key, v) for v in values]))
        if allowed is not None:
            restrictions.append(tantivy.Query.term_set_query(SCHEMA, _CHUNK_ID, [int(i) for i in allowed]))
        if restrictions:
            # Restrictions select, they do not score: the ranking stays the words' BM25.
            q = tantivy.Query.boolean_query([(tantivy.Occur.Must, q)] + [
                (tantivy.Occur.Must, tantivy.Query.const_score_query(r, 0.0)) for r in restrictions])
        searcher = self._searcher(collection)
        # count=False: counting every match would visit them all, which is what pruning avoids.
        hits = searcher.search(q, k, count=False).hits
        if not hits:
            return []
        ids = searcher.fast_field_values(_CHUNK_ID, [address for _, address in hits])
        # Every document of ours has a chunk id (None would be a segment without the column).
        return [(int(i), float(score)) for (score, _), i in zip(hits, ids, strict=True) if i is not None]

    def load(self, collection: Collection) -> int:
        """Bring the collection's index up to the store now (waiting for another process's
        catch-up if need be); returns how many chunks it holds."""
        with self._lock(collection.id):
            return self._refresh(collection, wait=True).searcher.num_docs

    def apply(self, collection: Collection, change: ChunkChange) -> None:
        """Nothing yet: `save` commits every change since the index's stamp at once, so a batch of
        documents is one tantivy commit (one segment), not one per document."""

    def save(self, collection: Collection) -> None:
        """Catch the index up with this process's writes (and any other's) and commit it. A failure
        leaves the index stale, never wrong: the next catch-up replays what it lacks."""
        try:
            with self._lock(collection.id):
                self._refresh(collection, wait=True)
        except Exception as e:
            log.warning("could not update the lexical index of %s: %s", collection.name, e)

    def forget(self, collection_id: int) -> None:
        """Drop the collection's index from this process and from disk."""
        lock = self._writer_lock(collection_id)
        with self._lock(collection_id), lock.held(WRITER_WAIT_S):
            self._open.pop(collection_id, None)
            shutil.rmtree(self.folder(collection_id), ignore_errors=True)
            lock.path.unlink(missing_ok=True)

    # -- keeping current -------------------------------------------------------------------------

    def _searcher(self, collection: Collection) -> tantivy.Searcher:
        with self._lock(collection.id):
            current = self._open.get(collection.id)
            if current is not None and current.stamp >= self.store.change_number(collection.id):
                return current.searcher
            return self._refresh(collection, wait=current is None).searcher

    def _refresh(self, collection: Collection, *, wait: bool) -> _Open:
        """The collection's index at the store's change number if it can be had: the committed
        one when it is current, else caught up under the lock. Without `wait` (a search with an
        index already open) a busy lock, or a catch-up tried moments ago, means searching what is
        committed now. Called holding the collection's thread lock."""
        cid = collection.id
        target = self.store.change_number(cid)
        current = self._reload(cid, self._open.get(cid))
        if current is not None and current.stamp >= target:
            return current
        now = time.monotonic()
        if current is not None and not wait and now - current.tried_at < CATCH_UP_INTERVAL_S:
            return current
        with self._writer_lock(cid).held(WRITER_WAIT_S if wait or current is None else 0.0) as held:
            if not held:
                if current is None:
                    raise LexicalIndexBusy(f"the lexical index of {collection.name!r} is being rebuilt by "
                                           "another process; try again shortly")
                current.tried_at = now
                return current
            try:
                caught_up = self._catch_up(collection, current)
            except Exception as e:  # a derived index that cannot move on yet still answers
                if current is None:
                    raise
                log.warning("could not catch up the lexical index of %s: %s", collection.name, e)
                current.tried_at = now
                return current
        caught_up.tried_at = now
        self._open[cid] = caught_up
        return caught_up

    def _reload(self, cid: int, current: _Open | None) -> _Open | None:
        """What is committed on disk, if it is newer than what this process searches (or the
        index is not open yet); None when there is no usable index on disk."""
        stamp = self._read_stamp(cid)
        if stamp is None:
            return current
        if current is not None and current.stamp >= stamp:
            return current
        # Another process's merge can delete a file between our reading meta.json and opening it:
        # try again, and failing that keep searching what this process has open.
        for attempt in range(3):
            try:
                if current is None:
                    index = self._open_index(cid)
                    if index is None:
                        return None
                    fresh = _Open(index, stamp, index.searcher())
                    self._open[cid] = fresh
                    return fresh
                current.index.reload()
                current.searcher = current.index.searcher()
                current.stamp = stamp
                return current
            except (ValueError, OSError) as e:
                if attempt == 2:
                    log.warning("could not reload the lexical index of collection %d: %s", cid, e)
                time.sleep(0.01)
        return current

    def _open_index(self, cid: int) -> tantivy.Index | None:
        folder = self._index_dir(cid)
        if not tantivy.Index.exists(str(folder)):
            return None
        index = tantivy.Index.open(str(folder))
        index.register_tokenizer(ANALYZER_NAME, analyzer())
        index.config_reader("Manual")  # reloaded when the stamp moves, with no watcher thread
        return index

    def _read_stamp(self, cid: int) -> int | None:
        try:
            saved = json.loads(self._stamp_path(cid).read_text())
            return int(saved["stamp"]) if saved.get("format") == FORMAT else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_stamp(self, cid: int, stamp: int) -> None:
        path = self._stamp_path(cid)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"stamp": stamp, "format": FORMAT}))
        os.replace(tmp, path)

    def _catch_up(self, collection: Collection, current: _Open | None) -> _Open:
        """Holding the lock: replay the log from the stamp on disk (it may be newer than ours), or
        rebuild when the log does not reach back or the index is missing or damaged."""
        cid = collection.id
        stamp = self._read_stamp(cid)
        index = None
        if stamp is not None:
            try:
                index = current.index if current is not None else self._open_index(cid)
            except (ValueError, OSError) as e:
                log.warning("lexical index of %s unreadable (%s); rebuilding from the store", collection.name, e)
        if index is None or stamp is None:
            return self._rebuild(collection, fresh=True)
        changes = self.store.changes_since(cid, stamp)
        if changes is None:
            return self._rebuild(collection, fresh=False, index=index)
        if changes:
            try:
                self._replay(index, cid, changes)
            except (ValueError, OSError) as e:
                if "LockBusy" in str(e):  # tantivy's own writer lock: not damage, never rebuild over it
                    raise
                log.warning("lexical index of %s damaged (%s); rebuilding from the store", collection.name, e)
                return self._rebuild(collection, fresh=True)
            stamp = changes[-1].change_number
            self._write_stamp(cid, stamp)
        index.reload()
        return _Open(index, stamp, index.searcher())

    def _replay(self, index: tantivy.Index, cid: int, changes: list[ChunkChange]) -> None:
        removed = {c for change in changes for c in change.removed_chunk_ids}
        # Chunk ids are never reused: a chunk added and removed within the replay is simply absent.
        added = [c for change in changes for c in change.added_chunk_ids if c not in removed]
        writer = index.writer(_CATCH_UP_HEAP, 1)
        for chunk_id in removed:
            writer.delete_documents_by_term(_CHUNK_ID, chunk_id)
        for start in range(0, len(added), _REPLAY_SLICE):
            # A chunk removed since the log was read is missing here; its removal is replayed next.
            for chunk in self.store.chunk_texts(cid, added[start:start + _REPLAY_SLICE]):
                writer.delete_documents_by_term(_CHUNK_ID, chunk.id)  # already there if a stamp was lost
                writer.add_document(_document(chunk))
        self._commit(writer)

    def _rebuild(self, collection: Collection, *, fresh: bool, index: tantivy.Index | None = None) -> _Open:
        """Index every chunk of the collection. `fresh` starts a new folder (nothing usable is
        there); otherwise one commit replaces the contents, so readers never see an empty index.

        The stamp is read before the first page: a chunk written while the pages are read is
        indexed too, which the log replayed from that stamp then repeats harmlessly."""
        cid = collection.id
        started = time.perf_counter()
        if fresh or index is None:
            shutil.rmtree(self.folder(cid), ignore_errors=True)
            self._index_dir(cid).mkdir(parents=True)
            index = tantivy.Index(SCHEMA, path=str(self._index_dir(cid)))
            index.register_tokenizer(ANALYZER_NAME, analyzer())
            index.config_reader("Manual")
        stamp = self.store.change_number(cid)
        writer = index.writer(_REBUILD_HEAP, 0)
        writer.delete_all_documents()
        for chunk in self._every_chunk(cid):
            writer.add_document(_document(chunk))
        self._commit(writer)
        self._write_stamp(cid, stamp)
        index.reload()
        searcher = index.searcher()
        log.info("lexical index of %s rebuilt: %d chunks in %.1f s", collection.name, searcher.num_docs,
                 time.perf_counter() - started)
        return _Open(index, stamp, searcher)

    def _every_chunk(self, cid: int) -> Iterable[ChunkText]:
        after = 0
        while page := self.store.chunk_texts_after(cid, after, _REPLAY_SLICE):
            yield from page
            after = page[-1].id

    @staticmethod
    def _commit(writer: tantivy.IndexWriter) -> None:
        writer.commit()
        # The merges the commit set off run on the writer's threads: finish them before letting go
        # of the lock (small ones take milliseconds), or segments would pile up commit by commit.
        writer.wait_merging_threads()

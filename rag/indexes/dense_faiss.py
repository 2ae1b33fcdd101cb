"""The dense index on FAISS: derived from the store, stamped with the change number it reflects.

`IndexCache` is the `rag.indexes.DenseIndex` the service uses: one `VectorIndex` per collection
in memory, exact (flat) below `exact_limit` live vectors and HNSW from there on, each behind its
own readers-writer lock (searches share it; a write takes it for one change's vectors).

Keeping current. Every commit bumps the collection's change number and logs the chunk ids it
added and removed (`Store.changes_since`). Before each search the cache compares the index's stamp
with the store's (one indexed SELECT); when behind (another process wrote), it replays the log.
This process's own commits are followed in memory by `apply`. A delete tombstones its rows at once.

Persistence. Nothing is written per request. A checkpoint writes the whole index (write-then-
rename) when a bulk write ends (`save`, if enough changed), on the maintenance timer (when enough
changed: at most 1% of the rows, or 5,000, wait to be replayed at the next start) and on `close`.
A start loads the checkpoint and replays the log from its stamp; with no usable checkpoint, or a
log that no longer reaches back to it, it rebuilds from the store. Any process may write the
checkpoint, one at a time (`file_lock.try_exclusive`), never replacing a newer one with an older.

Compaction. When tombstones pass a fifth of the rows, or the live count crosses `exact_limit`
(flat becomes HNSW; HNSW falls back to flat below half of it), the maintenance thread rebuilds the
index from the store beside the live one, replays what was committed meanwhile, and swaps it in;
searches go on against the old one all along.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import numpy as np

from rag.config import Settings
from rag.errors import CollectionNotFound
from rag.indexes.dense_maintenance import Maintenance
from rag.indexes.faiss_threads import all_threads
from rag.indexes.file_lock import try_exclusive
from rag.indexes.rwlock import ReadWriteLock
from rag.indexes.vector_index import HNSW_EF_SEARCH, Kind, VectorIndex, finish_temp, read_stamp
from rag.records import ChunkChange, Collection
from rag.store import Store

__all__ = ["DEFAULT_EXACT_LIMIT", "IndexCache", "VectorIndex"]

log = logging.getLogger(__name__)

DEFAULT_EXACT_LIMIT: int = Settings.dense_exact_limit
"""Collections with fewer live vectors are searched exactly (measured: see the README's "Dense search")."""
COMPACT_DEAD_SHARE = 0.2
COMPACT_MIN_DEAD = 1000
"""Rebuild an index once this share of its rows, and at least this many, are tombstones (a few
dead rows cost a search only a bitmap test each)."""
CHECKPOINT_SHARE = 0.01
CHECKPOINT_MAX_LAG = 5_000
"""A checkpoint is worth writing once this many chunk changes (or this share of the rows, if
fewer) would otherwise be replayed at the next start: about a second of HNSW adds at 1M."""
REPLAY_BATCH = 8192
"""Vectors read from the store at a time while replaying the log."""
PARALLEL_REPLAY = 2048
"""A replay adding more vectors than this uses every core (it holds the collection's writers off)."""


@dataclass(eq=False)
class _Entry:
    """One collection's index in this process, and what its lock guards."""

    collection: Collection
    """As it was when last searched or loaded (its id, name and dimension never change)."""
    lock: ReadWriteLock = field(default_factory=ReadWriteLock)
    index: VectorIndex | None = None
    generation: int = 0
    """Bumped whenever `index` is replaced or dropped: a compaction built for an older one is discarded."""
    unsaved: int = 0
    """Chunk changes the in-memory index holds that the checkpoint on disk lacks (approximately:
    another process may have written a newer checkpoint)."""
    counts: threading.Lock = field(default_factory=threading.Lock)
    """Guards `unsaved`, which a checkpoint updates without holding `lock` for writing."""

    def note_unsaved(self, changes: int) -> None:
        with self.counts:
            self.unsaved = max(self.unsaved + changes, 0)

    def saved(self, changes: int | None = None) -> None:
        """A checkpoint holds `changes` more of them (all, by default)."""
        with self.counts:
            self.unsaved = 0 if changes is None else max(self.unsaved - changes, 0)


class IndexCache:
    """The indexes of one process, kept current with the store.

    Several processes may write the store (an API and a bulk ingest); before each search the cache
    asks the store for the collection's change number, which costs one indexed SELECT when nothing
    changed.
    """

    def __init__(self, store: Store, index_dir: Path, *, exact_limit: int = DEFAULT_EXACT_LIMIT,
                 checkpoint_s: float = 60.0, ef_search: int = HNSW_EF_SEARCH, background: bool = True,
                 on_checkpoint: Callable[[int], None] | None = None):
        """`background=False` leaves compactions and timed checkpoints to explicit `maintain()`
        calls (tests that want them to happen at a known moment). `on_checkpoint(collection_id)`
        runs after each checkpoint written (the service trims the change log there)."""
        self.store = store
        self.index_dir = Path(index_dir)
        self.exact_limit = exact_limit
        self.ef_search = ef_search
        self._entries: dict[int, _Entry] = {}
        self._guard = threading.Lock()
        self._closing = threading.Event()  # a compaction in progress gives up, so closing is quick
        self._maintenance = Maintenance(self, checkpoint_s, enabled=background)
        self._on_checkpoint = on_checkpoint

    # -- the DenseIndex protocol ---------------------------------------------------------------------

    @property
    def loaded(self) -> int:
        """How many collections' indexes this process holds in memory."""
        return sum(1 for e in list(self._entries.values()) if e.index is not None)

    def load(self, collection: Collection) -> int:
        """Bring the collection's index up to the store now (unless a checkpoint is reading it:
        the next search or write catches up); returns how many vectors it holds."""
        while True:
            entry = self._fresh(collection, may_lag=True)
            with entry.lock.read():
                if entry.index is not None:
                    return len(entry.index)
            # forgotten in between: load it again

    def search(self, collection: Collection, vector: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Search the index at the store's change number; concurrent searches share the lock.
        While a checkpoint is being written the index is not caught up (that would wait for it):
        a search then sees the index as of the checkpoint, and the retriever drops any chunk
        deleted since when it reads the hits from the store."""
        entry = self._fresh(collection, may_lag=True)
        with entry.lock.read():
            index = entry.index
            return index.search(vector, k, allowed) if index is not None else []

    def vectors_of(self, collection: Collection, chunk_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read from the index in memory, as it is (a chunk's vector never changes, so an index
        behind the store is right for what it holds); what it lacks is read from the store. In id
        order, as the store gives them: a matrix product's rounding depends on a row's place in it,
        and the cosines computed from these are the ones hybrid hits always had, to the last bit."""
        ids = np.unique(np.asarray(chunk_ids, dtype=np.int64).reshape(-1))
        entry = self._entries.get(collection.id)
        found_ids, found = np.empty(0, dtype=np.int64), np.empty((0, collection.embedder.dim), dtype=np.float32)
        if entry is not None:
            with entry.lock.read():
                if entry.index is not None:
                    found_ids, found = entry.index.vectors_of(ids)
        if len(found_ids) == len(ids):
            return found_ids, found
        lacking = np.setdiff1d(ids, found_ids)
        more_ids, more = self.store.vectors_of(collection_id=collection.id, chunk_ids=lacking.tolist())
        all_ids = np.concatenate([found_ids, more_ids])
        order = np.argsort(all_ids)
        return all_ids[order], np.concatenate([found, more])[order]

    def apply(self, collection: Collection, change: ChunkChange, added_vectors: np.ndarray | None = None) -> None:
        """Follow one change this process committed, if its index is loaded (otherwise the next
        load replays it from the log). A change that arrives out of turn replays the log instead."""
        entry = self._entries.get(collection.id)
        if entry is None or entry.index is None:
            return
        with entry.lock.write(yield_to_long_readers=True) as held:
            index = entry.index
            # Not held: a checkpoint is reading the index; the change waits in the log.
            if not held or index is None or index.stamp >= change.change_number:
                return
            if index.stamp + 1 != change.change_number:
                self._bring_up(entry, collection)
            else:
                removed, added = change.removed_chunk_ids, change.added_chunk_ids
                index.remove(removed)
                if added:
                    if added_vectors is None:
                        raise ValueError("a change that adds chunks needs their vectors")
                    index.add(np.asarray(added, dtype=np.int64), added_vectors)
                index.stamp = change.change_number
                entry.note_unsaved(len(removed) + len(added))
        self._maintenance.wake_if(self._compaction_due(entry))

    def save(self, collection: Collection) -> None:
        """A batch of writes ended (a bulk ingest): checkpoint if enough changed since the last."""
        entry = self._entries.get(collection.id)
        if entry is not None and self._checkpoint_due(entry):
            self.checkpoint(collection.id)

    def forget(self, collection_id: int) -> None:
        """Drop the collection's index from memory and disk."""
        entry = self._entries.get(collection_id)
        if entry is not None:
            with entry.lock.write():
                entry.index = None
                entry.generation += 1
                entry.saved()
        self.path(collection_id).unlink(missing_ok=True)

    def saved_stamp(self, collection_id: int) -> int | None:
        """The change number of the checkpoint on disk, or None without a readable one."""
        return read_stamp(self.path(collection_id))

    def close(self) -> None:
        """Stop the maintenance thread (a compaction under way is abandoned) and checkpoint every
        index with unsaved changes."""
        self._closing.set()
        self._maintenance.stop()
        for cid, entry in list(self._entries.items()):
            if entry.index is not None and entry.unsaved:
                try:
                    self.checkpoint(cid)
                except Exception as e:  # one failed save must not stop the others, nor the shutdown
                    log.warning("could not checkpoint the index of collection %s: %s", cid, e)

    # -- beyond the protocol: what tests and the maintenance thread use -------------------------------

    def path(self, collection_id: int) -> Path:
        return self.index_dir / f"collection-{collection_id}.faiss"

    def current(self, collection: Collection) -> VectorIndex:
        """The collection's index at the store's present change number (waits for a checkpoint
        being written; do not keep the result across writes)."""
        while True:
            index = self._fresh(collection, may_lag=False).index
            if index is not None:
                return index
            # forgotten in between: load it again

    def checkpoint(self, collection_id: int, *, force: bool = False) -> bool:
        """Write the collection's index to disk now, unless the file already holds its change
        number (or, with `force`, a later one: a compacted index replaces the file at the same
        stamp) or another thread or process is writing it; returns whether this call wrote it."""
        entry = self._entries.get(collection_id)
        if entry is None:
            return False
        with try_exclusive(self._lock_path(collection_id)) as mine:
            if not mine:
                return False
            path = self.path(collection_id)
            with entry.lock.read(long=True):
                index = entry.index
                if index is None:
                    return False
                on_disk = read_stamp(path)
                if on_disk is not None and (on_disk > index.stamp or (on_disk == index.stamp and not force)):
                    entry.saved()
                    return False
                saved = entry.unsaved
                try:
                    tmp = index.write_temp(path)
                except OSError as e:
                    log.warning("could not checkpoint %s: %s", path, e)
                    return False
            try:
                finish_temp(tmp, path)  # the fsync needs no lock on the index
            except OSError as e:
                tmp.unlink(missing_ok=True)
                log.warning("could not checkpoint %s: %s", path, e)
                return False
        entry.saved(saved)
        if self._on_checkpoint is not None:
            try:
                self._on_checkpoint(collection_id)
            except Exception:  # the checkpoint stands; the log is trimmed at the next one
                log.exception("after the checkpoint of collection %s", collection_id)
        return True

    def compact(self, collection: Collection) -> bool:
        """Rebuild the collection's index from the store beside the live one, without tombstones and
        of the kind its size calls for, then swap it in; returns False if there was nothing to
        rebuild or it was dropped meanwhile. Searches and writes go on during the build."""
        entry = self._entries.get(collection.id)
        if entry is None:
            return False
        with entry.lock.read():
            if entry.index is None:
                return False
            generation, live = entry.generation, len(entry.index)
        started = time.perf_counter()
        fresh = self._build(collection, self._kind_for(live), abandon=self._closing)
        if fresh is None:
            return False
        # Catch up outside the lock while the log runs ahead, so the swap itself replays little.
        for _ in range(8):
            replayed = self._replay(fresh, collection.id)
            if replayed is None:
                return False
            if replayed < 256:
                break
        with entry.lock.write():
            if entry.generation != generation or entry.index is None:
                return False
            replayed = self._replay(fresh, collection.id)
            if replayed is None:
                return False
            entry.index = fresh
            entry.generation += 1
        log.info("compacted the index of %s: %d vectors (%s) in %.1fs", collection.name, len(fresh), fresh.kind,
                 time.perf_counter() - started)
        self.checkpoint(collection.id, force=True)  # the file still holds the index before compaction
        return True

    # -- keeping current -----------------------------------------------------------------------------

    def _entry(self, collection: Collection) -> _Entry:
        with self._guard:
            entry = self._entries.get(collection.id)
            if entry is None:
                entry = self._entries[collection.id] = _Entry(collection)
                self._maintenance.start()
            return entry

    def _lock_path(self, collection_id: int) -> Path:
        return self.index_dir / f"collection-{collection_id}.lock"

    def _fresh(self, collection: Collection, *, may_lag: bool) -> _Entry:
        """The collection's entry, its index loaded and at the store's change number (or, with
        `may_lag`, left as it is while a checkpoint reads it)."""
        entry = self._entry(collection)
        stamp = self.store.change_number(collection.id)
        index = entry.index
        if index is not None and index.stamp >= stamp:
            return entry
        with entry.lock.write(yield_to_long_readers=may_lag and index is not None) as held:
            if held:
                self._bring_up(entry, collection)
        if held:
            self._maintenance.wake_if(self._compaction_due(entry))
        return entry

    def _bring_up(self, entry: _Entry, collection: Collection) -> None:
        """In memory, else from disk; behind the store, it replays the change log; when the log
        does not reach back to its stamp (or the file is missing or damaged), rebuilt from the store.
        The caller holds the entry's lock for writing."""
        index = entry.index
        if index is None:
            index = self._load_file(collection.id)
            entry.saved()
            if index is not None and self._wrong_kind(index):
                # Saved under another RAG_DENSE_EXACT_LIMIT: built again now, so the setting holds
                # from the first search (a forced approximate evaluation must not start exact).
                log.info("the index of %s is %s; rebuilding it for the exact limit %d", collection.name,
                         index.kind, self.exact_limit)
                index = None
        if index is not None and index.stamp != self.store.change_number(collection.id):
            replayed = self._replay(index, collection.id)
            if replayed is None and index is entry.index:
                # Held in memory since before the log was trimmed (another process checkpointed
                # and trimmed it): the checkpoint on disk is past the trim, so start from it.
                index = self._load_file(collection.id)
                entry.saved()
                replayed = None if index is None or self._wrong_kind(index) else self._replay(index, collection.id)
            if replayed is None:
                index = None
            else:
                entry.note_unsaved(replayed)
        if index is None:
            with all_threads():  # nothing can be searched until it is built
                index = self._build(collection, None)
                while self._replay(index, collection.id) is None:  # the log was trimmed meanwhile
                    index = self._build(collection, None)
            entry.saved()
            self._write_file(collection.id, index)
        if index is not entry.index:
            entry.index = index
            entry.generation += 1

    def _load_file(self, collection_id: int) -> VectorIndex | None:
        path = self.path(collection_id)
        if not path.exists():
            return None
        try:
            return VectorIndex.load(path, ef_search=self.ef_search)
        except Exception as e:  # unreadable: rebuilt from the store, which is the truth
            log.warning("index %s unreadable (%s); rebuilding from the store", path, e)
            return None

    def _replay(self, index: VectorIndex, collection_id: int) -> int | None:
        """Apply the logged changes after the index's stamp; returns how many chunk changes that
        was, or None when the log does not reach back that far."""
        changes = self.store.changes_since(collection_id, index.stamp)
        if changes is None:
            return None
        if not changes:
            return 0
        removed = {c for change in changes for c in change.removed_chunk_ids}
        # Chunk ids are never reused: a chunk added and removed within the replay is simply absent.
        added = sorted({c for change in changes for c in change.added_chunk_ids} - removed)
        index.remove(sorted(removed))
        with all_threads() if len(added) > PARALLEL_REPLAY else nullcontext():
            for start in range(0, len(added), REPLAY_BATCH):
                ids, vectors = self.store.vectors_of(collection_id=collection_id,
                                                     chunk_ids=added[start:start + REPLAY_BATCH])
                index.add(ids, vectors)
        index.stamp = changes[-1].change_number
        return len(removed) + len(added)

    @overload
    def _build(self, collection: Collection, kind: Kind | None) -> VectorIndex: ...
    @overload
    def _build(self, collection: Collection, kind: Kind | None, *, abandon: threading.Event) -> VectorIndex | None: ...
    def _build(self, collection: Collection, kind: Kind | None, *, abandon: threading.Event | None = None
               ) -> VectorIndex | None:
        """A new index of the collection's vectors, read from the store a batch at a time. It is
        stamped with the change number the scan began at, and may hold later changes already:
        replaying the log from its stamp (adds and removes are idempotent) makes it exact.
        Returns None if `abandon` is set before it is done."""
        scan = self.store.scan_vectors(collection.id)
        index = VectorIndex(collection.embedder.dim, scan.stamp, kind=kind or self._kind_for(scan.count),
                            ef_search=self.ef_search)
        for ids, vectors in scan.batches:
            if abandon is not None and abandon.is_set():
                return None
            index.add(ids, vectors)
        return index

    def _write_file(self, collection_id: int, index: VectorIndex) -> None:
        """Save an index nobody can write to at the moment (a fresh build, under the write lock), in
        place of a file at the same or an older change number (which was found wanting)."""
        path = self.path(collection_id)
        try:
            with try_exclusive(self._lock_path(collection_id)) as mine:
                on_disk = read_stamp(path)
                if mine and (on_disk is None or on_disk <= index.stamp):
                    index.save(path)
        except OSError as e:  # a read-only data folder still serves searches
            log.warning("could not save the index of collection %s: %s", collection_id, e)

    # -- what is due ---------------------------------------------------------------------------------

    def _kind_for(self, live: int) -> Kind:
        return "hnsw" if live >= self.exact_limit else "flat"

    def _wrong_kind(self, index: VectorIndex) -> bool:
        """Flat at or past the exact limit, or HNSW below half of it (the gap keeps a collection
        near the limit from switching back and forth)."""
        live = len(index)
        return (index.kind == "flat" and live >= self.exact_limit) or (
            index.kind == "hnsw" and live < self.exact_limit // 2)

    def _compaction_due(self, entry: _Entry) -> bool:
        index = entry.index
        if index is None:
            return False
        return self._wrong_kind(index) or index.dead >= max(COMPACT_MIN_DEAD, COMPACT_DEAD_SHARE * index.rows)

    def _checkpoint_due(self, entry: _Entry) -> bool:
        index = entry.index
        if index is None or not entry.unsaved:
            return False
        return entry.unsaved >= max(1, min(math.ceil(CHECKPOINT_SHARE * index.rows), CHECKPOINT_MAX_LAG))

    def maintain(self, *, checkpoints: bool = True) -> None:
        """Run what is due now: compactions, then (with `checkpoints`) checkpoints worth writing."""
        for entry in list(self._entries.values()):
            collection = entry.collection
            try:
                if self._compaction_due(entry):
                    self.compact(collection)
                if checkpoints and self._checkpoint_due(entry):
                    self.checkpoint(collection.id)
            except CollectionNotFound:  # deleted by another process: nothing left to maintain
                self.forget(collection.id)
            except Exception:  # the thread must outlive one collection's failure
                log.exception("index maintenance of %s failed", collection.name)

"""One collection's tantivy index on disk, and the one way it is written: caught up with the store.

Under the data folder's `indexes/tantivy/`:

    collection-<id>/index-<hex>/  tantivy's segments and meta.json
    collection-<id>/stamp.json    the change number the index reflects and which index-<hex> it is,
                                  written after each commit
    collection-<id>.lock          held (flock) by the one process writing the index

A rebuild from nothing (no index, a damaged one, another format) builds in a new `index-<hex>` and
points the stamp at it; readers that have the old one open switch when they see the stamp, and the
old folder is deleted (its files stay readable to those still holding them, as Linux keeps them).

tantivy allows one writer per index folder, and several processes share a data folder. No process
owns the index: whichever needs it current takes the lock for one catch-up (`IndexFolder.catch_up`:
replay the change log from the stamp, or rebuild, commit, write the stamp, finish the merges) and
lets go. flock rather than tantivy's own lock file: it can be waited for, and the OS drops it when
its holder dies, kill -9 included.

A tantivy commit is atomic: a writer killed mid-way leaves the last commit, and files that the next
writer's garbage collection removes. The stamp is written after the commit, so a writer killed
between the two leaves the stamp behind the content; replaying from it is harmless, because each
replayed chunk is deleted by id before it is added (a delete applies only to what came before it).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tantivy

from rag.errors import RagError
from rag.indexes.analysis import ANALYZER_NAME, analyzer, document_terms
from rag.records import ChunkChange, ChunkText, Collection
from rag.store import Store

__all__ = ["CHUNK_ID", "FORMAT", "META", "SCHEMA", "TEXT", "IndexBusy", "IndexFolder", "Stamp", "metadata_term"]

log = logging.getLogger(__name__)

FORMAT = 2
"""Version of the schema below and of the analysis; an index of another version is rebuilt."""

CHUNK_ID, TEXT, META = "chunk_id", "text", "meta"

_REPLAY_SLICE = 5_000  # chunks read from the store per query when replaying or rebuilding
_CATCH_UP_HEAP = 32_000_000  # tantivy's indexing memory for a catch-up (one thread)
_REBUILD_HEAP = 256_000_000  # and for a rebuild (tantivy picks the threads)


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # Indexed to delete by, a fast field to read the hits' ids without fetching stored documents.
    builder.add_integer_field(CHUNK_ID, indexed=True, fast=True)
    # Frequencies for BM25; no positions, since no phrase query is ever asked.
    builder.add_text_field(TEXT, tokenizer_name=ANALYZER_NAME, index_option="freq")
    builder.add_text_field(META, tokenizer_name="raw", index_option="basic")
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
    doc.add_integer(CHUNK_ID, chunk.id)
    doc.add_text(TEXT, document_terms(chunk.text))
    for key, value in chunk.metadata:
        doc.add_text(META, metadata_term(key, value))
    return doc


@dataclass(frozen=True)
class Stamp:
    """What the committed index on disk is: the change number it reflects, in which folder."""

    number: int
    directory: str


class IndexBusy(RagError):
    """Another process has held a lexical index's lock too long (a very large rebuild)."""

    status, type, code = 503, "server_error", "index_busy"


class _WriterLock:
    """An exclusive flock on a file. `forget` can unlink the file between someone's open and their
    lock, so a lock counts only on the file still at the path."""

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


class IndexFolder:
    """One collection's index folder: reading its stamp, opening it to search, catching it up."""

    def __init__(self, root: Path, collection_id: int):
        self.collection_id = collection_id
        self.path = Path(root) / f"collection-{collection_id}"
        self._stamp_path = self.path / "stamp.json"
        self._lock = _WriterLock(Path(root) / f"collection-{collection_id}.lock")

    def stamp(self) -> Stamp | None:
        """What the committed index is (None: no usable index here)."""
        try:
            saved = json.loads(self._stamp_path.read_text())
            if saved.get("format") != FORMAT or not str(saved["directory"]).startswith("index-"):
                return None
            return Stamp(int(saved["stamp"]), str(saved["directory"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def open(self, directory: str) -> tantivy.Index | None:
        """The index in `directory` to search (reloaded by the caller when the stamp moves)."""
        if not tantivy.Index.exists(str(self.path / directory)):
            return None
        index = tantivy.Index.open(str(self.path / directory))
        index.register_tokenizer(ANALYZER_NAME, analyzer())
        index.config_reader("Manual")  # no watcher thread: reloaded when the stamp moves
        return index

    def catch_up(self, store: Store, collection: Collection, timeout_s: float) -> int:
        """Bring the index on disk up to the store, holding the lock (waiting up to `timeout_s`
        for another process's catch-up); returns the stamp written. Replays the change log from
        the stamp on disk, or rebuilds when the log does not reach back or the index is missing,
        damaged or of another format."""
        store.change_number(collection.id)  # a deleted collection raises here, leaving no lock file behind
        with self._lock.held(timeout_s) as held:
            if not held:
                raise IndexBusy(f"the lexical index of {collection.name!r} is being written by another "
                                "process; try again shortly")
            return self._catch_up(store, collection)

    def remove(self, timeout_s: float) -> None:
        """Delete the index and its lock (waiting for a catch-up in progress to finish)."""
        with self._lock.held(timeout_s):
            shutil.rmtree(self.path, ignore_errors=True)
            self._lock.path.unlink(missing_ok=True)

    # -- holding the lock ------------------------------------------------------------------------

    def _catch_up(self, store: Store, collection: Collection) -> int:
        stamp = self.stamp()
        index = None
        if stamp is not None:
            try:
                index = self.open(stamp.directory)
            except (ValueError, OSError) as e:
                log.warning("lexical index of %s unreadable (%s); rebuilding from the store", collection.name, e)
        if index is None or stamp is None:
            return self._rebuild(store, collection, None)
        changes = store.changes_since(collection.id, stamp.number)
        if changes is None:
            return self._rebuild(store, collection, (index, stamp.directory))
        if not changes:
            return stamp.number
        try:
            self._replay(store, index, changes)
        except (ValueError, OSError) as e:
            if "LockBusy" in str(e):  # tantivy's own writer lock: not damage, never rebuild over it
                raise
            log.warning("lexical index of %s damaged (%s); rebuilding from the store", collection.name, e)
            return self._rebuild(store, collection, None)
        self._write_stamp(Stamp(changes[-1].change_number, stamp.directory))
        return changes[-1].change_number

    def _replay(self, store: Store, index: tantivy.Index, changes: list[ChunkChange]) -> None:
        removed = {c for change in changes for c in change.removed_chunk_ids}
        # Chunk ids are never reused: a chunk added and removed within the replay is simply absent.
        added = [c for change in changes for c in change.added_chunk_ids if c not in removed]
        writer = index.writer(_CATCH_UP_HEAP, 1)
        for chunk_id in removed:
            writer.delete_documents_by_term(CHUNK_ID, chunk_id)
        for start in range(0, len(added), _REPLAY_SLICE):
            # A chunk removed since the log was read is missing here; its removal is replayed next.
            for chunk in store.chunk_texts(self.collection_id, added[start:start + _REPLAY_SLICE]):
                writer.delete_documents_by_term(CHUNK_ID, chunk.id)  # already there if a stamp was lost
                writer.add_document(_document(chunk))
        self._commit(writer)

    def _rebuild(self, store: Store, collection: Collection, existing: tuple[tantivy.Index, str] | None) -> int:
        """Index every chunk of the collection: in a new folder when nothing usable exists, else
        in one commit that replaces the contents (a reader never sees an empty index).

        The change number is read before the first page: a chunk written while the pages are read
        is indexed too, which the log replayed from that stamp then repeats harmlessly."""
        started = time.perf_counter()
        number = store.change_number(collection.id)  # raises for a deleted collection, before any file
        if existing is None:
            directory = f"index-{uuid.uuid4().hex[:12]}"
            (self.path / directory).mkdir(parents=True)
            index = tantivy.Index(SCHEMA, path=str(self.path / directory))
            index.register_tokenizer(ANALYZER_NAME, analyzer())
        else:
            index, directory = existing
        writer = index.writer(_REBUILD_HEAP, 0)
        writer.delete_all_documents()
        count = 0
        for chunk in self._every_chunk(store):
            writer.add_document(_document(chunk))
            count += 1
        self._commit(writer)
        self._write_stamp(Stamp(number, directory))
        for old in self.path.glob("index-*"):
            if old.name != directory:
                shutil.rmtree(old, ignore_errors=True)
        log.info("lexical index of %s rebuilt: %d chunks in %.1f s", collection.name, count,
                 time.perf_counter() - started)
        return number

    def _every_chunk(self, store: Store) -> Iterable[ChunkText]:
        after = 0
        while page := store.chunk_texts_after(self.collection_id, after, _REPLAY_SLICE):
            yield from page
            after = page[-1].id

    def _write_stamp(self, stamp: Stamp) -> None:
        # Renamed into place, not synced: a stamp lost to a power cut only means replaying more.
        tmp = self._stamp_path.with_name(f".{self._stamp_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"stamp": stamp.number, "directory": stamp.directory, "format": FORMAT}))
        os.replace(tmp, self._stamp_path)

    @staticmethod
    def _commit(writer: tantivy.IndexWriter) -> None:
        writer.commit()
        # The merges the commit set off run on the writer's threads: finish them before letting go
        # of the lock (small ones take milliseconds), or segments would pile up commit by commit.
        writer.wait_merging_threads()

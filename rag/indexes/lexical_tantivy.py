"""The lexical index on tantivy: BM25 with block-max WAND pruning, one on-disk index per collection.

An inverted index ranks the top k of a bag-of-words query without scoring every chunk that holds
one of its words (what SQLite FTS5's `bm25()` had to do: half the collection for a typical claim).
Like the FAISS index it is derived from the store and stamped with the change number it reflects;
behind the store, it replays the change log, reading the text of the chunks added from the store;
when the log does not reach back, or the index is missing or damaged, it is rebuilt. The files, the
stamp and the writer's lock are `rag.indexes.tantivy_folder`'s.

**Commits stay off the request path.** A tantivy commit costs a dozen fsyncs (about 100 ms here),
and several processes share the index, so no search or write waits for a commit it does not need:

- a write (`save`, after an ingest batch, an upload job, a delete) asks this process's committer
  thread to catch the index up, and returns; a search in this process first waits for the
  catch-ups its own writes asked for, so it reads its writes;
- a search that finds the index behind the store because another process wrote asks for a
  catch-up (at most every `CATCH_UP_INTERVAL_S`) and searches what is committed meanwhile;
- `load` (a server's start, the start of an ingest) catches up before it returns;
- the committer thread is not a daemon: a process that exits, such as `rag ingest`, finishes its
  catch-up first and leaves the index current.

Other processes reload their searcher when the stamp on disk moves. So every process sees every
other's writes within about `CATCH_UP_INTERVAL_S` plus one commit.

Queries are the distinct analysed words of the user's text (`rag.indexes.analysis`), ORed; a
metadata filter is a non-scoring clause over the documents' key=value terms, not a list of ids.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tantivy

from rag.errors import CollectionNotFound
from rag.indexes.analysis import query_terms
from rag.indexes.tantivy_folder import CHUNK_ID, META, SCHEMA, TEXT, IndexBusy, IndexFolder, metadata_term
from rag.records import ChunkChange, Collection
from rag.store import Store

__all__ = ["CATCH_UP_INTERVAL_S", "TantivyIndex"]

log = logging.getLogger(__name__)

CATCH_UP_INTERVAL_S = 0.25
"""How often a searching process asks for a catch-up with writes another process made."""

WRITER_WAIT_S = 120.0
"""How long a catch-up waits for another process's (a rebuild of a large collection takes that)."""

OWN_WRITES_WAIT_S = 10.0
"""How long a search waits for the catch-ups its own process's writes asked for."""

FEW_IDS = 100
"""Up to this many chunk ids, a restriction to them is a disjunction of term queries (see
`_chunk_ids_query`); more, a term-set query."""


@dataclass
class _Open:
    """One collection's index as this process searches it."""

    index: tantivy.Index
    directory: str
    stamp: int
    """The change number the searcher reflects (at least)."""
    searcher: tantivy.Searcher


def _chunk_ids_query(ids: np.ndarray) -> tantivy.Query:
    """Matches the chunks of these ids. A few ids (a hybrid search asking the BM25 of its hits only
    the dense list found) are term queries ORed: a term-set query walks the id field's whole term
    dictionary and fills a bitmap the size of the segment (at 1M chunks, 10 ids: 0.25 ms ORed, 0.6
    ms as a set)."""
    if len(ids) <= FEW_IDS:
        return tantivy.Query.boolean_query([(tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, CHUNK_ID, int(i)))
                                            for i in ids])
    return tantivy.Query.term_set_query(SCHEMA, CHUNK_ID, [int(i) for i in ids])


class _Committer:
    """This process's catch-ups of one collection's index, run one at a time on a thread that
    lives while there is work (requests made meanwhile are served by one more run)."""

    def __init__(self, run: Callable[[Collection], None]):
        self._run = run
        self._cond = threading.Condition()
        self._requested = 0
        self._done = 0
        """Requests up to this number are served by a finished run."""
        self._for_writes = 0
        """The request number of this process's latest write."""
        self._collection: Collection | None = None
        self._thread: threading.Thread | None = None
        self.asked_at = float("-inf")
        """When a search last asked for a catch-up (monotonic seconds)."""

    def request(self, collection: Collection, *, write: bool) -> None:
        with self._cond:
            self._requested += 1
            self._collection = collection
            if write:
                self._for_writes = self._requested
            if self._thread is None:
                # Not a daemon: an exiting process finishes the catch-up its writes asked for.
                self._thread = threading.Thread(target=self._serve, name="lexical-commit", daemon=False)
                self._thread.start()

    def wait_for_writes(self, timeout_s: float) -> None:
        with self._cond:
            target = self._for_writes
            self._cond.wait_for(lambda: self._done >= target, timeout_s)

    def _serve(self) -> None:
        while True:
            with self._cond:
                if self._done >= self._requested or self._collection is None:
                    self._thread = None
                    return
                target, collection = self._requested, self._collection
            try:
                self._run(collection)
            except CollectionNotFound:
                pass  # deleted meanwhile: nothing left to index
            except Exception as e:  # stale, never wrong: the next catch-up replays what this lacked
                log.warning("could not update the lexical index of %s: %s", collection.name, e)
            with self._cond:
                self._done = target
                self._cond.notify_all()


class TantivyIndex:
    """The `rag.indexes.LexicalIndex` on tantivy, shared by every process using the data folder."""

    def __init__(self, store: Store, root: Path):
        self.store = store
        self.root = Path(root)
        self._open: dict[int, _Open] = {}
        self._committers: dict[int, _Committer] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def folder(self, collection_id: int) -> Path:
        """Where the collection's index lives."""
        return IndexFolder(self.root, collection_id).path

    # -- the protocol ----------------------------------------------------------------------------

    def search(self, collection: Collection, query: str, k: int, allowed: np.ndarray | None = None, *,
               filter: dict[str, list] | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, BM25 score) for the words of `query`, higher is better. `filter` (a
        validated metadata filter) and `allowed` (chunk ids) restrict the chunks searched."""
        terms = query_terms(query)
        if not terms or k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        words = [tantivy.Query.term_query(SCHEMA, TEXT, t) for t in terms]
        q = words[0] if len(words) == 1 else tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, w) for w in words])
        restrictions = [tantivy.Query.term_set_query(SCHEMA, META, [metadata_term(key, v) for v in values])
                        for key, values in (filter or {}).items()]
        if allowed is not None:
            restrictions.append(_chunk_ids_query(allowed))
        if restrictions:
            # Restrictions select, they do not score: the ranking stays the words' BM25.
            q = tantivy.Query.boolean_query([(tantivy.Occur.Must, q)] + [
                (tantivy.Occur.Must, tantivy.Query.const_score_query(r, 0.0)) for r in restrictions])
        self._committer(collection.id).wait_for_writes(OWN_WRITES_WAIT_S)
        searcher = self._searcher(collection)
        # count=False: counting every match would visit them all, which is what pruning avoids.
        hits = searcher.search(q, k, count=False).hits
        if not hits:
            return []
        ids = searcher.fast_field_values(CHUNK_ID, [address for _, address in hits])
        # Every document of ours has a chunk id (None would be a segment without the column).
        return [(int(i), float(score)) for (score, _), i in zip(hits, ids, strict=True) if i is not None]

    def load(self, collection: Collection) -> int:
        """Bring the collection's index up to the store now (waiting for another process's
        catch-up if need be); returns how many chunks it holds."""
        cid = collection.id
        with self._lock(cid):
            current = self._reload(cid, self._open.get(cid))
        if current is None or current.stamp < self.store.change_number(cid):
            self._catch_up(collection)
            with self._lock(cid):
                current = self._reload(cid, self._open.get(cid))
        if current is None:
            raise IndexBusy(f"the lexical index of {collection.name!r} could not be opened")
        return current.searcher.num_docs

    def apply(self, collection: Collection, change: ChunkChange) -> None:
        """Nothing yet: `save` catches up with every change since the stamp at once, so a batch of
        documents is one tantivy commit (one segment), not one per document."""

    def save(self, collection: Collection) -> None:
        """Ask for a catch-up with this process's writes (and any other's), committed on this
        process's committer thread; this process's searches wait for it, nothing else does."""
        self._committer(collection.id).request(collection, write=True)

    def forget(self, collection_id: int) -> None:
        """Drop the collection's index from this process and from disk."""
        with self._lock(collection_id):
            self._open.pop(collection_id, None)
        IndexFolder(self.root, collection_id).remove(WRITER_WAIT_S)

    def saved_stamp(self, collection_id: int) -> int | None:
        """The change number of what is committed on disk (shared by every process)."""
        stamp = IndexFolder(self.root, collection_id).stamp()
        return None if stamp is None else stamp.number

    # -- keeping current -------------------------------------------------------------------------

    def _lock(self, collection_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(collection_id, threading.Lock())

    def _committer(self, collection_id: int) -> _Committer:
        with self._guard:
            if collection_id not in self._committers:
                self._committers[collection_id] = _Committer(self._catch_up)
            return self._committers[collection_id]

    def _searcher(self, collection: Collection) -> tantivy.Searcher:
        """The searcher of what is committed, reloaded when the stamp moved; behind the store, a
        catch-up is asked for. Only when nothing usable is on disk does a search wait for one."""
        cid = collection.id
        with self._lock(cid):
            target = self.store.change_number(cid)
            current = self._open.get(cid)
            if current is None or current.stamp < target:
                current = self._reload(cid, current)
            if current is not None:
                if current.stamp < target:
                    self._ask_for_catch_up(collection)
                return current.searcher
        self._catch_up(collection)
        with self._lock(cid):
            current = self._reload(cid, self._open.get(cid))
        if current is None:
            raise IndexBusy(f"the lexical index of {collection.name!r} could not be opened")
        return current.searcher

    def _ask_for_catch_up(self, collection: Collection) -> None:
        committer = self._committer(collection.id)
        now = time.monotonic()
        if now - committer.asked_at >= CATCH_UP_INTERVAL_S:
            committer.asked_at = now
            committer.request(collection, write=False)

    def _catch_up(self, collection: Collection) -> None:
        """Catch the index on disk up (under the writer lock), then reload this process's searcher,
        so the next search needs no reload of its own."""
        IndexFolder(self.root, collection.id).catch_up(self.store, collection, WRITER_WAIT_S)
        with self._lock(collection.id):
            self._reload(collection.id, self._open.get(collection.id))

    def _reload(self, cid: int, current: _Open | None) -> _Open | None:
        """What is committed on disk, if newer than what this process searches (or not open yet);
        None when there is no usable index. Called holding the collection's thread lock."""
        folder = IndexFolder(self.root, cid)
        stamp = folder.stamp()
        if stamp is None or (current is not None and current.stamp >= stamp.number
                             and current.directory == stamp.directory):
            return current
        # Another process's merge can delete a file between our reading meta.json and opening it:
        # try again, and failing that keep searching what this process has open.
        for attempt in range(3):
            try:
                if current is None or current.directory != stamp.directory:
                    index = folder.open(stamp.directory)
                    if index is None:
                        return current
                    current = _Open(index, stamp.directory, stamp.number, index.searcher())
                else:
                    current.index.reload()
                    current.searcher = current.index.searcher()
                    current.stamp = stamp.number
                self._open[cid] = current
                return current
            except (ValueError, OSError) as e:
                if attempt == 2:
                    log.warning("could not reload the lexical index of collection %d: %s", cid, e)
                time.sleep(0.01)
        return current

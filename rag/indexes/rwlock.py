"""A readers-writer lock for one collection's in-memory index.

FAISS allows any number of concurrent searches on an index but no add during a search, so searches
share the lock and writes take it alone. Writers are preferred: once one waits, new readers queue
behind it, so a steady stream of searches cannot starve the ingest worker (a write holds the lock
for the few milliseconds of one document's vectors).

A checkpoint also only reads the index, but for seconds on a large one. It holds the lock as a
*long* reader; a writer that may skip its turn (`write(yield_to_long_readers=True)`) returns at once
while one is in, instead of queueing and so holding every new search behind the checkpoint. The
skipped change is already committed to the store and logged, and the index replays it afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ReadWriteLock"]


class ReadWriteLock:
    """Shared reads, exclusive writes, writers first."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._long_readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self, *, long: bool = False) -> Iterator[None]:
        """Hold the lock shared; `long` marks a reader that writers may decline to wait for."""
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
            self._long_readers += long
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._long_readers -= long
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self, *, yield_to_long_readers: bool = False) -> Iterator[bool]:
        """Hold the lock alone; yields True. With `yield_to_long_readers`, yields False without
        taking the lock when a long reader holds it (the caller does its work later)."""
        with self._cond:
            if yield_to_long_readers and self._long_readers:
                acquired = False
            else:
                self._waiting_writers += 1
                try:
                    while self._writer or self._readers:
                        self._cond.wait()
                finally:
                    self._waiting_writers -= 1
                self._writer = True
                acquired = True
        try:
            yield acquired
        finally:
            if acquired:
                with self._cond:
                    self._writer = False
                    self._cond.notify_all()

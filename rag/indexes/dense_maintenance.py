"""The dense index's background work: one thread per `IndexCache` that runs compactions when woken
and checkpoints on a timer (`IndexCache.maintain` decides what is due)."""

from __future__ import annotations

import threading
import time
import weakref
from typing import Protocol

__all__ = ["Maintained", "Maintenance"]


class Maintained(Protocol):
    def maintain(self, *, checkpoints: bool = True) -> None:
        """Run the compactions that are due, and (with `checkpoints`) the checkpoints worth writing."""
        ...


class Maintenance:
    """The background thread of one cache: compactions when woken, checkpoints every `interval`
    seconds. It holds the cache weakly, so a cache dropped without `close()` lets its thread end."""

    def __init__(self, cache: Maintained, interval: float, *, enabled: bool = True):
        self._cache = weakref.ref(cache)
        self._interval = interval
        self._enabled = enabled
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread, once (a cache starts it when it loads its first index)."""
        with self._lock:
            if self._enabled and self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(target=self._run, name="dense-index-maintenance", daemon=True)
                self._thread.start()

    def wake_if(self, due: bool) -> None:
        """Run `maintain` now rather than at the next checkpoint time, if something is due."""
        if due:
            self._wake.set()

    def stop(self) -> None:
        """End the thread and wait for it (the cache abandons a compaction under way first)."""
        with self._lock:
            self._stopped.set()
            self._wake.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        next_checkpoint = time.monotonic() + self._interval
        while not self._stopped.is_set():
            self._wake.wait(timeout=max(0.0, next_checkpoint - time.monotonic()))
            self._wake.clear()
            if self._stopped.is_set():
                return
            cache = self._cache()
            if cache is None:
                return
            checkpoints = time.monotonic() >= next_checkpoint
            cache.maintain(checkpoints=checkpoints)
            if checkpoints:
                next_checkpoint = time.monotonic() + self._interval
            del cache

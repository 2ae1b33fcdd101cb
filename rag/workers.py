"""Ingest-worker liveness, in the database every server shares.

Several API processes may share one database: each upload worker records which queued documents
are its own (`documents.owner`) and beats a heartbeat here. A worker that looks and finds uploads
whose worker is gone claims them (`claim_orphaned`), and finishes them or fails them; it never
touches those another live server is still working on.

The claim is one UPDATE in a write transaction, and write transactions run one at a time on both
engines (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's advisory write lock in `Store.write`), so two
servers looking at once claim disjoint sets: the second sees the first's claims committed.

A worker also holds an advisory lock on a file of its own (`<home>/workers/<id>.lock`) for as long
as its process lives: the kernel lets go of it the moment the process dies, kill -9 included. So a
server starting after a crash on the same machine sees at once that the crashed worker's lock is
free and claims its uploads then, instead of waiting for the heartbeat to go stale (a minute). A
worker without a lock file here (another machine's, or a release before the locks) is judged by
its heartbeat alone.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from sqlalchemy import delete, select, text

from rag.schema import IngestWorkerRow
from rag.store import Store

__all__ = ["IngestWorkers"]


class IngestWorkers:
    """The `ingest_workers` table: who is alive, and the uploads of those who are not."""

    def __init__(self, store: Store, lock_dir: Path | None = None):
        self._store = store
        self._lock_dir = lock_dir
        self._held: dict[str, int] = {}  # worker id -> the descriptor holding its lock
        self._held_lock = threading.Lock()

    def _lock_path(self, worker_id: str) -> Path | None:
        if self._lock_dir is None or not worker_id.isalnum():
            return None
        return self._lock_dir / f"{worker_id}.lock"

    def _hold(self, worker_id: str) -> None:
        path = self._lock_path(worker_id)
        with self._held_lock:
            if path is None or worker_id in self._held:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._held[worker_id] = fd

    def _dead(self, worker_id: str) -> bool:
        """Whether the worker's lock file exists and nobody holds it (its process is gone)."""
        path = self._lock_path(worker_id)
        if path is None or worker_id in self._held:
            return False
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False  # no lock to judge by: the heartbeat decides
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)  # closing lets go of the lock, if we took it
        return True

    def heartbeat(self, worker_id: str) -> None:
        """Record that the ingest worker `worker_id` is alive now (and hold its lock from now on)."""
        self._hold(worker_id)
        with self._store.write() as s:
            s.execute(text("INSERT INTO ingest_workers(id, heartbeat_at) VALUES (:w, :t) "
                           "ON CONFLICT(id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"),
                      {"w": worker_id, "t": time.time()})

    def retire_worker(self, worker_id: str) -> None:
        """Forget a worker that shut down after finishing its queued work."""
        with self._store.write() as s:
            s.execute(delete(IngestWorkerRow).where(IngestWorkerRow.id == worker_id))
        with self._held_lock:
            fd = self._held.pop(worker_id, None)
        path = self._lock_path(worker_id)
        if path is not None:
            path.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)

    def claim_orphaned(self, worker_id: str, stale_after_s: float, *, limit: int = 100) -> list[int]:
        """Take over (as `worker_id`, status `queued`) up to `limit` queued or processing documents
        whose worker is gone; returns their ids. Gone: its lock is free (its process died), or it
        stopped beating for `stale_after_s`. Gone workers are forgotten first."""
        cutoff = time.time() - stale_after_s
        with self._store.read() as s:
            known = list(s.scalars(select(IngestWorkerRow.id)))
        dead = [w for w in known if w != worker_id and self._dead(w)]
        with self._store.write() as s:
            s.execute(delete(IngestWorkerRow).where(IngestWorkerRow.heartbeat_at < cutoff))
            if dead:
                s.execute(delete(IngestWorkerRow).where(IngestWorkerRow.id.in_(dead)))
            claimed = sorted(s.execute(text(
                "UPDATE documents SET status = 'queued', owner = :w WHERE id IN ("
                " SELECT id FROM documents WHERE status IN ('queued', 'processing')"
                " AND (owner IS NULL OR owner NOT IN (SELECT id FROM ingest_workers)) ORDER BY id LIMIT :n)"
                " RETURNING id"), {"w": worker_id, "n": limit}).scalars().all())
        for gone in dead:
            path = self._lock_path(gone)
            if path is not None:
                path.unlink(missing_ok=True)
        return claimed

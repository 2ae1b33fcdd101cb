"""Ingest-worker liveness, in the database every server shares.

Several API processes may share one database: each upload worker records which queued documents
are its own (`documents.owner`) and beats a heartbeat here, so a server that starts fails only the
uploads of workers that are gone, never those another live server is still working on.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, text
from sqlalchemy.engine import CursorResult

from rag.schema import IngestWorkerRow
from rag.store import Store

__all__ = ["IngestWorkers"]


class IngestWorkers:
    """The `ingest_workers` table: who is alive, and the uploads of those who are not."""

    def __init__(self, store: Store):
        self._store = store

    def heartbeat(self, worker_id: str) -> None:
        """Record that the ingest worker `worker_id` is alive now."""
        with self._store.write() as s:
            s.execute(text("INSERT INTO ingest_workers(id, heartbeat_at) VALUES (:w, :t) "
                           "ON CONFLICT(id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"),
                      {"w": worker_id, "t": time.time()})

    def retire_worker(self, worker_id: str) -> None:
        """Forget a worker that shut down after finishing its queued work."""
        with self._store.write() as s:
            s.execute(delete(IngestWorkerRow).where(IngestWorkerRow.id == worker_id))

    def fail_orphaned(self, stale_after_s: float, message: str) -> int:
        """Mark failed the queued or processing documents whose worker stopped beating; returns
        how many. Workers silent for `stale_after_s` are forgotten."""
        cutoff = time.time() - stale_after_s
        with self._store.write() as s:
            s.execute(delete(IngestWorkerRow).where(IngestWorkerRow.heartbeat_at < cutoff))
            result: CursorResult = s.execute(text(  # type: ignore[assignment]  # an UPDATE gives a cursor result
                "UPDATE documents SET status = 'failed', error = :m, owner = NULL "
                "WHERE status IN ('queued', 'processing') "
                "AND (owner IS NULL OR owner NOT IN (SELECT id FROM ingest_workers))"), {"m": message})
            return result.rowcount

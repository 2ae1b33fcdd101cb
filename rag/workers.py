"""Ingest-worker liveness, in the database every server shares.

Several API processes may share one database: each upload worker records which queued documents
are its own (`documents.owner`) and beats a heartbeat here. A worker that looks and finds uploads
whose worker is gone claims them (`claim_orphaned`), and finishes them or fails them; it never
touches those another live server is still working on.

The claim is one UPDATE in a write transaction, and write transactions run one at a time on both
engines (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's advisory write lock in `Store.write`), so two
servers looking at once claim disjoint sets: the second sees the first's claims committed.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, text

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

    def claim_orphaned(self, worker_id: str, stale_after_s: float, *, limit: int = 100) -> list[int]:
        """Take over (as `worker_id`, status `queued`) up to `limit` queued or processing documents
        whose worker stopped beating; returns their ids. Workers silent for `stale_after_s` are
        forgotten first."""
        cutoff = time.time() - stale_after_s
        with self._store.write() as s:
            s.execute(delete(IngestWorkerRow).where(IngestWorkerRow.heartbeat_at < cutoff))
            return sorted(s.execute(text(
                "UPDATE documents SET status = 'queued', owner = :w WHERE id IN ("
                " SELECT id FROM documents WHERE status IN ('queued', 'processing')"
                " AND (owner IS NULL OR owner NOT IN (SELECT id FROM ingest_workers)) ORDER BY id LIMIT :n)"
                " RETURNING id"), {"w": worker_id, "n": limit}).scalars().all())

"""Documents accepted over HTTP: recorded as `queued` at once, ingested on one worker thread.

One worker per process is enough: SQLite takes one writer at a time, and the embedder already uses
every core. Several API processes may share the database, so each worker stamps the documents it
queued with its id and beats a heartbeat; a document whose worker stopped beating (the process
died) is marked `failed` with a message asking for it again, by whichever process notices first.
An upload is never silently dropped, and a live process's uploads are never failed by another.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ingest.loaders import LoadedDocument
from ingest.pipeline import Pipeline, document_hash, is_unchanged
from rag import metrics
from rag.errors import DocumentNotFound, RagError
from rag.records import Collection
from rag.service import Service
from rag.writer import CollectionWriter

log = logging.getLogger(__name__)

INTERRUPTED = "ingestion was interrupted because its server stopped; upload the document again"
HEARTBEAT_S = 15.0
STALE_AFTER_S = 60.0  # four missed heartbeats: the worker's process is gone


@dataclass(frozen=True)
class Accepted:
    id: int
    source: str
    status: str
    change: str = "created"
    """`created` (a new source), `updated` (its content changed: it replaces the document) or
    `unchanged` (the same content as stored: nothing to do)."""
    error: str | None = None
    failure: RagError | None = None
    """For a document that failed while the caller waited: why (a front end reports its status)."""


class IngestQueue:
    def __init__(self, service: Service, *, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S):
        self.service = service
        self.worker_id = uuid.uuid4().hex
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        self._heartbeat_s = heartbeat_s
        self._stale_after_s = stale_after_s
        self._stop = threading.Event()
        self._beat()
        self._beater = threading.Thread(target=self._beat_until_stopped, name="ingest-heartbeat", daemon=True)
        self._beater.start()

    def _beat(self) -> int:
        """Prove this worker alive, and fail the uploads of workers that are not."""
        failed = self.service.beat(self.worker_id, stale_after_s=self._stale_after_s, orphan_message=INTERRUPTED)
        if failed:
            log.warning("%d queued document(s) of a stopped server marked failed", failed)
        return failed

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(self._heartbeat_s):
            try:
                self._beat()
            except Exception:  # a busy or briefly unreachable database: try again next beat
                log.exception("ingest heartbeat failed")

    def submit(self, collection: Collection, docs: list[LoadedDocument], *, wait: bool) -> list[Accepted]:
        """Queue documents as one job; with `wait`, return once each is ready or failed."""
        writer = self.service.writer(collection)
        known = writer.known(doc.source for doc in docs)
        accepted: list[Accepted] = []
        jobs: list[tuple[int, LoadedDocument]] = []
        for doc in docs:
            digest = document_hash(doc)
            if is_unchanged(known, doc.source, digest):
                accepted.append(Accepted(known[doc.source].id, doc.source, "ready", "unchanged"))
                continue
            doc_id = writer.queue_document(source=doc.source, content_hash=digest, title=doc.title,
                                           text=doc.text, metadata=doc.metadata, owner=self.worker_id)
            jobs.append((doc_id, doc))
            accepted.append(Accepted(doc_id, doc.source, "queued", "updated" if doc.source in known else "created"))
        if not jobs:
            return accepted
        metrics.INGEST_QUEUE_DEPTH.inc(len(jobs))
        future = self._executor.submit(self._ingest, writer, jobs)
        if not wait:
            return accepted
        failures = future.result()
        done = []
        for a in accepted:
            if a.status == "ready":
                done.append(a)
                continue
            try:
                stored = writer.document(a.id)
            except DocumentNotFound:  # deleted while it waited
                continue
            failure = failures.get(a.id)
            # A failed re-upload leaves the document's previous version ready; this upload failed.
            done.append(Accepted(a.id, a.source, "failed" if failure else stored.status, a.change, stored.error,
                                 failure))
        return done

    def _ingest(self, writer: CollectionWriter, jobs: list[tuple[int, LoadedDocument]]) -> dict[int, RagError]:
        """Ingest one request's documents in turn, saving the index once; returns each failure's
        error (an upstream embedder's rate limit or timeout keeps its meaning)."""
        failures: dict[int, RagError] = {}
        pipeline = Pipeline(writer)
        for doc_id, doc in jobs:
            try:
                outcome = self._ingest_one(writer, pipeline, doc_id, doc, failures)
            finally:
                metrics.INGEST_QUEUE_DEPTH.dec()
            metrics.INGEST_DOCUMENTS.labels(outcome).inc()
        try:
            writer.save_index()
        except OSError as e:
            log.warning("could not save the index of %s: %s", writer.collection.name, e)
        return failures

    def _ingest_one(self, writer: CollectionWriter, pipeline: Pipeline, doc_id: int, doc: LoadedDocument,
                    failures: dict[int, RagError]) -> str:
        """Ingest one queued document; returns its outcome (`ready`, `failed` or `deleted`)."""
        if not writer.set_status(doc_id, "processing"):
            return "deleted"  # deleted while queued
        try:
            summary = pipeline.ingest_documents([doc], expect_ids={doc.source: doc_id}, save=False)
        except DocumentNotFound:
            return "deleted"  # deleted while it was being embedded: it stays deleted
        except RagError as e:
            writer.fail_document(doc_id, str(e))
            failures[doc_id] = e
            return "failed"
        except Exception as e:  # a bug must not leave the document "processing" forever
            # The source names the file; the document's text never reaches the log.
            log.exception("ingesting %s failed", doc.source)
            writer.fail_document(doc_id, f"internal error: {e}")
            failures[doc_id] = RagError(f"internal error: {e}")
            return "failed"
        metrics.INGEST_CHUNKS.inc(summary.chunks)
        return "ready"

    def shutdown(self) -> None:
        """Finish the queued work, then stop beating and leave."""
        self._executor.shutdown(wait=True, cancel_futures=False)
        self._stop.set()
        self._beater.join()
        self.service.retire_worker(self.worker_id)

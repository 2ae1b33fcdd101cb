"""Documents accepted over HTTP: recorded as `queued` at once, ingested on one worker thread.

One worker per process is enough: the database takes one writer at a time, and the embedder already
uses every core. Several API processes may share the database, so each worker stamps the documents
it queued with its id and beats a heartbeat. The uploads of a worker that stopped beating (its
process died) are claimed by whichever live worker looks first, and finished from the text stored
when they were queued: split back into its paragraphs, the text and so the chunks' spans are the
same, though a PDF's page numbers are not kept. A replacement of a stored document cannot be
finished that way (its old text stays until the new one lands), so it is marked `failed` with a
message asking for it again. An upload is never silently dropped or ingested twice, and a live
process's uploads are never touched by another.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ingest.loaders import LoadedDocument
from ingest.loaders.document import Piece, assemble
from ingest.pipeline import Pipeline, document_hash, is_unchanged
from rag import metrics
from rag.errors import DocumentNotFound, RagError
from rag.records import Collection, Document
from rag.service import Service
from rag.writer import CollectionWriter

log = logging.getLogger(__name__)

INTERRUPTED = "ingestion was interrupted because its server stopped; upload the document again"


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
    def __init__(self, service: Service, *, heartbeat_s: float | None = None, stale_after_s: float | None = None):
        """`heartbeat_s` and `stale_after_s` default to the service's RAG_WORKER_HEARTBEAT_S and
        RAG_WORKER_STALE_S."""
        self.service = service
        self.worker_id = uuid.uuid4().hex
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        self._heartbeat_s = service.settings.worker_heartbeat_s if heartbeat_s is None else heartbeat_s
        self._stale_after_s = service.settings.worker_stale_s if stale_after_s is None else stale_after_s
        self._stop = threading.Event()
        self._beat()
        self._beater = threading.Thread(target=self._beat_until_stopped, name="ingest-heartbeat", daemon=True)
        self._beater.start()

    def _beat(self) -> int:
        """Prove this worker alive, and take over the uploads of workers that are not: those whose
        stored text is what was uploaded are ingested here, the rest are failed; returns how many
        were failed."""
        failed = 0
        for collection, document in self.service.claim_orphaned(self.worker_id, stale_after_s=self._stale_after_s):
            loaded = _as_uploaded(document)
            try:
                writer = self.service.writer(collection)
                if loaded is None:
                    writer.fail_document(document.id, INTERRUPTED)  # a re-upload keeps its previous version
                    failed += 1
                    continue
                log.warning("finishing %s, queued by a stopped server", document.source)
                metrics.INGEST_QUEUE_DEPTH.inc()  # queued here now (`_ingest` counts it down)
                try:
                    self._executor.submit(self._ingest, writer, [(document.id, loaded)])
                except RuntimeError:  # shutting down: the next server to look finishes it
                    metrics.INGEST_QUEUE_DEPTH.dec()
                    return failed
            except RagError as e:  # e.g. the collection's embedder is not available on this server
                self.service.fail_document(document.id, f"{INTERRUPTED} ({e})")
                failed += 1
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


def _as_uploaded(document: Document) -> LoadedDocument | None:
    """The upload a queued document holds, rebuilt from its stored text (every loader joins its
    elements with a blank line, so splitting there gives the same text back), or None when the
    stored text is not what was uploaded (its hash differs: a queued replacement)."""
    if document.text is None:
        return None
    pieces = [Piece(part, "NarrativeText") for part in document.text.split("\n\n")]
    loaded = assemble(document.source, document.title, pieces, document.metadata)
    return loaded if loaded.text == document.text and document_hash(loaded) == document.content_hash else None

"""Documents accepted over HTTP: recorded as `queued` at once, ingested on one worker thread.

One worker is enough: SQLite takes one writer at a time, and the embedder already uses every core.
A document still `queued` or `processing` when the server stopped is marked `failed` at the next
start, with a message asking for it again: its upload is never silently dropped.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import text

from ingest.loaders import LoadedDocument
from ingest.pipeline import Pipeline, document_hash
from rag.errors import DocumentNotFound, RagError
from rag.service import Service
from rag.store import Collection

log = logging.getLogger(__name__)

INTERRUPTED = "ingestion was interrupted by a server restart; upload the document again"


@dataclass(frozen=True)
class Accepted:
    id: int
    source: str
    status: str
    error: str | None = None
    http_status: int | None = None
    """For a failed document: the status that says why (429, 502, 504 from an upstream, else 500)."""


class IngestQueue:
    def __init__(self, service: Service):
        self.service = service
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")

    def recover_interrupted(self) -> int:
        with self.service.store.write() as s:
            return s.execute(
                text("UPDATE documents SET status = 'failed', error = :e WHERE status IN ('queued', 'processing')"),
                {"e": INTERRUPTED},
            ).rowcount

    def submit(self, collection: Collection, docs: list[LoadedDocument], *, wait: bool) -> list[Accepted]:
        """Queue documents as one job; with `wait`, return once each is ready or failed."""
        store = self.service.store
        known = store.document_hashes(collection.id)
        accepted: list[Accepted] = []
        jobs: list[tuple[int, LoadedDocument]] = []
        for doc in docs:
            digest = document_hash(doc)
            entry = known.get(doc.source)
            if entry and entry[1] == digest and entry[2] == "ready":
                accepted.append(Accepted(entry[0], doc.source, "ready"))
                continue
            doc_id = store.queue_document(collection.id, source=doc.source, content_hash=digest,
                                          title=doc.title, text_=doc.text, metadata=doc.metadata)
            jobs.append((doc_id, doc))
            accepted.append(Accepted(doc_id, doc.source, "queued"))
        if not jobs:
            return accepted
        future = self._executor.submit(self._ingest, collection, jobs)
        if not wait:
            return accepted
        statuses = future.result()
        done = []
        for a in accepted:
            if a.status == "ready":
                done.append(a)
                continue
            try:
                doc = store.get_document(collection.id, a.id, with_text=False)
            except DocumentNotFound:  # deleted while it waited
                continue
            done.append(Accepted(a.id, a.source, doc.status, doc.error, statuses.get(a.id)))
        return done

    def _ingest(self, collection: Collection, jobs: list[tuple[int, LoadedDocument]]) -> dict[int, int]:
        """Ingest one request's documents in turn, saving the index once; returns the HTTP status
        of each failure (an upstream embedder's 429/502/504 keeps its meaning)."""
        store = self.service.store
        failures: dict[int, int] = {}
        try:
            embedder = self.service.retriever.embedder_for(collection)
            pipeline = Pipeline(store, self.service.indexes, collection, embedder)
        except RagError as e:
            for doc_id, _ in jobs:
                store.set_status(doc_id, "failed", str(e))
                failures[doc_id] = getattr(e, "status", 500)
            return failures
        for doc_id, doc in jobs:
            if not store.set_status(doc_id, "processing"):
                continue  # deleted while queued
            try:
                pipeline.ingest_documents([doc], expect_ids={doc.source: doc_id}, save=False)
            except DocumentNotFound:
                continue  # deleted while it was being embedded: it stays deleted
            except RagError as e:
                store.set_status(doc_id, "failed", str(e))
                failures[doc_id] = getattr(e, "status", 500)
            except Exception as e:  # a bug must not leave the document "processing" forever
                log.exception("ingesting %s failed", doc.source)
                store.set_status(doc_id, "failed", f"internal error: {e}")
                failures[doc_id] = 500
        try:
            self.service.indexes.save(collection)
        except OSError as e:
            log.warning("could not save the index of %s: %s", collection.name, e)
        return failures

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)

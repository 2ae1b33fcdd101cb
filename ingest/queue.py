"""Documents accepted over HTTP: recorded as `queued` at once, ingested on one worker thread.

One worker is enough: SQLite takes one writer at a time, and the embedder already uses every core.
A document still `queued` or `processing` when the server stopped is marked `failed` at the next
start, with a message asking for it again: its upload is never silently dropped.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import text

from ingest.loaders import LoadedDocument
from ingest.pipeline import Pipeline, document_hash
from rag.errors import RagError
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
        """Queue documents; with `wait`, return once each is ready or failed."""
        store = self.service.store
        known = store.document_hashes(collection.id)
        accepted: list[Accepted] = []
        jobs: list[tuple[int, LoadedDocument, Future | None]] = []
        for doc in docs:
            digest = document_hash(doc)
            entry = known.get(doc.source)
            if entry and entry[1] == digest and entry[2] == "ready":
                accepted.append(Accepted(entry[0], doc.source, "ready"))
                continue
            doc_id = store.queue_document(collection.id, source=doc.source, content_hash=digest,
                                          title=doc.title, text_=doc.text, metadata=doc.metadata)
            future = self._executor.submit(self._ingest, collection, doc_id, doc)
            jobs.append((doc_id, doc, future))
            accepted.append(Accepted(doc_id, doc.source, "queued"))
        if not wait:
            return accepted
        for _, _, future in jobs:
            future.result()
        done = []
        for a in accepted:
            doc = store.get_document(collection.id, a.id, with_text=False)
            done.append(Accepted(a.id, a.source, doc.status, doc.error))
        return done

    def _ingest(self, collection: Collection, doc_id: int, doc: LoadedDocument) -> None:
        store = self.service.store
        try:
            store.set_status(doc_id, "processing")
            embedder = self.service.retriever.embedder_for(collection)
            Pipeline(store, self.service.indexes, collection, embedder).ingest_documents([doc])
        except RagError as e:
            store.set_status(doc_id, "failed", str(e))
        except Exception as e:  # a bug must not leave the document "processing" forever
            log.exception("ingesting %s failed", doc.source)
            store.set_status(doc_id, "failed", f"internal error: {e}")

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)

"""The one façade of the library, and its composition root.

The command line, the HTTP API and the upload worker hold one `Service` and call its methods; none
of them sees the store, the indexes or the retriever behind it. A service owns everything it builds
from its settings (store, indexes, embedders, the OpenAI client), so two services with different
settings in one process share no mutable state; only the local model's immutable weights are shared.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.answer import Answer, AnswerEvent, Asker
from rag.answer.cache import AnswerCache
from rag.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from rag.config import Settings
from rag.data_folder import CollectionUsage, DataInfo, FileUsage, collection_index_bytes, disk_usage, mask_password
from rag.embeddings import Embedder, embedder_kinds, make_embedder
from rag.errors import CollectionExists, CollectionNotFound, InvalidInput, LimitExceeded
from rag.indexes import DenseIndex, LexicalIndex
from rag.indexes.dense_faiss import IndexCache
from rag.indexes.lexical_tantivy import TantivyIndex
from rag.indexes.pg import PgDenseIndex, PgLexicalIndex
from rag.limits import InputLimits
from rag.pricing import PriceTable
from rag.records import ChunkChange, Collection, Document
from rag.retrieval import DEFAULT_MODE, Hit, Retriever, best_chunk_per_document
from rag.store import Store
from rag.transfer import CollectionCopy
from rag.workers import IngestWorkers
from rag.writer import CollectionWriter

if TYPE_CHECKING:
    import openai

__all__ = ["CopyReport", "DeletedDocuments", "Embedded", "Health", "Service", "search_indexes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """What `/health` reports: the store answered, and how much is loaded."""

    indexes_loaded: int
    collections: int


@dataclass(frozen=True)
class CopyReport:
    """One collection copied by `Service.copy_to`, and how it checked out."""

    copy: CollectionCopy
    identical_top10: int
    """Of the sampled queries, how many got the same exact dense top 10 from both databases."""
    queries: int
    hybrid_overlap: float | None = None
    """Mean overlap@10 of the hybrid top 10 through each database's own indexes, for the same
    sampled queries (`rag.transfer.hybrid_overlap`): reported, not verified (the engines differ).
    None for an empty collection."""

    @property
    def verified(self) -> bool:
        return self.copy.verified and self.identical_top10 == self.queries

    def to_dict(self) -> dict:
        return {**self.copy.to_dict(), "identical_top10": self.identical_top10, "queries": self.queries,
                "hybrid_overlap_at_10": self.hybrid_overlap, "verified": self.verified}


@dataclass(frozen=True)
class DeletedDocuments:
    document_ids: list[int]
    chunks: int


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray
    """(n, dim) float32, L2-normalised."""
    tokens: int
    """Tokens the model read (inputs truncated to what it reads)."""
    model: str


def search_indexes(store: Store, settings: Settings, index_dir: Path, *, background: bool = True,
                    on_checkpoint: Callable[[int], None] | None = None) -> tuple[DenseIndex, LexicalIndex]:
    """The dense and lexical indexes that search `store`: in the database on PostgreSQL (no
    per-process state), FAISS and tantivy under `index_dir` on SQLite."""
    if store.on_postgres:
        return PgDenseIndex(store, ef_search=settings.pg_ef_search), PgLexicalIndex(store)
    return (IndexCache(store, index_dir, exact_limit=settings.dense_exact_limit,
                       checkpoint_s=settings.index_checkpoint_s, background=background, on_checkpoint=on_checkpoint),
            TantivyIndex(store, index_dir / "tantivy"))


class Service:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._store = Store(settings.database)
        # The implementations behind retrieval's two index protocols are chosen in `search_indexes`
        # only: on PostgreSQL search runs in the database (no per-process state); on SQLite, FAISS
        # and tantivy indexes beside it.
        self._dense, self._lexical = search_indexes(self._store, settings, settings.index_dir,
                                                     on_checkpoint=self._trim_change_log)
        self._workers = IngestWorkers(self._store, settings.home / "workers")
        self._embedders: dict[str, Embedder] = {}
        self._embedders_lock = threading.Lock()
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()
        self._limits = InputLimits.from_settings(settings)
        self._retriever = Retriever(self._store, self._dense, self._lexical, self.embedder_for)
        self._asker = Asker(self._retriever, settings, openai_client=self.openai_client,
                            prices=PriceTable.load(settings.price_table),
                            cache=AnswerCache(self._store, settings.answer_cache_entries))

    def close(self) -> None:
        """Checkpoint the indexes, stop background work, release the store and the client."""
        self._retriever.close()
        self._dense.close()
        self._store.close()
        if self._client is not None:
            self._client.close()

    def _trim_change_log(self, collection_id: int) -> None:
        """Drop the change log up to what both indexes on disk hold, so it stays as long as the
        changes since the last checkpoint rather than the collection's whole history. Any process
        (or a restart) behind that point starts from those files, which is no slower than the
        replay it would otherwise do."""
        stamps = (self._dense.saved_stamp(collection_id), self._lexical.saved_stamp(collection_id))
        if None not in stamps:
            self._store.forget_changes(collection_id, min(s for s in stamps if s is not None))

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- parts built on first use ----------------------------------------------------------------

    def openai_client(self) -> openai.OpenAI:
        """This service's client for the configured upstream (made once; safe to share between
        threads). Raises `MissingCredentials` when OPENAI_API_KEY is not set."""
        with self._client_lock:
            if self._client is None:
                from rag.openai_client import make_client

                self._client = make_client(self.settings)
            return self._client

    def embedder(self, kind: str) -> Embedder:
        """This service's embedder of that kind (built once)."""
        with self._embedders_lock:
            if kind not in self._embedders:
                self._embedders[kind] = make_embedder(kind, self.settings, self.openai_client)
            return self._embedders[kind]

    def embedder_for(self, collection: Collection) -> Embedder:
        """The collection's embedder; refuses one whose vectors would not match its own."""
        embedder = self.embedder(collection.embedder.kind)
        collection.check_embedder(embedder.spec)
        return embedder

    def health(self) -> Health:
        """Raises if the store cannot be read."""
        return Health(indexes_loaded=self._dense.loaded, collections=len(self._store.list_collections()))

    def info(self) -> DataInfo:
        """The data folder, the database, the built models and each collection's size on disk."""
        settings = self.settings
        database = settings.database_path
        if self._store.on_postgres:
            database_url, database_bytes = mask_password(settings.database), self._store.size_bytes()
        else:
            database_url = mask_password(f"sqlite:///{database.resolve()}")
            database_bytes = sum(disk_usage(database.with_name(database.name + suffix)) for suffix in ("", "-wal"))
        models = settings.model_cache_dir
        built = sorted(p for p in models.iterdir() if p.is_file() and not p.name.startswith(".")) \
            if models.is_dir() else []
        return DataInfo(
            home=settings.home.resolve(),
            database_url=database_url,
            database_bytes=database_bytes,
            embedder=settings.embedder,
            chat_model=settings.chat_model if settings.openai_enabled else None,
            models=[FileUsage(p, disk_usage(p)) for p in built],
            collections=[CollectionUsage(c.name, f"{c.embedder.kind}:{c.embedder.model_id}", c.documents, c.chunks,
                                         collection_index_bytes(settings.index_dir, c.id))
                         for c in self._store.list_collections()],
        )

    def warm_up(self) -> None:
        """Load the local model and every collection's index now, not on the first request."""
        self.warm_model()
        for collection in self._store.list_collections():
            self.load_indexes(collection)
        self.warm_query_checks()

    def warm_model(self) -> None:
        """Load the local model (what queries and /v1/embeddings use) and run it once."""
        self.embedder("local").embed(["warm up"])

    def warm_query_checks(self) -> None:
        """Run the checks every query passes once, so the first search does not pay for building
        the token encoding they count with (0.5-0.6 s)."""
        self._limits.check_query("warm up", "query")

    def load_indexes(self, collection: str | Collection) -> bool:
        """Bring a collection's dense and lexical indexes into memory; False (logged) when they
        could not be loaded: one bad collection must not stop a server starting."""
        try:
            if isinstance(collection, str):
                collection = self._store.get_collection(collection)
            self._dense.load(collection)
            self._lexical.load(collection)
        except Exception as e:
            log.warning("could not load the index of %s: %s", getattr(collection, "name", collection), e)
            return False
        return True

    # -- collections -----------------------------------------------------------------------------

    def list_collections(self) -> list[Collection]:
        return self._store.list_collections()

    def get_collection(self, name: str, *, counts: bool = False) -> Collection:
        return self._store.get_collection(name, counts=counts)

    def create_collection(self, name: str, *, embedder: str | None = None, chunk_size: int | None = None,
                          chunk_overlap: int | None = None) -> Collection:
        kind = embedder or self.settings.embedder
        if kind not in embedder_kinds():
            raise InvalidInput(f"embedder must be one of {', '.join(embedder_kinds())}, got {kind!r}",
                               param="embedder")
        spec = self.embedder(kind).spec
        return self._store.create_collection(
            name, spec,
            DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size,
            DEFAULT_CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap,
        )

    def open_collection(self, name: str, *, create: bool = False, embedder: str | None = None,
                        chunk_size: int | None = None, chunk_overlap: int | None = None) -> Collection:
        """The named collection; with `create`, made on first use. Options given for an existing
        collection must match what it was built with: its vectors and chunks depend on them."""
        try:
            collection = self._store.get_collection(name)
        except CollectionNotFound:
            if not create:
                raise
            try:
                return self.create_collection(name, embedder=embedder, chunk_size=chunk_size,
                                              chunk_overlap=chunk_overlap)
            except CollectionExists:  # another process made it just now: use it, if it matches
                collection = self._store.get_collection(name)
        if embedder is not None and embedder != collection.embedder.kind:
            raise InvalidInput(
                f"collection {name!r} uses the {collection.embedder.kind} embedder "
                f"({collection.embedder.model_id}); it cannot be ingested with {embedder}", param="embedder")
        if chunk_size is not None and chunk_size != collection.chunk_size:
            raise InvalidInput(f"collection {name!r} was chunked at {collection.chunk_size} tokens, not {chunk_size}",
                               param="chunk_size")
        if chunk_overlap is not None and chunk_overlap != collection.chunk_overlap:
            raise InvalidInput(
                f"collection {name!r} was chunked with overlap {collection.chunk_overlap}, not {chunk_overlap}",
                param="chunk_overlap")
        return collection

    def delete_collection(self, name: str) -> Collection:
        gone = self._store.delete_collection(name)
        self._dense.forget(gone.id)
        self._lexical.forget(gone.id)
        return gone

    def reindex(self, name: str) -> int:
        """Rebuild the collection's indexes from the store; returns how many vectors it holds."""
        collection = self._store.get_collection(name)
        self._dense.forget(collection.id)
        self._lexical.forget(collection.id)
        self._lexical.load(collection)
        return self._dense.load(collection)

    # -- documents -------------------------------------------------------------------------------

    def list_documents(self, name: str, *, limit: int = 100, after: int | None = None, source: str | None = None,
                       source_prefix: str | None = None) -> list[Document]:
        """Documents in id order, `limit` of them after id `after`; `source` keeps the one at that
        source, `source_prefix` those whose source starts with it (a folder: `notes/`)."""
        collection = self._store.get_collection(name)
        return self._store.list_documents(collection.id, limit=limit, after=after, source=source,
                                          source_prefix=source_prefix)

    def sources_outside(self, name: str, prefix: str, *, limit: int = 5) -> list[str]:
        """Up to `limit` sources of the collection's documents that do not start with `prefix`
        (so `rag eval` can refuse to mix a data set into a collection of other documents)."""
        collection = self._store.get_collection(name)
        found: list[str] = []
        after: int | None = None
        while len(found) < limit:
            page = self._store.list_documents(collection.id, limit=1000, after=after)
            if not page:
                break
            found += [d.source for d in page if not d.source.startswith(prefix)][: limit - len(found)]
            after = page[-1].id
        return found

    def get_document(self, name: str, document_id: int, *, with_text: bool = True) -> Document:
        collection = self._store.get_collection(name)
        return self._store.get_document(collection.id, document_id, with_text=with_text)

    def delete_documents(self, name: str, document_ids: Sequence[int]) -> DeletedDocuments:
        """Delete documents by id, all or none (an unknown id deletes nothing), from the store and
        the indexes. Durable once the store commits (its change log tells a restart what to drop);
        the in-memory dense index tombstones the chunks at once."""
        collection = self._store.get_collection(name)
        removed = self._delete(collection, document_ids, missing_ok=False)
        return DeletedDocuments(sorted(set(document_ids)), len(removed))

    def _delete(self, collection: Collection, document_ids: Sequence[int], *, missing_ok: bool) -> list[int]:
        """Delete documents from the store, then the indexes; returns the removed chunk ids."""
        # The dense index loaded first, so the delete is followed in memory at once; the lexical
        # one catches up from the change log when `save` asks (see CollectionWriter.open_index).
        self._dense.load(collection)
        removed, stamp = self._store.delete_documents(collection.id, document_ids, missing_ok=missing_ok)
        change = ChunkChange(removed, [], stamp)
        self._dense.apply(collection, change)
        self._lexical.apply(collection, change)
        self._lexical.save(collection)
        return removed

    def delete_documents_by_source(self, name: str, *, source: str | None = None,
                                   source_prefix: str | None = None) -> DeletedDocuments:
        """Delete the document at `source`, or every document whose source starts with
        `source_prefix`; exactly one of the two, not empty (deleting a whole collection is
        `delete_collection`). Deleting nothing is not an error: the result lists no ids."""
        if (source is None) == (source_prefix is None):
            raise InvalidInput("give either source (one document) or source_prefix (a folder of them)",
                               param="source")
        if not (source or source_prefix):
            raise InvalidInput("source and source_prefix must not be empty", param="source" if source is not None
                               else "source_prefix")
        collection = self._store.get_collection(name)
        ids = self._store.document_ids(collection.id, source=source, source_prefix=source_prefix)
        if not ids:
            return DeletedDocuments([], 0)
        # missing_ok: a document deleted by someone else meanwhile is gone either way.
        return DeletedDocuments(ids, len(self._delete(collection, ids, missing_ok=True)))

    def writer(self, collection: Collection) -> CollectionWriter:
        """The one way to write documents into a collection (the ingest pipeline and the upload
        worker both take one)."""
        return CollectionWriter(self._store, self._dense, self._lexical, collection, self.embedder_for(collection),
                                embed_concurrency=self.settings.embed_concurrency, limits=self._limits)

    def check_document(self, name: str, text: str) -> None:
        """Refuse a document longer than RAG_MAX_DOCUMENT_TOKENS (`PayloadTooLarge`), before it is
        queued: an upload hears at once, not from a failed document later."""
        self._limits.check_document(name, text)

    # -- moving data -------------------------------------------------------------------------------

    def copy_to(self, database_url: str, names: Sequence[str] | None = None, *, check_queries: int = 100
                ) -> list[CopyReport]:
        """Copy collections (all, or `names`) into another database without re-embedding, verify
        each by counts, checksums and the exact dense top 10 of `check_queries` sampled queries,
        report the hybrid overlap@10 of the same queries, and build the target's indexes
        (PostgreSQL's HNSW at once; SQLite's on first use)."""
        from rag.transfer import SearchSide, copy_collection, exact_top10_agreement, hybrid_overlap

        wanted = [self._store.get_collection(n) for n in names] if names else self._store.list_collections()
        target = Store(database_url)
        # A SQLite target's own indexes are built by whoever opens it next, beside its file; the
        # hybrid comparison searches through throwaway ones made here.
        scratch = tempfile.TemporaryDirectory(prefix="rag-migrate-")
        target_dense = None
        try:
            target_dense, target_lexical = search_indexes(target, self.settings, Path(scratch.name), background=False)
            reports = []
            for collection in wanted:
                copied = copy_collection(self._store, target, collection)
                target_dense.load(target.get_collection(copied.name))  # PostgreSQL: builds the HNSW index
                same, asked = exact_top10_agreement(self._store, target, copied.name, queries=check_queries)
                overlap = hybrid_overlap(SearchSide(self._store, self._dense, self._lexical),
                                         SearchSide(target, target_dense, target_lexical), copied.name,
                                         queries=check_queries)
                reports.append(CopyReport(copied, same, asked, overlap))
            return reports
        finally:
            if target_dense is not None:
                target_dense.close()
            target.close()
            scratch.cleanup()

    # -- the ingest worker's liveness --------------------------------------------------------------

    def claim_orphaned(self, worker_id: str, *, stale_after_s: float) -> list[tuple[Collection, Document]]:
        """Record the worker alive and take over the queued uploads of workers silent for
        `stale_after_s`: each (collection, document with its stored text), now queued under
        `worker_id`. The stored text is what was uploaded when the document's `content_hash` is that
        text's hash; otherwise (a replacement: the old text stays until the new one lands) the
        caller cannot finish it and fails it."""
        self._workers.heartbeat(worker_id)
        claimed = []
        for document_id in self._workers.claim_orphaned(worker_id, stale_after_s):
            document = self._store.get_document_by_id(document_id)
            if document is not None:
                claimed.append((self._store.get_collection_by_id(document.collection_id), document))
        return claimed

    def fail_document(self, document_id: int, error: str) -> None:
        """Record why a queued document could not be ingested (a claimed upload this server cannot
        finish); a re-upload's previous version stays ready (`Store.fail_document`)."""
        self._store.fail_document(document_id, error)

    def retire_worker(self, worker_id: str) -> None:
        self._workers.retire_worker(worker_id)

    # -- search and answers ----------------------------------------------------------------------

    def search(self, collection: str | Collection, query: str, *, k: int = 10, mode: str = DEFAULT_MODE,
               filter: dict | None = None, min_score: float | None = None) -> list[Hit]:
        self._limits.check_query(query, "query")
        self._limits.check_filter(filter)
        return self._retriever.search(collection, query, k=k, mode=mode, filter=filter, min_score=min_score)

    def best_chunk_per_document(self, collection: str | Collection, query: str, *, documents: int = 100,
                                mode: str = DEFAULT_MODE) -> list[Hit]:
        """Documents ranked by their best chunk (what document-level evaluation scores)."""
        if isinstance(collection, str):
            collection = self._store.get_collection(collection)
        return best_chunk_per_document(self._retriever, collection, query, documents=documents, mode=mode)

    def resolve_model(self, model: str | None) -> str:
        """The answering model a request gets: its own, else the chat model with a key, else extractive."""
        return self._asker.resolve_model(model)

    def answer(self, collection: str | Collection, question: str | None = None, **options: Any) -> Answer:
        """The answer to `question`, or to the last user turn of `messages=[...]` (OpenAI's shape)
        read with the turns before it; options: k, mode, filter, min_score, model, temperature, max_tokens."""
        self._check_question(question, options)
        return self._asker.answer(collection, question, **options)

    def stream(self, collection: str | Collection, question: str | None = None,
               **options: Any) -> Iterator[AnswerEvent]:
        """Answer events, asked as `answer` is; input and upstream errors raise before the first event."""
        self._check_question(question, options)
        return self._asker.stream(collection, question, **options)

    def _check_question(self, question: str | None, options: dict[str, Any]) -> None:
        """The limits on what an ask reads: the question, or the conversation's length and each of
        its user turns (assistant turns are the service's own answers), and the filter."""
        messages = options.get("messages")
        if isinstance(messages, list):
            if len(messages) > self.settings.max_messages:
                raise LimitExceeded(f"messages has {len(messages):,} messages; the limit is "
                                    f"{self.settings.max_messages:,} per conversation (RAG_MAX_MESSAGES)",
                                    param="messages")
            for i, message in enumerate(messages):
                if isinstance(message, dict) and message.get("role") == "user":
                    self._limits.check_query(message.get("content"), f"messages[{i}].content")
        self._limits.check_query(question, "question")
        self._limits.check_filter(options.get("filter"))

    # -- embeddings ------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], *, kind: str = "local") -> Embedded:
        """Vectors for texts, each truncated to what the model reads (as a query would be)."""
        embedder = self.embedder(kind)
        vectors = embedder.embed(texts, truncate=True)
        tokens = sum(min(n, embedder.max_input_tokens) for n in embedder.count_tokens(texts))
        return Embedded(vectors, tokens, embedder.model_id)

    def similarity(self, pairs: Sequence[tuple[str, str]], *, kind: str = "local") -> list[float]:
        """Cosine similarity of each pair of texts."""
        if not pairs:
            return []
        embedder = self.embedder(kind)
        a = embedder.embed([p[0] for p in pairs], truncate=True)
        b = embedder.embed([p[1] for p in pairs], truncate=True)
        return [float(s) for s in np.einsum("ij,ij->i", a, b)]

"""The source of truth: collections, documents, chunks and their vectors in SQLite or PostgreSQL
(SQLAlchemy 2 Core and ORM, one code path; the few dialect-specific statements are marked).

SQLite: WAL lets readers (the API) run while one writer (an ingest) commits. Writes begin IMMEDIATE, so a
writer waits for the lock up front (busy timeout) instead of failing with "database is locked"
when it tries to upgrade a read transaction. Every change to a collection's chunks bumps its
`change_number` in the same transaction; derived indexes are stamped with it.

PostgreSQL (a `postgresql+psycopg://` URL): writes run one at a time too, behind a transaction-level
advisory lock taken first, so every write reads what the one before it committed exactly as under
SQLite's `BEGIN IMMEDIATE` (two servers queuing the same source cannot both insert it); reads run
at READ COMMITTED beside them.

The repository only: the records it takes and returns are in `rag.records`, the tables it maps in
`rag.schema`, and the search indexes over its chunks in `rag.indexes`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Select,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from rag.embeddings.base import EmbedderSpec
from rag.errors import (
    CollectionExists,
    CollectionNotFound,
    ConfigError,
    DocumentNotFound,
    InvalidInput,
)
from rag.migrations import migrate
from rag.records import (
    STATUSES,
    ChunkChange,
    ChunkDraft,
    ChunkText,
    Collection,
    Document,
    DocumentDraft,
    Replaced,
    StoredChunk,
    VectorScan,
    heading_excerpt,
)
from rag.schema import ChunkChangeRow, ChunkRow, CollectionRow, DocumentMetadataRow, DocumentRow
from rag.sqlite_ids import SqliteIdReader

__all__ = ["FAILED_OR_KEPT_SQL", "Store"]

FAILED_OR_KEPT_SQL = ("status = CASE WHEN EXISTS (SELECT 1 FROM chunks WHERE chunks.document_id = documents.id) "
                   "THEN 'ready' ELSE 'failed' END, "
                   "content_hash = CASE WHEN EXISTS (SELECT 1 FROM chunks WHERE chunks.document_id = documents.id) "
                   "THEN '' ELSE content_hash END")
"""SQL: a document whose ingest failed keeps its previous version ready if it has one. That version
keeps no hash: the failed upload's hash was put on it when it was queued, and sending the same
upload again must not be taken for unchanged."""

_SLICE = 10_000
"""Values bound in one IN list: below SQLite's bound-parameter limit."""


def _slices(values: Sequence) -> Iterator[Sequence]:
    for start in range(0, len(values), _SLICE):
        yield values[start:start + _SLICE]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _collection(row: CollectionRow, documents: int = 0, chunks: int = 0) -> Collection:
    return Collection(
        id=row.id, name=row.name,
        embedder=EmbedderSpec(row.embedder_kind, row.embedder_model, row.dim),
        chunk_size=row.chunk_size, chunk_overlap=row.chunk_overlap,
        change_number=row.change_number, created_at=row.created_at,
        documents=documents, chunks=chunks,
    )


def _document(row: DocumentRow, chunks: int = 0, with_text: bool = False) -> Document:
    return Document(
        id=row.id, collection_id=row.collection_id, source=row.source, content_hash=row.content_hash,
        title=row.title, status=row.status, error=row.error, metadata=json.loads(row.metadata_json),
        created_at=row.created_at, updated_at=row.updated_at, chunks=chunks,
        text=row.text if with_text else None,
    )


WRITE_LOCK = 7406002
"""PostgreSQL advisory lock key every write transaction takes first (one writer at a time)."""


class Store:
    """One database, SQLite or PostgreSQL. Safe to share between threads; each call opens its own
    session. `location` is a SQLite file's path, or a SQLAlchemy URL (`sqlite:///…`,
    `postgresql+psycopg://…`)."""

    def __init__(self, location: Path | str):
        url = str(location) if isinstance(location, str) and "://" in location else None
        if url is not None and url.startswith(("postgres://", "postgresql://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, the driver this needs
        if url is not None and not url.startswith(("sqlite:///", "postgresql")):
            raise ConfigError(f"a database URL must start with sqlite:/// or postgresql+psycopg://, "
                              f"got {url.split('://', 1)[0]}://")
        self.dialect = "postgresql" if url is not None and url.startswith("postgresql") else "sqlite"
        self._filter_ids: SqliteIdReader | None = None
        """SQLite's reader of the chunk ids a metadata filter selects (`rag.sqlite_ids`)."""
        if self.dialect == "postgresql":
            self.path: Path | None = None
            try:
                self.engine = create_engine(url, pool_pre_ping=True)  # type: ignore[arg-type]
            except ModuleNotFoundError as e:
                raise ConfigError("a postgresql URL needs the psycopg driver: pip install 'rag-service[postgres]'"
                                  f" ({e})") from None
        else:
            path = Path(url.removeprefix("sqlite:///") if url else location)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.path = path
            self._filter_ids = SqliteIdReader(path)
            self.engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30.0})
            event.listen(self.engine, "connect", _on_connect)
            event.listen(self.engine, "begin", _on_begin)
        try:
            with self.write() as session:
                self.schema_version = migrate(session.connection())
        except OperationalError as e:
            self.engine.dispose()
            raise ConfigError(f"cannot open the database: {_first_line(e)}") from None

    @property
    def on_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def close(self) -> None:
        if self._filter_ids is not None:
            self._filter_ids.close()
        self.engine.dispose()

    def size_bytes(self) -> int:
        """PostgreSQL: the database's size on the server (SQLite's is its file's)."""
        with self.read() as s:
            return int(s.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _driver_cursor(self) -> Iterator[Any]:
        """A DB-API cursor on a pooled connection, for the one-statement reads every search makes.
        There SQLAlchemy's session, statement compilation and result rows cost several times the
        query (at 1M chunks: reading 10 hits 0.63 ms through a session, 0.14 ms here). SQLite's
        connections are in autocommit (`_on_connect`), so a statement is its own read transaction;
        PostgreSQL's is rolled back when the pool takes the connection back. Parameters are in the
        driver's style: `self._param`."""
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
        finally:
            conn.close()

    @property
    def _param(self) -> str:
        """The driver's placeholder for one bound value (psycopg's, or sqlite3's)."""
        return "%s" if self.on_postgres else "?"

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
            with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                if self.on_postgres:  # dialect: PostgreSQL's stand-in for BEGIN IMMEDIATE
                    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK})
                yield session

    @contextmanager
    def _into(self, collection_id: int) -> Iterator[None]:
        """A write into a collection that another process may delete meanwhile: the foreign key
        refuses the rows, and the caller hears that the collection is gone, not an IntegrityError."""
        try:
            yield
        except IntegrityError as e:
            if "FOREIGN KEY" not in str(e):
                raise
            with self.read() as s:
                if s.get(CollectionRow, collection_id) is not None:
                    raise
            raise CollectionNotFound("the collection was deleted while documents were being written into it; "
                                     "nothing more was written") from None

    # -- collections -------------------------------------------------------------------------

    def create_collection(self, name: str, embedder: EmbedderSpec, chunk_size: int, chunk_overlap: int) -> Collection:
        if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
            raise InvalidInput("collection name must be 1-100 letters, digits, '-', '_' or '.'", param="name")
        if chunk_size < 16 or not 0 <= chunk_overlap < chunk_size:
            raise InvalidInput("chunk_size must be at least 16 and overlap between 0 and chunk_size - 1",
                               param="chunk_size")
        try:
            with self.write() as s:
                row = CollectionRow(
                    name=name, embedder_kind=embedder.kind, embedder_model=embedder.model_id,
                    dim=embedder.dim, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                    change_number=0, created_at=_now(),
                )
                s.add(row)
                s.flush()
                return _collection(row)
        except IntegrityError:
            raise CollectionExists(f"collection {name!r} already exists") from None

    def get_collection(self, name: str, *, counts: bool = False) -> Collection:
        with self.read() as s:
            row = s.scalar(select(CollectionRow).where(CollectionRow.name == name))
            if row is None:
                raise CollectionNotFound(f"no collection named {name!r}")
            if not counts:
                return _collection(row)
            docs = s.scalar(select(func.count()).select_from(DocumentRow).where(DocumentRow.collection_id == row.id))
            chunks = s.scalar(select(func.count()).select_from(ChunkRow).where(ChunkRow.collection_id == row.id))
            return _collection(row, docs or 0, chunks or 0)

    def list_collections(self) -> list[Collection]:
        with self.read() as s:
            docs = dict(s.execute(select(DocumentRow.collection_id, func.count())
                                  .group_by(DocumentRow.collection_id)).all())
            chunks = dict(s.execute(select(ChunkRow.collection_id, func.count())
                                    .group_by(ChunkRow.collection_id)).all())
            rows = s.scalars(select(CollectionRow).order_by(CollectionRow.name)).all()
            return [_collection(r, docs.get(r.id, 0), chunks.get(r.id, 0)) for r in rows]

    def delete_collection(self, name: str) -> Collection:
        with self.write() as s:
            row = s.scalar(select(CollectionRow).where(CollectionRow.name == name))
            if row is None:
                raise CollectionNotFound(f"no collection named {name!r}")
            gone = _collection(row)
            # Chunks, documents (their metadata rows follow by cascade), then the collection.
            s.execute(delete(ChunkRow).where(ChunkRow.collection_id == row.id))
            s.execute(delete(DocumentRow).where(DocumentRow.collection_id == row.id))
            s.execute(delete(CollectionRow).where(CollectionRow.id == row.id))
            return gone

    def change_number(self, collection_id: int) -> int:
        """The collection's change number (read before every search, by each index: a driver read)."""
        with self._driver_cursor() as cur:
            cur.execute(f"SELECT change_number FROM collections WHERE id = {self._param}", (int(collection_id),))
            row = cur.fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {collection_id} no longer exists")
        return int(row[0])

    # -- documents ---------------------------------------------------------------------------

    def document_hashes(self, collection_id: int, sources: Iterable[str]) -> dict[str, tuple[int, str, str]]:
        """source -> (document id, content hash, status) for those of `sources` the collection holds.

        Costs what the batch asks, not what the collection holds: each source is one probe of the
        `UNIQUE (collection_id, source)` index (in slices below SQLite's bound-parameter limit)."""
        wanted = sorted(set(sources))
        found: dict[str, tuple[int, str, str]] = {}
        with self.read() as s:
            for start in range(0, len(wanted), _SLICE):
                rows = s.execute(
                    select(DocumentRow.source, DocumentRow.id, DocumentRow.content_hash, DocumentRow.status)
                    .where(DocumentRow.collection_id == collection_id,
                           DocumentRow.source.in_(wanted[start:start + _SLICE])))
                found.update((src, (i, h, st)) for src, i, h, st in rows)
        return found

    def document_hashes_under(self, collection_id: int, prefixes: Iterable[str]) -> dict[str, tuple[int, str, str]]:
        """Like `document_hashes`, for every document whose source starts with one of `prefixes`
        (what a prune of the folders an ingest walked must consider): one range of the unique
        index per prefix, so the rest of the collection is never read."""
        found: dict[str, tuple[int, str, str]] = {}
        with self.read() as s:
            for prefix in sorted(set(prefixes)):
                q = select(DocumentRow.source, DocumentRow.id, DocumentRow.content_hash, DocumentRow.status
                           ).where(DocumentRow.collection_id == collection_id, DocumentRow.source >= prefix)
                if prefix and ord(prefix[-1]) < sys.maxunicode:
                    # Sources sort as UTF-8 bytes, as Python strings sort by code point: the range
                    # [prefix, prefix with its last character incremented) is exactly the prefix.
                    q = q.where(DocumentRow.source < prefix[:-1] + chr(ord(prefix[-1]) + 1))
                found.update((src, (i, h, st)) for src, i, h, st in s.execute(q) if src.startswith(prefix))
        return found

    def put_document(
        self,
        collection_id: int,
        *,
        source: str,
        content_hash: str,
        title: str | None,
        text_: str,
        metadata: dict,
        chunks: Sequence[ChunkDraft],
        vectors: np.ndarray,
        dim: int,
        expect_id: int | None = None,
    ) -> Replaced:
        """Insert or replace the document at `source` with its chunks, in one transaction.

        With `expect_id` (a document the API queued), the row must still be there under that id:
        a document deleted while it waited raises `DocumentNotFound` instead of coming back.
        """
        draft = DocumentDraft(source=source, content_hash=content_hash, title=title, text=text_, metadata=metadata,
                              chunks=chunks, vectors=vectors, expect_id=expect_id)
        return self.put_documents(collection_id, [draft], dim=dim)[0]

    def put_documents(self, collection_id: int, drafts: Sequence[DocumentDraft], *, dim: int) -> list[Replaced]:
        """Insert or replace several documents with their chunks in one transaction: the batch is
        committed whole or not at all, so each document is too. Each document gets its own change
        number, in order, so a derived index follows them one by one.

        One statement per kind of row for the whole batch (the per-document cost of an ingest is
        then the rows themselves, not a transaction and a dozen statements each). Sources must be
        distinct within a batch. A draft with `expect_id` (a document the API queued) must still be
        there under that id: if it was deleted while it waited, `DocumentNotFound` is raised and
        nothing of the batch is written.
        """
        sources = [d.source for d in drafts]
        if len(set(sources)) != len(sources):
            raise ValueError("a batch of documents names one source twice")
        vectors = [np.ascontiguousarray(d.vectors, dtype=np.float32) for d in drafts]
        for d, v in zip(drafts, vectors, strict=True):
            if v.shape != (len(d.chunks), dim):
                raise ValueError(f"vectors of {d.source} have shape {v.shape}, expected {(len(d.chunks), dim)}")
        if not drafts:
            return []
        now = _now()
        with self._into(collection_id), self.write() as s:
            existing: dict[str, int] = {}
            for part in _slices(sources):
                existing.update(s.execute(select(DocumentRow.source, DocumentRow.id).where(
                    DocumentRow.collection_id == collection_id, DocumentRow.source.in_(part))).all())
            for d in drafts:
                if d.expect_id is not None and existing.get(d.source) != d.expect_id:
                    raise DocumentNotFound(f"document {d.expect_id} was deleted before it was ingested")

            removed: dict[int, list[int]] = {doc_id: [] for doc_id in existing.values()}
            for part in _slices(sorted(removed)):
                for doc_id, chunk_id in s.execute(select(ChunkRow.document_id, ChunkRow.id)
                                                  .where(ChunkRow.document_id.in_(part)).order_by(ChunkRow.id)):
                    removed[doc_id].append(chunk_id)
                s.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(part)))

            def fields(d: DocumentDraft) -> dict:
                return {"content_hash": d.content_hash, "title": heading_excerpt(d.title), "text": d.text,
                        "status": "ready",
                        "owner": None, "error": None, "updated_at": now,
                        "metadata_json": json.dumps(d.metadata, ensure_ascii=False, default=str)}

            replaced = [{"id": existing[d.source], **fields(d)} for d in drafts if d.source in existing]
            if replaced:  # bulk UPDATE by primary key
                s.execute(update(DocumentRow), replaced)
            new = [{"collection_id": collection_id, "source": d.source, "created_at": now, **fields(d)}
                   for d in drafts if d.source not in existing]
            if new:
                # RETURNING with the parameters' order kept hands back the new ids in one round trip.
                ids = s.scalars(insert(DocumentRow).returning(DocumentRow.id, sort_by_parameter_order=True), new)
                existing.update(zip([row["source"] for row in new], ids, strict=True))
            for d in drafts:  # the metadata index (migration 0004) follows each document's metadata
                _index_metadata(s, collection_id, existing[d.source],
                                json.dumps(d.metadata, ensure_ascii=False, default=str), replace=True)

            rows = [
                {"document_id": existing[d.source], "collection_id": collection_id, "ordinal": i, "text": c.text,
                 "token_count": c.token_count, "start_char": c.start_char, "end_char": c.end_char,
                 "page": c.page, "section": heading_excerpt(c.section), "vector": v[i].tobytes()}
                for d, v in zip(drafts, vectors, strict=True) for i, c in enumerate(d.chunks)
            ]
            chunk_ids = list(s.scalars(insert(ChunkRow).returning(ChunkRow.id, sort_by_parameter_order=True),
                                       rows)) if rows else []
            added, at = [], 0
            for d in drafts:
                added.append(chunk_ids[at:at + len(d.chunks)])
                at += len(d.chunks)
            numbers = self._bump_many(s, collection_id, [(removed.get(existing[d.source], []), a)
                                                         for d, a in zip(drafts, added, strict=True)])
            return [Replaced(removed_chunk_ids=removed.get(existing[d.source], []), added_chunk_ids=a,
                             change_number=n, document_id=existing[d.source])
                    for d, a, n in zip(drafts, added, numbers, strict=True)]

    def queue_document(self, collection_id: int, *, source: str, content_hash: str, title: str | None,
                       text_: str, metadata: dict, owner: str | None = None) -> int:
        """Record a document accepted for ingestion (status `queued`). A document already stored
        at `source` keeps its chunks searchable until its replacement is committed."""
        now = _now()
        with self._into(collection_id), self.write() as s:
            doc = s.scalar(select(DocumentRow).where(
                DocumentRow.collection_id == collection_id, DocumentRow.source == source))
            if doc is None:
                doc = DocumentRow(collection_id=collection_id, source=source, created_at=now,
                                  content_hash=content_hash, title=heading_excerpt(title), text=text_,
                                  metadata_json=json.dumps(metadata, ensure_ascii=False, default=str))
                s.add(doc)
                new = True
            else:
                new = False  # it keeps its metadata (and its chunks) until the replacement lands
                # ... but takes the replacement's hash: the stored text is no longer what was asked
                # for, so a server finishing the upload of a stopped one can tell (`Service.claim_orphaned`).
                doc.content_hash = content_hash
            doc.status = "queued"
            doc.error = None
            doc.owner = owner
            doc.updated_at = now
            s.flush()
            if new:
                _index_metadata(s, collection_id, doc.id, doc.metadata_json, replace=False)
            return doc.id

    def set_status(self, document_id: int, status: str, error: str | None = None) -> bool:
        """Set a document's status; False if the document no longer exists."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self.write() as s:
            result: CursorResult = s.execute(  # type: ignore[assignment]  # an UPDATE gives a cursor result
                update(DocumentRow).where(DocumentRow.id == document_id)
                .values(status=status, error=error, updated_at=_now(),
                        owner=DocumentRow.owner if status in ("queued", "processing") else None))
            return result.rowcount > 0

    def fail_document(self, document_id: int, error: str) -> bool:
        """Record that ingesting a queued document failed. A document that had a version already
        (it has chunks: a re-upload) keeps it ready and searchable and only notes the error, as a
        failed re-ingest from the command line does; a new one becomes `failed`. False if the
        document no longer exists."""
        with self.write() as s:
            result: CursorResult = s.execute(text(  # type: ignore[assignment]  # an UPDATE gives a cursor result
                f"UPDATE documents SET {FAILED_OR_KEPT_SQL}, error = :e, owner = NULL, updated_at = :t WHERE id = :d"),
                {"e": error, "t": _now(), "d": document_id})
            return result.rowcount > 0

    def put_failed_document(self, collection_id: int, *, source: str, content_hash: str, error: str) -> int:
        """Record a document that could not be ingested. A failed re-ingest of a document that was
        ingested before keeps its last good version searchable and only notes the error; a new
        document is stored as `failed`, with no chunks."""
        now = _now()
        with self._into(collection_id), self.write() as s:
            existing = s.scalar(select(DocumentRow).where(
                DocumentRow.collection_id == collection_id, DocumentRow.source == source))
            if existing is not None:
                existing.error = error
                existing.updated_at = now
                if existing.status != "ready":
                    existing.status = "failed"
                return existing.id
            doc = DocumentRow(collection_id=collection_id, source=source, content_hash=content_hash,
                              title=None, text="", status="failed", error=error, metadata_json="{}",
                              created_at=now, updated_at=now)
            s.add(doc)
            s.flush()
            return doc.id

    def delete_documents(self, collection_id: int, document_ids: Sequence[int], *, missing_ok: bool = False
                         ) -> tuple[list[int], int]:
        """Delete documents and their chunks; returns (removed chunk ids, new change number).
        An id that is not there raises `DocumentNotFound` and deletes nothing, unless `missing_ok`."""
        ids = sorted(set(document_ids))
        with self.write() as s:
            found = set(s.scalars(select(DocumentRow.id).where(
                DocumentRow.collection_id == collection_id, DocumentRow.id.in_(ids))))
            missing = [i for i in ids if i not in found]
            if missing and not missing_ok:
                raise DocumentNotFound(f"no document with id {', '.join(map(str, missing))} in this collection")
            ids = sorted(found)
            removed = list(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(ids))))
            s.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(ids)))
            s.execute(delete(DocumentRow).where(DocumentRow.id.in_(ids)))
            change = self._bump(s, collection_id, removed=removed) if removed else self._change(s, collection_id)
            return removed, change

    def document_ids(self, collection_id: int, *, source: str | None = None, source_prefix: str | None = None
                     ) -> list[int]:
        """Ids of the documents at `source`, or whose source starts with `source_prefix`."""
        with self.read() as s:
            q = _by_source(select(DocumentRow.id).where(DocumentRow.collection_id == collection_id),
                           source, source_prefix)
            return list(s.scalars(q.order_by(DocumentRow.id)))

    def get_document(self, collection_id: int, document_id: int, *, with_text: bool = True) -> Document:
        with self.read() as s:
            row = s.scalar(select(DocumentRow).where(
                DocumentRow.collection_id == collection_id, DocumentRow.id == document_id))
            if row is None:
                raise DocumentNotFound(f"no document with id {document_id} in this collection")
            n = s.scalar(select(func.count()).select_from(ChunkRow).where(ChunkRow.document_id == row.id))
            return _document(row, n or 0, with_text)

    def get_document_by_id(self, document_id: int) -> Document | None:
        """A document with its text, whatever its collection (None when it is gone)."""
        with self.read() as s:
            row = s.get(DocumentRow, document_id)
            return None if row is None else _document(row, 0, with_text=True)

    def get_collection_by_id(self, collection_id: int) -> Collection:
        with self.read() as s:
            row = s.get(CollectionRow, collection_id)
            if row is None:
                raise CollectionNotFound(f"collection {collection_id} no longer exists")
            return _collection(row)

    def list_documents(self, collection_id: int, *, limit: int = 100, after: int | None = None,
                       source: str | None = None, source_prefix: str | None = None) -> list[Document]:
        """Documents in id order, `limit` of them after id `after` (keyset pagination); with
        `source`, only the one at that source; with `source_prefix`, those whose source starts
        with it."""
        with self.read() as s:
            q = _by_source(select(DocumentRow).where(DocumentRow.collection_id == collection_id),
                           source, source_prefix)
            if after is not None:
                q = q.where(DocumentRow.id > after)
            rows = s.scalars(q.order_by(DocumentRow.id).limit(limit)).all()
            counts = dict(s.execute(
                select(ChunkRow.document_id, func.count())
                .where(ChunkRow.document_id.in_([r.id for r in rows]))
                .group_by(ChunkRow.document_id)).all())
            return [_document(r, counts.get(r.id, 0)) for r in rows]

    # -- chunks and vectors ------------------------------------------------------------------

    def vectors(self, collection_id: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(ids int64, vectors float32 (n, dim), change number) read in one consistent snapshot."""
        with self.read() as s:
            change = self._change(s, collection_id)
            dim = s.scalar(select(CollectionRow.dim).where(CollectionRow.id == collection_id))
            rows = s.execute(select(ChunkRow.id, ChunkRow.vector)
                             .where(ChunkRow.collection_id == collection_id)
                             .order_by(ChunkRow.id)).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim or 0)
        return ids, matrix, change

    def scan_vectors(self, collection_id: int, *, batch: int = 8192) -> VectorScan:
        """The collection's (ids, vectors) in id order, `batch` rows at a time, each batch read in
        its own short transaction: only one batch is in memory at a time (a rebuild at a million
        chunks must not hold every vector twice), and a slow consumer (an HNSW build) holds no
        snapshot open for minutes. Every chunk committed by change `scan.stamp` and still there is
        read; later changes may be read too, so replaying the log from `scan.stamp` with
        idempotent adds and removes makes the result exact."""
        with self.read() as s:
            stamp = self._change(s, collection_id)
            dim = s.scalar(select(CollectionRow.dim).where(CollectionRow.id == collection_id)) or 0
            count = s.scalar(select(func.count()).select_from(ChunkRow)
                             .where(ChunkRow.collection_id == collection_id)) or 0

        def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            after = 0
            while True:
                with self.read() as s:
                    rows = s.execute(select(ChunkRow.id, ChunkRow.vector)
                                     .where(ChunkRow.collection_id == collection_id, ChunkRow.id > after)
                                     .order_by(ChunkRow.id).limit(batch)).all()
                if not rows:
                    return
                after = rows[-1][0]
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                yield ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)

        return VectorScan(stamp=stamp, count=count, batches=batches())

    def vectors_of(self, *, collection_id: int, chunk_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of those chunks of the collection that still exist, in id order."""
        ids = sorted(int(i) for i in chunk_ids)
        found: list = []
        with self.read() as s:
            dim = s.scalar(select(CollectionRow.dim).where(CollectionRow.id == collection_id)) or 0
            for start in range(0, len(ids), 10_000):  # below SQLite's bound-parameter limit
                found += s.execute(select(ChunkRow.id, ChunkRow.vector)
                                   .where(ChunkRow.collection_id == collection_id,
                                          ChunkRow.id.in_(ids[start:start + 10_000]))
                                   .order_by(ChunkRow.id)).all()
        out = np.fromiter((r[0] for r in found), dtype=np.int64, count=len(found))
        return out, np.frombuffer(b"".join(r[1] for r in found), dtype=np.float32).reshape(len(found), dim)

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, StoredChunk]:
        """Chunks with their document's source, title and metadata, by id."""
        ids = [int(i) for i in chunk_ids]
        if not ids:
            return {}
        # A driver read: every search reads its hits here (see `_driver_cursor`).
        columns = ("SELECT c.id, c.document_id, c.text, c.token_count, c.start_char, c.end_char, c.page, "
                   "c.section, d.source, d.title, d.metadata FROM chunks c JOIN documents d ON d.id = c.document_id")
        rows: list = []
        with self._driver_cursor() as cur:
            for part in _slices(ids):
                if self.on_postgres:  # dialect: one array parameter
                    cur.execute(f"{columns} WHERE c.id = ANY(%s)", (list(part),))
                else:
                    cur.execute(f"{columns} WHERE c.id IN ({','.join('?' * len(part))})", tuple(part))
                rows += cur.fetchall()
        return {r[0]: StoredChunk(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                                  metadata=json.loads(r[10])) for r in rows}

    def chunk_texts(self, collection_id: int, chunk_ids: Sequence[int]) -> list[ChunkText]:
        """Text and document metadata of those chunks of the collection that still exist, in id
        order (what a lexical index replaying the change log adds)."""
        ids = sorted({int(i) for i in chunk_ids})
        rows: list = []
        with self.read() as s:
            for start in range(0, len(ids), _SLICE):
                rows += s.execute(select(ChunkRow.id, ChunkRow.document_id, ChunkRow.text)
                                  .where(ChunkRow.collection_id == collection_id,
                                         ChunkRow.id.in_(ids[start:start + _SLICE]))
                                  .order_by(ChunkRow.id)).all()
            return self._with_metadata(s, rows)

    def chunk_texts_after(self, collection_id: int, after: int, limit: int) -> list[ChunkText]:
        """The collection's next `limit` chunks with an id above `after`, in id order: a lexical
        index rebuilds by paging through these (each page its own short read)."""
        with self.read() as s:
            rows = s.execute(select(ChunkRow.id, ChunkRow.document_id, ChunkRow.text)
                             .where(ChunkRow.collection_id == collection_id, ChunkRow.id > after)
                             .order_by(ChunkRow.id).limit(limit)).all()
            return self._with_metadata(s, rows)

    @staticmethod
    def _with_metadata(s: Session, rows: Sequence) -> list[ChunkText]:
        """`ChunkText`s of (id, document id, text) rows, with their documents' metadata."""
        documents = sorted({r[1] for r in rows})
        metadata: dict[int, list[tuple[str, object]]] = {}
        for start in range(0, len(documents), _SLICE):
            for document_id, key, value in s.execute(
                    select(DocumentMetadataRow.document_id, DocumentMetadataRow.key,
                           type_coerce(DocumentMetadataRow.value, NullType()))  # as SQLite holds it, not bytes
                    .where(DocumentMetadataRow.document_id.in_(documents[start:start + _SLICE]))):
                metadata.setdefault(document_id, []).append((key, value))
        return [ChunkText(i, t, tuple(metadata.get(d, ()))) for i, d, t in rows]

    def filtered_chunk_ids(self, collection_id: int, filter_: dict[str, list]) -> np.ndarray:
        """Ids of the collection's chunks whose document metadata matches every filter key, in id
        order. Costs what it selects: each key is one range of the `document_metadata` key
        (documents ANDed across keys by INTERSECT), and the chunks of the documents found come
        from the `chunks_document` index; no chunk or document outside the result is read."""
        if not filter_:
            with self.engine.connect() as conn:
                return np.asarray(conn.execute(text("SELECT id FROM chunks WHERE collection_id = :cid ORDER BY id"),
                                               {"cid": collection_id}).scalars().all(), dtype=np.int64)
        sql, params = self.filter_documents_sql(collection_id, filter_)
        # SQLite's CROSS JOIN keeps the matching documents as the outer loop: its planner may otherwise
        # walk the whole collection's chunks and probe the (small) document list for each.
        join = "JOIN" if self.on_postgres else "CROSS JOIN"
        sql = f"SELECT c.id FROM ({sql}) AS m {join} chunks c ON c.document_id = m.document_id"
        if self._filter_ids is not None:  # dialect: SQLite, through a connection that caches the index
            ids = self._filter_ids.ids(sql, params)
        else:
            with self.engine.connect() as conn:
                ids = np.asarray(conn.execute(text(sql), params).scalars().all(), dtype=np.int64)
        # Documents come in id order, and so do their chunks, unless several values of a key
        # are asked for: sorting half a million ids that are in order already took 39 ms.
        if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):
            ids.sort(kind="stable")  # a radix sort for integers
        return ids

    def filter_documents_sql(self, collection_id: int, filter_: dict[str, list]) -> tuple[str, dict[str, object]]:
        """A SELECT of the `document_id`s of the collection matching a (validated, non-empty)
        metadata filter, with its bound parameters (`:cid`, `:k0`, `:v0_0`, ...): each key one range
        of the `document_metadata` key, keys ANDed by INTERSECT. Search in the database
        (`rag.indexes.pg`) nests it in its own queries."""
        params: dict[str, object] = {"cid": collection_id}
        selects = []
        for n, (key, values) in enumerate(filter_.items()):
            params[f"k{n}"] = key
            names = []
            for m, v in enumerate(values):
                if self.on_postgres:  # dialect: jsonb values, true as 1 (see rag.migrations_postgres)
                    params[f"v{n}_{m}"] = json.dumps(int(v) if isinstance(v, bool) else v)
                    names.append(f"CAST(:v{n}_{m} AS jsonb)")
                else:
                    params[f"v{n}_{m}"] = v
                    names.append(f":v{n}_{m}")
            selects.append(f"SELECT document_id FROM document_metadata "
                           f"WHERE collection_id = :cid AND key = :k{n} AND value IN ({', '.join(names)})")
        return " INTERSECT ".join(selects), params

    # -- change numbers ----------------------------------------------------------------------

    @staticmethod
    def _change(s: Session, collection_id: int) -> int:
        value = s.scalar(select(CollectionRow.change_number).where(CollectionRow.id == collection_id))
        if value is None:
            raise CollectionNotFound(f"collection {collection_id} no longer exists")
        return value

    @staticmethod
    def _bump(s: Session, collection_id: int, *, removed: Sequence[int] = (), added: Sequence[int] = ()) -> int:
        """Advance the change number and log which chunks this change removed and added, in the
        transaction that made the change."""
        return Store._bump_many(s, collection_id, [(removed, added)])[0]

    @staticmethod
    def _bump_many(s: Session, collection_id: int, changes: Sequence[tuple[Sequence[int], Sequence[int]]]
                   ) -> list[int]:
        """`_bump` for several changes in a row: one change number each, (removed, added) in order."""
        s.execute(update(CollectionRow).where(CollectionRow.id == collection_id)
                  .values(change_number=CollectionRow.change_number + len(changes)))
        last = Store._change(s, collection_id)
        numbers = list(range(last - len(changes) + 1, last + 1))
        if s.get_bind().dialect.name == "postgresql":
            # dialect: search runs in the database, so no index outside it replays a log; it starts
            # at the present change number (`changes_since` answers None: rebuild) and stays empty.
            s.execute(update(CollectionRow).where(CollectionRow.id == collection_id).values(changes_from=last))
            return numbers
        rows = [{"collection_id": collection_id, "change_number": n, "chunk_id": c, "added": is_added}
                for n, (removed, added) in zip(numbers, changes, strict=True)
                for ids, is_added in ((removed, False), (added, True)) for c in ids]
        if rows:
            s.execute(insert(ChunkChangeRow), rows)
        return numbers

    def changes_since(self, collection_id: int, stamp: int) -> list[ChunkChange] | None:
        """The changes after change number `stamp`, oldest first, or None when the log does not
        reach back that far (the caller rebuilds its index from the store instead)."""
        with self.read() as s:
            row = s.execute(select(CollectionRow.change_number, CollectionRow.changes_from)
                            .where(CollectionRow.id == collection_id)).one_or_none()
            if row is None:
                raise CollectionNotFound(f"collection {collection_id} no longer exists")
            current, first = row
            if stamp < first or stamp > current:
                return None
            logged = s.execute(select(ChunkChangeRow.change_number, ChunkChangeRow.chunk_id, ChunkChangeRow.added)
                               .where(ChunkChangeRow.collection_id == collection_id,
                                      ChunkChangeRow.change_number > stamp)
                               .order_by(ChunkChangeRow.change_number, ChunkChangeRow.chunk_id)).all()
        by_number: dict[int, tuple[list[int], list[int]]] = {n: ([], []) for n in range(stamp + 1, current + 1)}
        for number, chunk_id, added in logged:
            by_number[number][1 if added else 0].append(chunk_id)
        return [ChunkChange(removed_chunk_ids=r, added_chunk_ids=a, change_number=n)
                for n, (r, a) in by_number.items()]

    def forget_changes(self, collection_id: int, upto: int) -> None:
        """Drop the log up to change number `upto` (every index that matters is stamped later)."""
        with self.write() as s:
            s.execute(delete(ChunkChangeRow).where(ChunkChangeRow.collection_id == collection_id,
                                                   ChunkChangeRow.change_number <= upto))
            s.execute(update(CollectionRow).where(CollectionRow.id == collection_id,
                                                  CollectionRow.changes_from < upto)
                      .values(changes_from=upto))


def _by_source(q: Select, source: str | None, prefix: str | None) -> Select:
    """`q` narrowed to one source, or to the sources starting with `prefix`: a range of the
    `UNIQUE (collection_id, source)` index, so the rest of the collection is not read."""
    if source is not None:
        q = q.where(DocumentRow.source == source)
    if prefix:
        q = q.where(DocumentRow.source >= prefix)
        if ord(prefix[-1]) < sys.maxunicode:
            # Sources sort as UTF-8 bytes, as Python strings sort by code point: the range
            # [prefix, prefix with its last character incremented) is exactly the prefix.
            q = q.where(DocumentRow.source < prefix[:-1] + chr(ord(prefix[-1]) + 1))
        else:
            q = q.where(DocumentRow.source.startswith(prefix, autoescape=True))
    return q


def _index_metadata(s: Session, collection_id: int, document_id: int, metadata_json: str, *, replace: bool) -> None:
    """Write a document's metadata into `document_metadata` (see migration 0004), read by SQLite's
    own `json_each` so a value is stored with the type and text the JSON functions give it."""
    if replace:
        s.execute(text("DELETE FROM document_metadata WHERE document_id = :d"), {"d": document_id})
    if s.get_bind().dialect.name == "postgresql":  # dialect: jsonb_each, booleans as 0/1 as SQLite's
        s.execute(text(
            "INSERT INTO document_metadata (collection_id, key, value, document_id) "
            "SELECT :cid, j.key, CASE jsonb_typeof(j.value) WHEN 'boolean' THEN to_jsonb((j.value)::text::boolean::int)"
            " ELSE j.value END, :d "
            "FROM jsonb_each(CASE WHEN jsonb_typeof(CAST(:m AS jsonb)) = 'object' THEN CAST(:m AS jsonb)"
            " ELSE '{}'::jsonb END) j "
            # A btree key holds at most ~2.7 kB: a longer value (a big array or text) is not
            # indexed, so a filter cannot match it here (it would have to equal it whole).
            "WHERE jsonb_typeof(j.value) != 'null' AND octet_length(j.value::text) < 2000 ON CONFLICT DO NOTHING"),
            {"cid": collection_id, "d": document_id, "m": metadata_json})
        return
    s.execute(text(
        "INSERT OR IGNORE INTO document_metadata (collection_id, key, value, document_id) "
        "SELECT :cid, j.key, j.value, :d FROM json_each(:m) j WHERE j.type != 'null' AND json_type(:m) = 'object'"),
        {"cid": collection_id, "d": document_id, "m": metadata_json})


def _first_line(e: BaseException) -> str:
    return str(getattr(e, "orig", None) or e).strip().splitlines()[0]


def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own would always be DEFERRED).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL never corrupts on crash
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _on_begin(conn) -> None:  # noqa: ANN001
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")

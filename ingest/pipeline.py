"""Files in, searchable collection out: discover → hash → skip unchanged → parse → chunk → embed in
batches → commit each batch of documents in one transaction → update the indexes.

Embedding overlaps the rest: a batch is sent to the embedder as soon as it is chunked, up to
RAG_EMBED_CONCURRENCY calls in flight (`ingest.inflight`), while this thread goes on reading and
chunking and commits the batches that come back, in the order they were read.

Idempotent: a document is its source (resolved path, or `path#_id` for a JSON Lines record) plus
a content hash. Unchanged documents cost a hash; changed ones are replaced atomically; a crash
loses at most the documents not yet committed (a batch in flight), and the next run finishes the job.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingest.inflight import EmbeddedBatch, EmbeddingLine
from ingest.loaders import SUPPORTED_SUFFIXES, LoadedDocument, is_jsonl, load_file, read_jsonl_file
from ingest.parse_pool import ParserPool
from rag.errors import InvalidInput, RagError
from rag.records import ChunkDraft, DocumentDraft
from rag.writer import CollectionWriter, KnownDocument

EMBED_BATCH_CHUNKS = 256  # chunks gathered across documents before one embed call (and one commit)


@dataclass
class Failure:
    source: str
    reason: str


@dataclass
class IngestSummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)
    """Not failures: files no loader reads, empty files, and JSON Lines records that are empty or
    malformed (source `file#_id`, or the file when the record has no usable `_id`; the reason
    starts with `line N:`)."""
    chunks: int = 0
    tokens: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def documents(self) -> int:
        """Documents committed by this run (added or updated)."""
        return len(self.added) + len(self.updated)

    def to_dict(self) -> dict:
        return {
            "added": len(self.added), "updated": len(self.updated), "unchanged": len(self.unchanged),
            "removed": len(self.removed), "failed": [f.__dict__ for f in self.failed],
            "skipped": [f.__dict__ for f in self.skipped], "chunks": self.chunks, "tokens": self.tokens,
            "seconds": round(self.seconds, 3), "embed_seconds": round(self.embed_seconds, 3),
        }


@dataclass(frozen=True)
class Progress:
    """One step of progress, for a progress bar: counts so far and totals."""

    files_done: int
    files_total: int
    documents: int
    """Documents finished so far (added, updated or unchanged): a large JSON Lines file is one file."""
    chunks: int
    tokens: int
    records_done: int = 0
    """JSON Lines records finished (committed, unchanged, failed or skipped)."""
    records_total: int = 0
    """Records in the JSON Lines files read so far: a large file counts by its records."""


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped an ingest; `summary` holds what was committed by then (a rerun resumes:
    committed documents are unchanged and cost a hash)."""

    def __init__(self, summary: IngestSummary):
        super().__init__("interrupted")
        self.summary = summary


ProgressFn = Callable[[Progress], None]


# -- discovery -----------------------------------------------------------------------------------

def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def discover(paths: Sequence[str | Path], glob: str | None = None) -> tuple[list[Path], list[Failure], list[Path]]:
    """Files to ingest, files skipped as unsupported, and the resolved roots the run covers.

    Folders are walked recursively, hidden files and folders skipped; `glob` filters by file name
    or by path relative to its root. A file named explicitly is taken whatever `glob` says, and
    skipped like any other when no loader reads its type.
    """
    files: dict[Path, None] = {}
    skipped: list[Failure] = []
    roots: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise InvalidInput(f"{raw}: no such file or folder")
        path = path.resolve()
        roots.append(path)
        if path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append(Failure(str(path), f"unsupported file type {path.suffix or '(none)'}"))
            else:
                files[path] = None
            continue
        for candidate in sorted(path.rglob("*")):
            if not candidate.is_file() or _hidden(candidate, path):
                continue
            rel = candidate.relative_to(path).as_posix()
            if glob and not (fnmatch.fnmatch(candidate.name, glob) or fnmatch.fnmatch(rel, glob)):
                continue
            if candidate.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append(Failure(str(candidate), f"unsupported file type {candidate.suffix or '(none)'}"))
                continue
            # Sources are resolved paths: a link and its target are one document, seen once.
            files[candidate.resolve()] = None
    return list(files), skipped, roots


def is_blank(path: Path) -> bool:
    """Whether the file holds nothing but white space (an empty file is skipped, not failed)."""
    try:
        size = path.stat().st_size
        return size == 0 or (size <= 1 << 16 and not path.read_bytes().strip())
    except OSError:  # unreadable: the loader names why
        return False


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def document_hash(doc: LoadedDocument) -> str:
    """Hash of what a document contributes: its text, title and metadata."""
    payload = json.dumps([doc.title, doc.text, doc.metadata], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def is_unchanged(known: dict[str, KnownDocument], source: str, digest: str) -> bool:
    """Whether the store already holds this exact content at `source`, ingested successfully."""
    entry = known.get(source)
    return entry is not None and entry.content_hash == digest and entry.status == "ready"


def _under(source: str, roots: list[Path], glob: str | None) -> bool:
    path = Path(source.split("#", 1)[0])
    for root in roots:
        if path == root:
            return True
        if path.is_relative_to(root):
            rel = path.relative_to(root).as_posix()
            return not glob or fnmatch.fnmatch(path.name, glob) or fnmatch.fnmatch(rel, glob)
    return False


# -- the pipeline --------------------------------------------------------------------------------

@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it: a batch's commit and the summary that
    counts it happen together, so an interrupted run reports exactly what it committed. (Signals
    reach the main thread only; elsewhere, such as the upload worker, there is nothing to hold.)"""
    # Nothing to hold off the main thread, nor when SIGINT is ignored (a background job's): holding
    # would turn on, for the length of a commit, an interrupt the process was started without.
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) in (
            None, signal.SIG_IGN):
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            # Raised also when the block failed: a handled failure must not swallow the Ctrl-C.
            raise KeyboardInterrupt


@dataclass
class _Pending:
    doc: LoadedDocument
    content_hash: str
    chunks: list[ChunkDraft]
    is_update: bool
    is_record: bool = False
    """A JSON Lines record (counted in the progress by records)."""


@dataclass
class _Batch:
    """Documents gathered for one embedding call (and later one commit)."""

    documents: list[_Pending] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
    chunks: int = 0

    def add(self, pending: _Pending) -> None:
        self.documents.append(pending)
        self.sources.add(pending.doc.source)
        self.chunks += len(pending.chunks)


class Pipeline:
    """Ingests into one collection through its writer (`Service.writer`)."""

    def __init__(self, writer: CollectionWriter, *, on_progress: ProgressFn | None = None,
                 parser: ParserPool | None = None):
        """`parser` parses each file in a worker process within its limits; without one, files
        are parsed in this process, unbounded (for callers that made the files themselves)."""
        self.writer = writer
        self.parser = parser
        self.embedder = writer.embedder
        self.chunker = writer.chunker
        self.on_progress = on_progress
        self._files = (0, 0)  # (files done, files in this run), for progress reports
        self._records = [0, 0]  # (JSON Lines records done, records in the files read so far)
        self._expect_ids: dict[str, int] = {}

    # Public entry points ---------------------------------------------------------------------

    def ingest_paths(self, paths: Sequence[str | Path], *, glob: str | None = None,
                     prune: bool = False) -> IngestSummary:
        started = time.perf_counter()
        files, skipped, roots = discover(paths, glob)
        summary = IngestSummary(skipped=skipped)
        # Hashes of the files named here; a JSON Lines file's records are looked up once it is read.
        known = self.writer.known(str(path) for path in files if path.suffix.lower() != ".jsonl")
        seen: set[str] = set()
        failed_prefixes: list[str] = []
        self.writer.open_index()  # load or rebuild once, then follow our own commits

        self._files = (0, len(files))
        try:
            self._ingest_files(files, known, seen, failed_prefixes, summary)
        except KeyboardInterrupt:
            # What was committed stays (each batch is its own transaction); say how much.
            summary.seconds = time.perf_counter() - started
            raise IngestInterrupted(summary) from None

        if prune:
            keep = lambda s: s in seen or any(s == p or s.startswith(p + "#") for p in failed_prefixes)  # noqa: E731
            under = self.writer.known_under(str(root) for root in roots)
            doomed = {src: k.id for src, k in under.items() if not keep(src) and _under(src, roots, glob)}
            if doomed:
                self.writer.delete_documents(list(doomed.values()), missing_ok=True)
                summary.removed.extend(sorted(doomed))
        self.writer.save_index()
        summary.seconds = time.perf_counter() - started
        return summary

    def _ingest_files(self, files: list[Path], known: dict[str, KnownDocument], seen: set[str],
                      failed_prefixes: list[str], summary: IngestSummary) -> None:
        with self._line() as line:
            batch = _Batch()
            for n, path in enumerate(files, start=1):
                source = str(path)
                try:
                    if is_blank(path):
                        summary.skipped.append(Failure(source, "empty file"))
                        docs = []
                    else:
                        docs = self._load_if_changed(path, known, seen, summary)
                except RagError as e:
                    summary.failed.append(Failure(source, str(e)))
                    failed_prefixes.append(source)
                    if not is_jsonl(path):
                        self.writer.put_failed_document(source=source, content_hash="", error=str(e))
                    docs = []
                for doc, digest in docs:
                    try:
                        pending = self._prepare(doc, digest, known, is_record=is_jsonl(path))
                    except RagError as e:  # over a limit: this document fails, the run goes on
                        summary.failed.append(Failure(doc.source, str(e)))
                        self.writer.put_failed_document(source=doc.source, content_hash="", error=str(e))
                        continue
                    batch = self._add(line, batch, pending, summary, strict=False)
                self._files = (n, len(files))
                self._report(summary)
            self._send(line, batch, summary, strict=False)
            for done in line.drain():
                self._commit(done, summary, strict=False)

    def ingest_documents(self, docs: Iterable[LoadedDocument], *, expect_ids: dict[str, int] | None = None,
                         save: bool = True) -> IngestSummary:
        """Ingest documents already loaded (HTTP uploads, JSON bodies); all-or-nothing per document.

        `expect_ids` maps a source to the id the API queued it under (see `Store.put_document`);
        `save` writes the FAISS index at the end (a caller ingesting many in turn saves once).
        """
        self._expect_ids = expect_ids or {}
        started = time.perf_counter()
        summary = IngestSummary()
        docs = list(docs)
        known = self.writer.known(doc.source for doc in docs)
        self.writer.open_index()
        with self._line() as line:
            batch = _Batch()
            for doc in docs:
                digest = document_hash(doc)
                if is_unchanged(known, doc.source, digest):
                    summary.unchanged.append(doc.source)
                    continue
                batch = self._add(line, batch, self._prepare(doc, digest, known), summary, strict=True)
            self._send(line, batch, summary, strict=True)
            for done in line.drain():
                self._commit(done, summary, strict=True)
        if save:
            self.writer.save_index()
        summary.seconds = time.perf_counter() - started
        return summary

    # Steps -----------------------------------------------------------------------------------

    def _load_if_changed(self, path: Path, known: dict[str, KnownDocument], seen: set[str], summary: IngestSummary
                         ) -> list[tuple[LoadedDocument, str]]:
        source = str(path)
        if is_jsonl(path):
            # One file, many documents: each record is hashed and compared on its own, and a bad
            # record is skipped, named by its line, while the others go in.
            out = []
            read = read_jsonl_file(path)
            self._records[1] += read.records
            for bad in read.skipped:
                named = f"{source}#{bad.record_id}" if bad.record_id is not None else source
                summary.skipped.append(Failure(named, f"line {bad.line}: {bad.reason}"))
            self._records[0] += len(read.skipped)
            known.update(self.writer.known(doc.source for doc in read.documents))
            for doc in read.documents:
                digest = document_hash(doc)
                seen.add(doc.source)
                if is_unchanged(known, doc.source, digest):
                    summary.unchanged.append(doc.source)
                    self._records[0] += 1
                else:
                    out.append((doc, digest))
            self._report(summary)  # the file's records are known: the progress counts them from now
            return out
        seen.add(source)
        digest = file_hash(path)
        if is_unchanged(known, source, digest):
            summary.unchanged.append(source)
            return []
        return [(doc, digest) for doc in self._load(path)]

    def _load(self, path: Path) -> list[LoadedDocument]:
        return self.parser.load_file(path) if self.parser is not None else load_file(path)

    def _prepare(self, doc: LoadedDocument, digest: str, known: dict[str, KnownDocument], *,
                 is_record: bool = False) -> _Pending:
        self.writer.limits.check_document(doc.source, doc.text)
        chunks = self.chunker.chunk(doc.text, doc.elements)
        return _Pending(doc, digest, chunks, doc.source in known, is_record)

    def _line(self) -> EmbeddingLine[list[_Pending]]:
        """Embedding calls in flight: as many as the settings allow, or as the embedder can use."""
        limit = self.writer.embed_concurrency
        return EmbeddingLine(self.embedder, max(1, min(limit, self.embedder.parallel_calls or limit)))

    def _add(self, line: EmbeddingLine[list[_Pending]], batch: _Batch, pending: _Pending, summary: IngestSummary,
             *, strict: bool) -> _Batch:
        """Add a document to the batch being gathered; sends the batch once it holds enough chunks
        (or before a second version of one source, which must commit after the first)."""
        if pending.doc.source in batch.sources:
            self._send(line, batch, summary, strict=strict)
            batch = _Batch()
        batch.add(pending)
        if batch.chunks >= EMBED_BATCH_CHUNKS:
            self._send(line, batch, summary, strict=strict)
            batch = _Batch()
        return batch

    def _send(self, line: EmbeddingLine[list[_Pending]], batch: _Batch, summary: IngestSummary, *,
              strict: bool) -> None:
        """Start embedding the batch, and commit the batches whose turn has come meanwhile."""
        if not batch.documents:
            return
        texts = [c.text for p in batch.documents for c in p.chunks]
        for done in line.submit(batch.documents, texts):
            self._commit(done, summary, strict=strict)

    def _commit(self, done: EmbeddedBatch[list[_Pending]], summary: IngestSummary, *, strict: bool) -> None:
        """Commit one embedded batch in one transaction. A batch whose embedding failed fails its
        own documents only (recorded as failed, so the next run tries them again), unless `strict`:
        then the error is raised, as a caller ingesting given documents expects."""
        pending = done.batch
        summary.embed_seconds += done.seconds
        if done.error is not None:
            if strict:
                raise done.error
            with _ctrl_c_held():
                self._record_failed(pending, done.error, summary)
            return
        assert done.vectors is not None
        with _ctrl_c_held():
            self._put(pending, done.vectors, summary)

    def _record_failed(self, pending: list[_Pending], error: RagError, summary: IngestSummary) -> None:
        for p in pending:
            self.writer.put_failed_document(source=p.doc.source, content_hash=p.content_hash, error=str(error))
            summary.failed.append(Failure(p.doc.source, str(error)))
        self._records[0] += sum(p.is_record for p in pending)
        self._report(summary)

    def _put(self, pending: list[_Pending], vectors: np.ndarray, summary: IngestSummary) -> None:
        drafts, offset = [], 0
        for p in pending:
            drafts.append(DocumentDraft(
                source=p.doc.source, content_hash=p.content_hash, title=p.doc.title, text=p.doc.text,
                metadata=p.doc.metadata, chunks=p.chunks, vectors=vectors[offset: offset + len(p.chunks)],
                expect_id=self._expect_ids.get(p.doc.source)))
            offset += len(p.chunks)
        self.writer.put_documents(drafts)
        for p in pending:
            (summary.updated if p.is_update else summary.added).append(p.doc.source)
            summary.chunks += len(p.chunks)
            summary.tokens += sum(c.token_count for c in p.chunks)
        self._records[0] += sum(p.is_record for p in pending)
        self._report(summary)  # a single large JSON Lines file shows progress too

    def _report(self, summary: IngestSummary) -> None:
        if self.on_progress:
            done, total = self._files
            documents = len(summary.added) + len(summary.updated) + len(summary.unchanged)
            self.on_progress(Progress(done, total, documents, summary.chunks, summary.tokens, *self._records))

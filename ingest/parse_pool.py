"""Files are parsed in worker processes with a time and a memory limit, never in the caller.

A hostile file can cost a parser unbounded time and memory (a 263 KB DOCX holding 180 MB of XML
grew a server by 3.7 GB that it never gave back; a PDF of 50,000 pages parsed for 81 s inside a
request). So every file of an upload or an ingest is handed to a worker process: its address space
is capped (`RLIMIT_AS`, RAG_PARSE_MEMORY_MB) and the caller waits at most RAG_PARSE_TIMEOUT_S for
its answer. A worker that runs over either limit is killed and replaced, and the file fails with
`ParseLimitExceeded`, which names the limit; the memory a parser took goes back with its process.

Workers are started once (a fresh interpreter, safe beside the server's threads) and
reused for file after file, since starting one and importing the parsers costs about a second. At
most RAG_PARSE_WORKERS parse at once; further callers wait for a free one.

JSON Lines files are read in the caller, as before: one `json.loads` per line costs time and
memory in proportion to the file, with nothing to decompress, and a corpus of a million records
would neither fit a per-file time limit nor be worth copying back from a worker.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar

from ingest.loaders import LoadedDocument, load_bytes, load_file
from ingest.loaders.dispatch import DEFAULT_MAX_UNZIPPED_MB, is_jsonl
from rag.config import Settings
from rag.errors import InvalidInput, ParseLimitExceeded, RagError, UnreadableFile, UnsupportedFile

__all__ = ["ParseLimits", "ParserPool"]

log = logging.getLogger(__name__)

_ROOT = str(Path(__file__).resolve().parent.parent)  # where `ingest` and `rag` are imported from
_START_TIMEOUT_S = 120.0  # importing the parsers in a fresh interpreter, on a loaded machine
_SECRETS = frozenset({"OPENAI_API_KEY", "RAG_API_KEYS"})
_ERRORS: dict[str, type[RagError]] = {cls.__name__: cls for cls in (
    UnreadableFile, UnsupportedFile, ParseLimitExceeded, InvalidInput)}


@dataclass(frozen=True)
class ParseLimits:
    """What one file may cost its parser (see `Settings`)."""

    timeout_s: float = 60.0
    memory_mb: int = 2048
    max_unzipped_mb: int = DEFAULT_MAX_UNZIPPED_MB
    workers: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseLimits:
        return cls(timeout_s=settings.parse_timeout_s, memory_mb=settings.parse_memory_mb,
                   max_unzipped_mb=settings.max_unzipped_mb, workers=settings.parse_workers)


class _Worker:
    """One parser process (`python -m ingest.parse_worker`) and our end of its socket."""

    def __init__(self, limits: ParseLimits):
        ours, theirs = socket.socketpair()
        # A fresh interpreter, not a fork: the server's threads and locks stay behind, and the
        # caller's main module is not run again (as multiprocessing's spawn would).
        # A parser reads hostile input: it gets no credentials.
        env = {k: v for k, v in os.environ.items() if k not in _SECRETS}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ingest.parse_worker", str(theirs.fileno()), str(limits.memory_mb),
             str(limits.max_unzipped_mb)],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self.conn = Connection(ours.detach())
        if not self.conn.poll(_START_TIMEOUT_S) or self._recv() != ("ready", None):
            self.kill()
            raise RuntimeError("a parser process did not start")

    def _recv(self) -> Any:
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            return None

    def parse(self, job: tuple[str, str, Any], display: str, limits: ParseLimits) -> list[LoadedDocument]:
        """Send one job and wait for its answer; raises ParseLimitExceeded (the worker is then dead)."""
        self.conn.send(job)
        deadline = time.monotonic() + limits.timeout_s
        if not self.conn.poll(max(0.0, deadline - time.monotonic())):
            self.kill()
            raise ParseLimitExceeded(
                f"{display}: parsing took longer than the limit of {limits.timeout_s:g} s (RAG_PARSE_TIMEOUT_S); "
                "the file was not ingested", param="files")
        reply = self._recv()
        if reply is None or reply[0] == "memory":
            self.kill()
            raise ParseLimitExceeded(
                f"{display}: parsing needed more memory than the limit of {limits.memory_mb} MB "
                "(RAG_PARSE_MEMORY_MB); the file was not ingested", param="files")
        kind, value = reply
        if kind == "ok":
            return value
        name, message = value
        raise _ERRORS.get(name, UnreadableFile)(message)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.conn.close()


class ParserPool:
    """Parses files in reused worker processes, each file within `ParseLimits`. Thread-safe."""

    in_process: ClassVar[bool] = False
    """Tests only: parse in the calling process, unbounded (the unit tier starts no Python)."""

    def __init__(self, limits: ParseLimits | None = None):
        self.limits = limits or ParseLimits()
        self._slots = threading.BoundedSemaphore(self.limits.workers)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def load_bytes(self, name: str, data: bytes, *, source: str | None = None) -> list[LoadedDocument]:
        """`ingest.loaders.load_bytes`, in a worker within the limits."""
        if self.in_process or is_jsonl(name):
            return load_bytes(name, data, source=source, max_unzipped_mb=self.limits.max_unzipped_mb)
        docs = self._run(("bytes", name, data), name)
        # A file other than JSON Lines is one document, named by the file unless told otherwise.
        return [replace(d, source=source) for d in docs] if source else docs

    def load_file(self, path: Path) -> list[LoadedDocument]:
        """`ingest.loaders.load_file`, in a worker within the limits."""
        if self.in_process or is_jsonl(path.name):
            return load_file(path, max_unzipped_mb=self.limits.max_unzipped_mb)
        return self._run(("file", str(path), None), str(path))

    def _run(self, job: tuple[str, str, Any], display: str) -> list[LoadedDocument]:
        with self._slots:
            worker = self._take()
            try:
                docs = worker.parse(job, display, self.limits)
            except ParseLimitExceeded:
                raise  # that worker was killed: not given back
            except BaseException:
                worker.kill()  # a broken pipe or an interrupted wait leaves it in an unknown state
                raise
            self._give_back(worker)
            return docs

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the parser pool is closed")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.kill()
        return _Worker(self.limits)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)

    def close(self) -> None:
        """Stop the idle workers; a parse under way finishes, then its worker stops too."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The loop a parser process runs (see `ingest.parse_pool`): one file at a time, answers by pipe.

Its address space is capped before the parsers are imported, so a file that needs more memory
than RAG_PARSE_MEMORY_MB gets a `MemoryError` here (or kills the process, if a C parser aborts);
either way the parent reports the limit and starts a fresh worker.
"""

from __future__ import annotations

import resource
import sys
from multiprocessing.connection import Connection
from pathlib import Path

__all__ = ["serve"]


def _cap_memory(memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _out_of_memory(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, MemoryError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def serve(conn: Connection, memory_mb: int, max_unzipped_mb: int) -> None:
    """Answer jobs ("bytes", name, data) and ("file", path, None) until the pipe closes.

    Replies: ("ready", None) once at start; then per job ("ok", documents), ("error", (error class
    name, message)) or ("memory", None), after which the process ends.
    """
    _cap_memory(memory_mb)
    from ingest.loaders import load_bytes, load_file
    from ingest.loaders.failures import failure_reason
    from ingest.loaders.unstructured_setup import partitioners
    from rag.errors import RagError

    # Imported and run once now (each partitioner imports more on its first call), so a file's
    # time limit is spent on the file.
    partitioners()
    for sample in ("warm.md", "warm.txt", "warm.html"):
        load_bytes(sample, b"<p>Warm up.</p>" if sample.endswith("html") else b"Warm up.")
    conn.send(("ready", None))
    while True:
        try:
            kind, name, data = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            if kind == "bytes":
                docs = load_bytes(name, data, max_unzipped_mb=max_unzipped_mb)
            else:
                docs = load_file(Path(name), max_unzipped_mb=max_unzipped_mb)
            del data
            conn.send(("ok", docs))
        except MemoryError:
            conn.send(("memory", None))
            return
        except RagError as e:
            if _out_of_memory(e):  # a loader wrapped the MemoryError as "cannot parse"
                conn.send(("memory", None))
                return
            conn.send(("error", (type(e).__name__, str(e))))
        except Exception as e:  # a parser bug on odd input is still that file's failure
            conn.send(("error", ("UnreadableFile", f"{name}: cannot parse ({failure_reason(e)})")))


if __name__ == "__main__":
    fd, memory, unzipped = (int(a) for a in sys.argv[1:4])
    serve(Connection(fd), memory, unzipped)

"""How many OpenMP threads FAISS may use, decided in this one place.

Queries run on one thread: concurrency comes from requests, and FAISS's OpenMP threads otherwise
fight onnxruntime's and each other (a 10k-vector search took 68 ms with FAISS's default two threads
against 0.3 ms with one, issue #9). The setting has to be made in every thread that calls FAISS,
not once per process: FAISS's bundled libgomp keeps `omp_set_num_threads` per thread (a thread
that never called it gets the process default, measured with faiss-cpu 1.15: after
`omp_set_num_threads(1)` in the main thread, a new thread still reports 2). The web server's worker
threads, the ingest worker and the maintenance thread each make their first FAISS call through
`one_thread()`, which costs a thread-local attribute read after the first call.

A build that blocks everything else (a first load with no index on disk) may use every core for
its duration with `all_threads()`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import faiss

__all__ = ["all_threads", "one_thread"]

_local = threading.local()


def one_thread() -> None:
    """Make FAISS run single-threaded in the calling thread, unless the thread chose otherwise
    (inside `all_threads`). Cheap after the thread's first call."""
    if getattr(_local, "threads", None) is None:
        faiss.omp_set_num_threads(1)
        _local.threads = 1


@contextmanager
def all_threads() -> Iterator[None]:
    """Let FAISS use every core in this thread until the block ends, then one again."""
    cores = os.cpu_count() or 1
    faiss.omp_set_num_threads(cores)
    _local.threads = cores
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)
        _local.threads = 1

"""Embedding calls in flight while the pipeline goes on parsing, chunking and committing.

The pipeline hands each batch of chunks to `EmbeddingLine.submit` as soon as it is chunked. Up to
`limit` calls run at once on worker threads: a remote embedder answers requests side by side (each
request is retried on its own by the OpenAI SDK, which honours the server's `retry-after`), and the
pipeline's own thread keeps reading and chunking meanwhile. Results come back in submission order,
so documents are committed in the order they were read, and only on the pipeline's thread (one
writer, as SQLite wants). A call that fails with a `RagError` comes back as a failed result: its
batch's documents fail, the other batches go on. Anything else (a bug) is raised when its turn comes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from rag.embeddings import Embedder
from rag.errors import RagError

__all__ = ["EmbeddedBatch", "EmbeddingLine"]

T = TypeVar("T")


@dataclass(frozen=True)
class EmbeddedBatch(Generic[T]):
    """One submitted batch, back: its vectors, or the error its call failed with."""

    batch: T
    vectors: np.ndarray | None
    """(texts, dim) float32, in the order of the submitted texts; None when `error` is set."""
    error: RagError | None
    seconds: float
    """How long the embedding call took (calls overlap: these add up to more than the wall time)."""


class EmbeddingLine(Generic[T]):
    """At most `limit` embedding calls in flight; results taken back oldest first."""

    def __init__(self, embedder: Embedder, limit: int):
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.embedder = embedder
        self.limit = limit
        self._pool: ThreadPoolExecutor | None = None  # made on first use: an empty ingest starts no thread
        self._queue: deque[tuple[T, Future[EmbeddedBatch[T]]]] = deque()

    def submit(self, batch: T, texts: list[str]) -> Iterator[EmbeddedBatch[T]]:
        """Start embedding `texts` for `batch`. Yields the results the caller must take now: those
        already finished at the head of the line, and the oldest ones while more than `limit` are
        in flight. Consume the iterator before the next call."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix="embed")
        self._queue.append((batch, self._pool.submit(self._embed, batch, texts)))
        while self._queue and (len(self._queue) > self.limit or self._queue[0][1].done()):
            yield self._take()

    def drain(self) -> Iterator[EmbeddedBatch[T]]:
        """Every result still in flight, oldest first."""
        while self._queue:
            yield self._take()

    def close(self, *, wait: bool = True) -> None:
        """Cancel what has not started and, with `wait`, wait for what has (its results are dropped)."""
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
            self._pool = None

    def __enter__(self) -> EmbeddingLine[T]:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # Leaving on an error or Ctrl-C, the caller need not wait for a call whose result is dropped
        # (a local model's batch can take half a minute); the call still ends before the process.
        self.close(wait=exc_type is None)

    def _take(self) -> EmbeddedBatch[T]:
        _, future = self._queue.popleft()
        return future.result()  # a non-RagError raised by the embedder is raised here

    def _embed(self, batch: T, texts: list[str]) -> EmbeddedBatch[T]:
        started = time.perf_counter()
        try:
            if texts:
                vectors = self.embedder.embed(texts)
            else:
                vectors = np.empty((0, self.embedder.dim), np.float32)
        except RagError as e:
            return EmbeddedBatch(batch, None, e, time.perf_counter() - started)
        return EmbeddedBatch(batch, vectors, None, time.perf_counter() - started)

"""Thread pools by kind of work, so slow work of one kind cannot starve the others.

Handlers that block (SQLite, FAISS, tantivy, the local model, the OpenAI SDK) run on threads. Left
to Litestar's `sync_to_thread`, they all share the event loop's default executor (min(32, CPUs + 4)
threads: 6 on two cores), so six asks waiting on a hanging upstream stopped `/health` and every
other route. Here each kind of work has its own bounded pool:

- `answers` (RAG_ANSWER_WORKERS): asks and collection chats, which may wait on the upstream for
  as long as RAG_OPENAI_TIMEOUT_S; their streams read each next event on this pool too;
- `search` (RAG_SEARCH_WORKERS): searches, similarity, `/v1/embeddings` (CPU-heavy);
- `health`: `/health` alone, so it answers whatever the rest is doing.

Routes not listed (collections and documents) keep the default executor, which nothing slow
uses any more. Each pool admits at most its workers plus RAG_QUEUE_LIMIT requests; the next one
is refused at once with 503 and `Retry-After` (back-pressure), instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from rag.config import Settings
from rag.errors import Overloaded

__all__ = ["HEALTH_WORKERS", "Pool", "WorkPools"]

T = TypeVar("T")

HEALTH_WORKERS = 2
_RETRY_AFTER_S = 1
_END = object()


class Pool:
    """A bounded thread pool for one kind of work, refusing work beyond `workers + queue_limit`."""

    def __init__(self, name: str, workers: int, queue_limit: int):
        self.name = name
        self.workers = workers
        self.queue_limit = queue_limit
        self.admitted = 0
        """Calls running or waiting for a thread (counted on the event loop's thread only)."""
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"rag-{name}")

    async def run(self, fn: Callable[[], T], *, admit: bool = True) -> T:
        """`fn()` on this pool's threads. With `admit`, refuses with `Overloaded` when full; without
        (the next event of a stream already under way), waits its turn."""
        if admit and self.admitted >= self.workers + self.queue_limit:
            raise Overloaded(f"the service is busy: all {self.workers} {self.name} workers are taken and "
                             f"{self.queue_limit} requests wait (RAG_QUEUE_LIMIT); retry shortly",
                             retry_after_s=_RETRY_AFTER_S)
        self.admitted += 1
        try:
            call = functools.partial(contextvars.copy_context().run, fn)
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        finally:
            self.admitted -= 1

    async def iterate(self, items: Iterator[T]) -> AsyncIterator[T]:
        """The items of a blocking iterator, each next one read on this pool."""

        def step() -> object:
            return next(items, _END)

        try:
            while (item := await self.run(step, admit=False)) is not _END:
                yield item  # type: ignore[misc]
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator left early (the client went away): let it clean up
                try:
                    await self.run(close, admit=False)
                except RuntimeError:  # the pool is shut down already (the app is stopping)
                    close()

    def shutdown(self) -> None:
        # Threads blocked on the upstream end with its timeout; nothing waits for them here.
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class WorkPools:
    """The service's pools (see the module docstring), made at start-up from the settings."""

    answers: Pool
    search: Pool
    health: Pool

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkPools:
        return cls(answers=Pool("answers", settings.answer_workers, settings.queue_limit),
                   search=Pool("search", settings.search_workers, settings.queue_limit),
                   health=Pool("health", HEALTH_WORKERS, settings.queue_limit))

    def shutdown(self) -> None:
        for pool in (self.answers, self.search, self.health):
            pool.shutdown()

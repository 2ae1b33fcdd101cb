"""What the library counts and times, as Prometheus metrics (prometheus-client's default registry).

The library only records; `api/metrics.py` serves the registry at `/metrics`. Labels are small
fixed sets (an operation, a stage, a status, a model name the service was configured with or
answered with): never a collection name, a path, a query or a document, so the number of series
stays bounded and nothing a user wrote reaches the metrics.

Stages of a search: `embed` (the query vector), `dense` and `lexical` (each index's lookup; in
hybrid mode they overlap), `fuse` (fusion, filling in both scores, reading the hits). An answer adds
`answer` (the answerer, from the request to its last token). The operation is `search`, or `ask`
for the retrieval an answer makes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from rag.answer.types import AnswerEvent

__all__ = [
    "INGEST_CHUNKS", "INGEST_DOCUMENTS", "INGEST_QUEUE_DEPTH", "STAGE_SECONDS", "TOKENS", "UPSTREAM_ERRORS",
    "UPSTREAM_REQUESTS", "count_upstream", "observed_answer", "operation", "stage",
]

# Searches take milliseconds, answers seconds: buckets from 1 ms to a minute.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

STAGE_SECONDS = Histogram("rag_stage_seconds", "Time spent in each stage of a search or an answer.",
                          ["operation", "stage"], buckets=_BUCKETS)
UPSTREAM_REQUESTS = Counter("rag_upstream_requests", "Requests to the OpenAI-compatible upstream, by answer.",
                            ["endpoint", "status"])
UPSTREAM_ERRORS = Counter("rag_upstream_errors", "Upstream requests that failed: an error status, a timeout "
                          "or no connection.", ["endpoint", "status"])
TOKENS = Counter("rag_tokens", "Tokens used by answers, by the model that answered.", ["model", "kind"])
INGEST_QUEUE_DEPTH = Gauge("rag_ingest_queue_depth", "Uploaded documents this process has queued and not yet "
                           "ingested.")
INGEST_DOCUMENTS = Counter("rag_ingest_documents", "Uploaded documents the ingest worker finished, by outcome.",
                           ["outcome"])
INGEST_CHUNKS = Counter("rag_ingest_chunks", "Chunks the ingest worker wrote.")

_operation: ContextVar[str] = ContextVar("rag_operation", default="search")


@contextmanager
def operation(name: str) -> Iterator[None]:
    """Label the stages timed inside as `name` (`ask` for an answer's retrieval)."""
    token = _operation.set(name)
    try:
        yield
    finally:
        _operation.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage `name` of the current operation."""
    started = time.perf_counter()
    try:
        yield
    finally:
        observe(name, time.perf_counter() - started)


def observe(name: str, seconds: float) -> None:
    """Record `seconds` spent in stage `name` (for work timed on another thread)."""
    STAGE_SECONDS.labels(_operation.get(), name).observe(seconds)


def endpoint_of(path: str) -> str:
    """A fixed label for an upstream URL path: the API it calls, never its ids."""
    for suffix, name in (("/embeddings", "embeddings"), ("/chat/completions", "chat_completions")):
        if path.endswith(suffix):
            return name
    return "other"


def count_upstream(endpoint: str, status: int | str) -> None:
    """One upstream call answered with `status` (an HTTP status, `timeout` or `connection_error`)."""
    UPSTREAM_REQUESTS.labels(endpoint, str(status)).inc()
    if not isinstance(status, int) or status >= 400:
        UPSTREAM_ERRORS.labels(endpoint, str(status)).inc()


def observed_answer(events: Iterator[AnswerEvent]) -> Iterator[AnswerEvent]:
    """The answer's events unchanged, timing the `answer` stage and counting its tokens by model."""
    from rag.answer.types import AnswerDone

    started = time.perf_counter()
    for event in events:
        if isinstance(event, AnswerDone):
            STAGE_SECONDS.labels("ask", "answer").observe(time.perf_counter() - started)
            for kind in ("prompt_tokens", "completion_tokens"):
                value = event.usage.get(kind)
                if isinstance(value, int) and value > 0:
                    TOKENS.labels(event.model, kind.removesuffix("_tokens")).inc(value)
        yield event

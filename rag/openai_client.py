"""The OpenAI client factory and the one translation of the SDK's errors into ours.

Every call to an OpenAI-compatible upstream (embeddings, chat answers) goes through a client made
here, so timeouts and retries are decided once: the SDK's own default read timeout is ten minutes,
far longer than any caller of this service will wait. Calls go through `call_with_retries`, which
retries connection errors, timeouts, 408/409/429 and 5xx (`client.max_retries` times), with
exponential backoff that honours the server's `retry-after(-ms)`. The waits a server asks for
must fit in one budget (RAG_OPENAI_TIMEOUT_S from the call's start): a server asking to wait
longer than what is left is answered at once (429 stays 429, with its Retry-After), never waited
on past the caller's patience. What still fails is handed to
`translate_openai_error`.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import openai

from rag import metrics
from rag.config import Settings
from rag.errors import (
    MissingCredentials,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from rag.upstream_replies import HTTPResponse
from rag.upstream_timeouts import CONNECT_TIMEOUT_S

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DEFAULT_MAX_RETRIES",
    "call_with_retries",
    "make_client",
    "translate_openai_error",
]

T = TypeVar("T")

DEFAULT_MAX_RETRIES = 2
"""Retries after the first attempt (backing off 0.5 s, 1 s, ... or as the server asks)."""
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
_RETRIED_STATUSES = frozenset({408, 409, 429})


def _client_options(settings: Settings, max_retries: int | None, timeout_s: float | None) -> dict:
    if not settings.openai_api_key:
        raise MissingCredentials(
            "OPENAI_API_KEY is not set: set it to use OpenAI (for a keyless OpenAI-compatible "
            "server, any placeholder such as OPENAI_API_KEY=none works)"
        )
    read = timeout_s if timeout_s is not None else settings.openai_timeout_s
    return {
        "api_key": settings.openai_api_key,
        # None lets the SDK fall back to OpenAI's own URL.
        "base_url": settings.openai_base_url,
        "timeout": openai.Timeout(read, connect=min(CONNECT_TIMEOUT_S, read)),
        "max_retries": DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
    }


def make_client(settings: Settings, *, max_retries: int | None = None,
                timeout_s: float | None = None) -> openai.OpenAI:
    """A new synchronous client for the configured upstream.

    `timeout_s` overrides RAG_OPENAI_TIMEOUT_S (the read timeout); the connect timeout stays short.
    Raises `MissingCredentials` when OPENAI_API_KEY is not set.
    """
    options = _client_options(settings, max_retries, timeout_s)
    # Every attempt (retries included) is counted by its answer, for /metrics.
    http_client = openai.DefaultHttpxClient(event_hooks={"response": [_count_response]})
    return openai.OpenAI(**options, http_client=http_client)


def _count_response(response: httpx.Response) -> None:
    metrics.count_upstream(metrics.endpoint_of(response.request.url.path), response.status_code)


def _count_failure(exc: openai.APIConnectionError, status: str) -> None:
    request = getattr(exc, "request", None)
    metrics.count_upstream(metrics.endpoint_of(request.url.path if request is not None else ""), status)


def _http_error(exc: Exception, name: str) -> bool:
    """Whether `exc` is the SDK's HTTP library's error `name` (httpx, or httpx2 in newer SDKs)."""
    return any(c.__name__ == name and c.__module__.split(".")[0] in ("httpx", "httpx2") for c in type(exc).__mro__)


def _retry_after_s(response: HTTPResponse) -> float | None:
    """What the server asks to wait, from `retry-after-ms` or `retry-after` (seconds or a date)."""
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (ValueError, TypeError, OverflowError):
        return None


def _backoff_s(attempt: int) -> float:
    return min(INITIAL_BACKOFF_S * 2 ** attempt, MAX_BACKOFF_S) * (1 - 0.25 * random.random())


def _budget_s(client: openai.OpenAI) -> float:
    timeout = client.timeout
    read = timeout if isinstance(timeout, int | float) else getattr(timeout, "read", None)
    return float(read) if isinstance(read, int | float) else 60.0


def call_with_retries(client: openai.OpenAI, call: Callable[[openai.OpenAI], T], *,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """`call(client)`, retried as the module docstring says; the budget for waits is the client's
    read timeout (RAG_OPENAI_TIMEOUT_S) from now. Raises the SDK's error of the last attempt, or, when the
    server asks for a wait longer than the budget has left, the service's error at once."""
    once = client.with_options(max_retries=0)  # the retries are ours, so they can respect the budget
    deadline = time.monotonic() + _budget_s(client)
    for attempt in range(client.max_retries + 1):
        try:
            return call(once)
        except openai.APIStatusError as e:
            status = e.status_code
            if attempt == client.max_retries or not (status in _RETRIED_STATUSES or status >= 500):
                raise
            asked = _retry_after_s(e.response)
            wait = asked if asked is not None else _backoff_s(attempt)
            left = deadline - time.monotonic()
            if wait > left:
                if asked is None:
                    raise
                err = translate_openai_error(e)
                now = type(err)(f"{err} (it asks to retry after {asked:.0f} s, more than the {max(left, 0):.0f} s "
                                f"left of RAG_OPENAI_TIMEOUT_S)", request_id=err.request_id)
                now.retry_after_s = math.ceil(asked)
                raise now from e
        except (openai.APITimeoutError, openai.APIConnectionError):
            # Each attempt is bounded by the timeout itself; the short backoff is not the server's ask.
            wait = _backoff_s(attempt)
            if attempt == client.max_retries:
                raise
        sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _upstream_message(exc: openai.APIStatusError) -> str:
    # The SDK stores the body's `error` object (OpenAI's error shape) or the raw body.
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return exc.message


def translate_openai_error(exc: Exception) -> UpstreamError:
    """The service error for an exception raised by the openai SDK (after its retries).

    Upstream faults keep their meaning: 429 stays 429, a timeout becomes 504, an unreachable or
    failing upstream 502. Any other 4xx means the service's own request or configuration is wrong
    (a rejected OPENAI_API_KEY, a model name the server does not know), not the caller's: it
    becomes 502 with a message naming the setting to check. The upstream's `x-request-id` is kept
    so an operator can quote it to the provider.
    """
    if isinstance(exc, UpstreamError):
        return exc
    # A stream the service reads itself (rag.upstream_replies) raises its HTTP library's own errors.
    if _http_error(exc, "TimeoutException"):
        return UpstreamTimeout("the OpenAI upstream did not answer in time (RAG_OPENAI_TIMEOUT_S)")
    if _http_error(exc, "TransportError"):
        return UpstreamUnavailable(f"the connection to the OpenAI upstream broke: {exc.__class__.__name__}")
    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError: it is a subclass
        _count_failure(exc, "timeout")
        return UpstreamTimeout("the OpenAI upstream did not answer in time (RAG_OPENAI_TIMEOUT_S)")
    if isinstance(exc, openai.APIConnectionError):
        _count_failure(exc, "connection_error")
        cause = exc.__cause__ or exc.__context__
        detail = f": {cause}" if cause else ""
        return UpstreamUnavailable(f"could not reach the OpenAI upstream (OPENAI_BASE_URL){detail}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _upstream_message(exc)
        rid = exc.request_id
        if status == 429:
            return UpstreamRateLimited(f"the OpenAI upstream is rate limiting: {message}", request_id=rid)
        if status >= 500:
            return UpstreamUnavailable(f"the OpenAI upstream failed with {status}: {message}", request_id=rid)
        if status in (401, 403):
            hint = "check OPENAI_API_KEY"
        elif status == 404:
            hint = "check the model settings (RAG_CHAT_MODEL, RAG_OPENAI_EMBEDDING_MODEL) and OPENAI_BASE_URL"
        else:
            hint = "the service's request was refused"
        return UpstreamRefused(f"the OpenAI upstream answered {status} ({hint}): {message}", request_id=rid)
    if isinstance(exc, openai.APIResponseValidationError):
        return UpstreamUnavailable(f"the OpenAI upstream sent a malformed response: {exc.message}",
                                   request_id=exc.response.headers.get("x-request-id"))
    return UpstreamUnavailable(f"OpenAI call failed: {exc}")

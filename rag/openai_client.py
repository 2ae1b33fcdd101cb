"""The OpenAI client factory and the one translation of the SDK's errors into ours.

Every call to an OpenAI-compatible upstream (embeddings, chat answers) goes through a client made
here, so timeouts and retries are decided once: the SDK's own default read timeout is ten minutes,
far longer than any caller of this service will wait. The SDK retries connection errors, timeouts,
408/409/429 and 5xx itself, with exponential backoff that honours the server's `retry-after(-ms)`;
what is still failing after that is handed to `translate_openai_error`.
"""

from __future__ import annotations

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

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DEFAULT_MAX_RETRIES",
    "make_client",
    "translate_openai_error",
]

CONNECT_TIMEOUT_S = 5.0
"""A reachable server accepts a connection at once; waiting longer only delays the 502."""
DEFAULT_MAX_RETRIES = 2
"""Retries after the first attempt (the SDK backs off 0.5 s, 1 s, ... or as the server asks)."""


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

"""Passthrough: OpenAI APIs the service does not implement itself, forwarded to the upstream.

The Responses and Conversations APIs, Assistants v2, files and uploads, images and audio are
relayed to OPENAI_BASE_URL (OpenAI's own when unset) by one function over a table of allowed paths
and methods (`PASSTHROUGH_ROUTES`). What the caller sends reaches the upstream unchanged: body
bytes (streamed, never buffered: a 100 MB upload costs no memory), query string, Content-Type,
OpenAI-Beta, Idempotency-Key (an allow-list: no other request header is forwarded). What the
upstream answers comes back unchanged: status (errors included, so OpenAI's SDKs raise their usual
classes), body (streamed: server-sent events arrive as the upstream sends them). Only these differ:

- the caller's Authorization (and other credentials) never leave the service; the upstream sees
  the service's own OPENAI_API_KEY;
- hop-by-hop headers (RFC 9110 §7.6.1) are dropped in both directions, and of the caller's other
  headers only an allow-list travels (`_REQUEST_FORWARDED`);
- the upstream's `x-request-id` comes back as `x-upstream-request-id`: `x-request-id` is the
  service's own (api/request_id.py), so a caller can quote either;
- redirects are relayed to the caller, never followed;
- a path with a `.` or `..` segment never gets here (api/request_guard.py: 400);
- a body larger than RAG_MAX_UPLOAD_MB is refused with 413;
- no key configured → 503 naming OPENAI_API_KEY, with `x-should-retry: false` (retrying cannot
  help); upstream unreachable → 502; upstream too slow
  (RAG_OPENAI_TIMEOUT_S between bytes) → 504, all in OpenAI's error shape.

Nothing is retried: most of these calls create things upstream, and the caller's SDK retries on
its own terms (with its Idempotency-Key).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar, Request, Router, route
from litestar.background_tasks import BackgroundTask
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Method

from api.openapi import documented
from api.query_params import RELAY_QUERY
from api.request_id import HEADER, UPSTREAM_HEADER
from rag import metrics
from rag.config import Settings
from rag.errors import MissingCredentials, UpstreamTimeout, UpstreamUnavailable
from rag.upstream_timeouts import CONNECT_TIMEOUT_S

__all__ = ["DEFAULT_UPSTREAM", "PASSTHROUGH_ROUTES", "passthrough_lifespan", "passthrough_router"]

log = logging.getLogger(__name__)

DEFAULT_UPSTREAM = "https://api.openai.com/v1"

PASSTHROUGH_ROUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Responses and Conversations
    ("/responses", ("POST",)),
    ("/responses/compact", ("POST",)),
    ("/responses/input_tokens", ("POST",)),
    ("/responses/{response_id:str}", ("GET", "DELETE")),
    ("/responses/{response_id:str}/cancel", ("POST",)),
    ("/responses/{response_id:str}/input_items", ("GET",)),
    ("/conversations", ("POST",)),
    ("/conversations/{conversation_id:str}", ("GET", "POST", "DELETE")),
    ("/conversations/{conversation_id:str}/items", ("GET", "POST")),
    ("/conversations/{conversation_id:str}/items/{item_id:str}", ("GET", "DELETE")),
    # Assistants v2
    ("/assistants", ("GET", "POST")),
    ("/assistants/{assistant_id:str}", ("GET", "POST", "DELETE")),
    ("/threads", ("POST",)),
    ("/threads/runs", ("POST",)),
    ("/threads/{thread_id:str}", ("GET", "POST", "DELETE")),
    ("/threads/{thread_id:str}/messages", ("GET", "POST")),
    ("/threads/{thread_id:str}/messages/{message_id:str}", ("GET", "POST", "DELETE")),
    ("/threads/{thread_id:str}/runs", ("GET", "POST")),
    ("/threads/{thread_id:str}/runs/{run_id:str}", ("GET", "POST")),
    ("/threads/{thread_id:str}/runs/{run_id:str}/cancel", ("POST",)),
    ("/threads/{thread_id:str}/runs/{run_id:str}/submit_tool_outputs", ("POST",)),
    ("/threads/{thread_id:str}/runs/{run_id:str}/steps", ("GET",)),
    ("/threads/{thread_id:str}/runs/{run_id:str}/steps/{step_id:str}", ("GET",)),
    # Files and multi-part uploads
    ("/files", ("GET", "POST")),
    ("/files/{file_id:str}", ("GET", "DELETE")),
    ("/files/{file_id:str}/content", ("GET",)),
    ("/uploads", ("POST",)),
    ("/uploads/{upload_id:str}/parts", ("POST",)),
    ("/uploads/{upload_id:str}/complete", ("POST",)),
    ("/uploads/{upload_id:str}/cancel", ("POST",)),
    # Images and audio
    ("/images/generations", ("POST",)),
    ("/images/edits", ("POST",)),
    ("/images/variations", ("POST",)),
    ("/audio/speech", ("POST",)),
    ("/audio/transcriptions", ("POST",)),
    ("/audio/translations", ("POST",)),
)
"""Paths under /v1 (Litestar syntax) and the methods forwarded; anything else is 404/405 here."""

PREFIX = "/v1"
POOL_TIMEOUT_S = 10.0
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0)

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade",
})
# Only these of the caller's headers travel upstream: what OpenAI's APIs read. Everything else
# stays here: credentials (Authorization, X-Api-Key, Cookie), routing hints a proxy in front of the
# upstream might obey (X-Forwarded-Host, Forwarded, X-Original-URL, X-Rewrite-URL), and headers
# that belong to the caller's own connection (Host, Expect, hop-by-hop).
_REQUEST_FORWARDED = frozenset({
    "accept", "accept-encoding", "content-type", "content-length", "content-encoding", "openai-beta",
    "idempotency-key", "user-agent",
})
_REQUEST_FORWARDED_PREFIXES = ("x-stainless-",)
"""OpenAI's SDKs describe themselves (language, version, retry count) in these; harmless, kept."""
# The service's own server answers with its own Date and Server; upstream cookies are not ours.
_RESPONSE_DROPPED = _HOP_BY_HOP | {"set-cookie", "server", "date"}


def _forwardable(raw: Iterable[tuple[bytes, bytes]], dropped: frozenset[str]) -> list[tuple[str, str]]:
    pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
    # Headers the Connection header names are hop-by-hop too.
    listed = {t.strip().lower() for k, v in pairs if k == "connection" for t in v.split(",")}
    return [(k, v) for k, v in pairs if k not in dropped and k not in listed]


def _relayed_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The upstream's response headers as the caller gets them: its request id renamed."""
    return [(UPSTREAM_HEADER if k == HEADER else k, v) for k, v in _forwardable(raw, _RESPONSE_DROPPED)]
def _request_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The caller's headers the upstream gets: those in the allow-list, less what is hop-by-hop."""
    return [(k, v) for k, v in _forwardable(raw, _HOP_BY_HOP)
            if k in _REQUEST_FORWARDED or k.startswith(_REQUEST_FORWARDED_PREFIXES)]


def _upstream_url(settings: Settings, request: Request) -> httpx.URL:
    path = request.scope.get("raw_path") or request.scope["path"].encode()
    path = path.split(b"?", 1)[0]
    suffix = path[len(PREFIX):] if path.startswith(PREFIX.encode()) else path
    base = (settings.openai_base_url or DEFAULT_UPSTREAM).rstrip("/")
    # The query string goes as raw bytes: no re-encoding, so signatures and odd characters survive.
    url = httpx.URL(base + suffix.decode("latin-1"))
    query = request.scope.get("query_string", b"")
    return url.copy_with(query=query) if query else url


def _has_body(headers: list[tuple[str, str]], raw: Iterable[tuple[bytes, bytes]]) -> bool:
    lengths = [v for k, v in headers if k == "content-length"]
    chunked = any(k.lower() == b"transfer-encoding" for k, _ in raw)
    return chunked or any(v.strip() not in ("", "0") for v in lengths)


def _too_large(limit_mb: int) -> HTTPException:
    return HTTPException(status_code=413, detail=f"request body exceeds RAG_MAX_UPLOAD_MB ({limit_mb} MB)")


async def _request_body(request: Request, limit_mb: int) -> AsyncIterator[bytes]:
    # Litestar's stream enforces the app's request_max_body_size (RAG_MAX_UPLOAD_MB) as bytes
    # arrive; say which setting refused it.
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except RequestEntityTooLarge:
        raise _too_large(limit_mb) from None


async def forward(request: Request) -> ASGIStreamingResponse:
    """Relay this request to the upstream and stream its answer back (see the module docstring)."""
    settings: Settings = request.app.state.settings
    client: httpx.AsyncClient = request.app.state.upstream_http
    if not settings.openai_api_key:
        raise MissingCredentials("the OpenAI passthrough needs OPENAI_API_KEY; it is not set")
    limit = settings.max_upload_mb * 1024 * 1024
    if (request.content_length or 0) > limit:
        raise _too_large(settings.max_upload_mb)
    raw = request.scope["headers"]
    headers = _request_headers(raw)
    headers.append(("authorization", f"Bearer {settings.openai_api_key}"))
    if not any(k == "accept-encoding" for k, _ in headers):
        headers.append(("accept-encoding", "identity"))  # else httpx would ask for gzip on our behalf
    body = _request_body(request, settings.max_upload_mb) if _has_body(headers, raw) else None
    outgoing = client.build_request(request.method, _upstream_url(settings, request), headers=headers,
                                    content=body)
    try:
        upstream = await client.send(outgoing, stream=True)
    except httpx.ConnectTimeout as e:
        metrics.count_upstream("passthrough", "connection_error")
        raise UpstreamUnavailable(f"could not connect to the OpenAI upstream in time: {e!r}") from e
    except httpx.TimeoutException as e:
        metrics.count_upstream("passthrough", "timeout")
        raise UpstreamTimeout("the OpenAI upstream did not answer in time (RAG_OPENAI_TIMEOUT_S)") from e
    except httpx.TransportError as e:
        metrics.count_upstream("passthrough", "connection_error")
        raise UpstreamUnavailable(f"could not reach the OpenAI upstream (OPENAI_BASE_URL): {e!r}") from e
    metrics.count_upstream("passthrough", upstream.status_code)
    log.debug("passthrough %s %s -> %s", request.method, request.url.path, upstream.status_code)

    async def relay() -> AsyncIterator[bytes]:
        try:
            # Raw bytes: content-encoding and content-length stay as the upstream sent them.
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            # The status is sent already; breaking the connection is the only honest signal left.
            log.warning("upstream stream broke off: %s %s", request.method, request.url.path)
            raise
        finally:
            await upstream.aclose()

    return ASGIStreamingResponse(
        iterator=relay(),
        status_code=upstream.status_code,
        # A list, not a dict: repeated headers (set-cookie) must all reach the caller; Litestar
        # accepts header pairs here, though its annotation names only a mapping.
        headers=_relayed_headers(upstream.headers.raw),  # type: ignore[arg-type]
        media_type=upstream.headers.get("content-type", "application/octet-stream"),
        # Closes the upstream response also when the caller disconnects mid-stream.
        background=BackgroundTask(upstream.aclose),
    )


def _operation_id(handler: HTTPRouteHandler, method: Method, components: list) -> str:
    names = [c if isinstance(c, str) else "by_" + c.name for c in components if c != PREFIX.strip("/")]
    return "passthrough_" + method.lower() + "_" + "_".join(names)


RELAYED = ("Whatever the OpenAI upstream answers, relayed unchanged: its status (errors included), "
           "content type and body (server-sent events as they arrive); see OpenAI's API reference. The "
           "statuses below are the service's own, in its error shape.")
"""The passthrough routes' documented answer: opaque, since the upstream's own API defines it."""


def _build_router() -> Router:
    handlers = [
        # status_code only quiets the check that DELETE answers 204 without a body: the upstream decides.
        route(path, http_method=[HttpMethod(m) for m in methods], operation_id=_operation_id, tags=["passthrough"],
              status_code=200, summary=f"Forwarded to the OpenAI upstream: {path.split('/')[1]}",
              description="Forwarded to OPENAI_BASE_URL with the service's own key; the answer is relayed "
                          "unchanged (opaque to this document).",
              **documented(413, 502, 503, 504, opaque=RELAYED))(forward)
        for path, methods in PASSTHROUGH_ROUTES
    ]
    # The upstream reads the query string; this service does not check it (api/query_params.py).
    return Router(path=PREFIX, route_handlers=handlers, opt={RELAY_QUERY: True})


passthrough_router = _build_router()
"""The /v1 routes forwarded upstream: one handler per table row, all running `forward`.
(Litestar copies a router into each app that registers it, so one instance serves every app.)"""


@asynccontextmanager
async def passthrough_lifespan(app: Litestar) -> AsyncIterator[None]:
    """The one upstream HTTP client, open for the app's lifetime (after `app.state.settings`)."""
    settings: Settings = app.state.settings
    timeout = httpx.Timeout(connect=CONNECT_TIMEOUT_S, read=settings.openai_timeout_s,
                            write=settings.openai_timeout_s, pool=POOL_TIMEOUT_S)
    client = httpx.AsyncClient(timeout=timeout, limits=LIMITS, follow_redirects=False)
    app.state.upstream_http = client
    try:
        yield
    finally:
        await client.aclose()

"""Every response carries the service's own `x-request-id`, and every request is logged once.

The id is made here for each request (`req_` and 32 hex digits, the shape OpenAI's ids have, so
its SDKs show it as `request_id`), kept in a context variable so any log line written while the
request runs carries it (`api.logs` adds it to every record), and sent back in the response.
An id an upstream gave (the passthrough's answer, an upstream error) travels as
`x-upstream-request-id` instead, and both are in the request's log line.

This wraps the whole application (`install`), not one route: a 404 or 405 that matched no route
gets an id and a log line too. The log line names the route template, never the query string or
any header (keys and Authorization stay out of logs).
"""

from __future__ import annotations

import logging
import time
import uuid
from contextvars import ContextVar

from litestar import Litestar
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HEADER", "UPSTREAM_HEADER", "current_request_id", "install", "new_request_id"]

HEADER = "x-request-id"
UPSTREAM_HEADER = "x-upstream-request-id"
_HEADER = HEADER.encode()
_UPSTREAM = UPSTREAM_HEADER.encode()

log = logging.getLogger("api.requests")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request this code runs for (threads started by `anyio.to_thread` inherit it)."""
    return _current.get()


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


def route_of(scope: Scope) -> str:
    """The route template the request matched (`/collections/{name:str}/search`), or a fixed word
    when it matched none: never the raw path, which holds names."""
    template = scope.get("path_template")
    return template if isinstance(template, str) else "(unmatched)"


def request_context(app: ASGIApp) -> ASGIApp:
    """ASGI wrapper: the request id, its response header and the request's log line."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = new_request_id()
        token = _current.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        seen: dict[str, object] = {"status": 500, "upstream": None}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                seen["status"] = message["status"]
                seen["upstream"] = next((v.decode("latin-1") for k, v in headers if k.lower() == _UPSTREAM), None)
                message = {**message, "headers": [*headers, (_HEADER, request_id.encode())]}
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            fields = {"request_id": request_id, "method": scope.get("method", ""), "route": route_of(scope),
                      "status": seen["status"], "duration_ms": round(elapsed_ms, 1),
                      "upstream_request_id": seen["upstream"]}
            log.info("%s %s -> %s in %.1f ms", fields["method"], fields["route"], fields["status"], elapsed_ms,
                     extra=fields)
            _current.reset(token)

    return wrapper


def install(app: Litestar) -> Litestar:
    """Wrap the whole app (routing included) in `request_context`; returns the app."""
    app.asgi_handler = request_context(app.asgi_handler)
    return app

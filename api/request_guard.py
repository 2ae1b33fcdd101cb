"""Checks every request passes before its handler runs, with or without API keys.

- **Path**: a `.` or `..` segment, plain or percent-encoded (once or more), is refused with 400.
  Browsers resolve dot segments before sending, so only a crafted request has one, and a relay
  (the passthrough's HTTP client) would resolve it after routing: `/v1/threads/../files/x` must not
  reach the upstream as `/v1/files/x`.
- **Host**: the service answers only to the address it is bound to, `localhost` and the names in
  RAG_ALLOWED_HOSTS; anything else is 400. A DNS-rebinding page reaches the service under its own
  name, so this is what stops it from reading the documents.
- **Origin**: a POST, PUT, PATCH or DELETE whose `Origin` header is present and is not the origin
  the request was addressed to (scheme and Host) is refused with 403. Browsers send `Origin` on
  every such request, so a page of another site cannot write here (a `text/plain` or multipart
  POST needs no CORS preflight) nor spend the service's OpenAI key; clients that are not browsers
  send no `Origin` and are not affected.

API keys are read from `Authorization` alone (api/auth.py), never from a cookie or the query
string, so a browser never attaches one on its own.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from litestar import Request
from litestar.types import ASGIApp, Receive, Scope, Send

from api.errors import rag_error_handler
from rag.errors import CrossOriginRefused, HostNotAllowed, InvalidPath, RagError

__all__ = ["request_guard"]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SEPARATORS = re.compile(r"[/\\]")
_MAX_DECODES = 4
"""Percent-decoding rounds: `%252e` is `%2e` after one and `.` after two; more than this is refused."""


def has_dot_segment(raw_path: bytes) -> bool:
    """Whether the path, decoded as any later hop might decode it, has a `.` or `..` segment."""
    text = raw_path.decode("latin-1")
    for _ in range(_MAX_DECODES):
        if any(part in (".", "..") for part in _SEPARATORS.split(text)):
            return True
        decoded = unquote(text, encoding="latin-1")
        if decoded == text:
            return False
        text = decoded
    return True  # still encoded after that many rounds: nothing honest looks like this


def _split_host(value: str) -> tuple[str, int | None] | None:
    """(lower-case host name, port or None) of a Host header value; None when malformed."""
    try:
        parts = urlsplit("//" + value.strip())
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def host_allowed(host: str, scope: Scope, allowed: tuple[str, ...]) -> bool:
    """The bound address, `localhost`, or an entry of RAG_ALLOWED_HOSTS (`*`: any)."""
    server = scope.get("server")
    bound = server[0].lower().strip("[]") if server else None
    return host in ("localhost", bound) or host in allowed or "*" in allowed


def _same_origin(origin: str, scheme: str, host: str, port: int | None) -> bool:
    try:
        parts = urlsplit(origin.strip())
        origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return False
    return (parts.scheme, (parts.hostname or "").lower(), origin_port) == (
        scheme, host, port or DEFAULT_PORTS.get(scheme))


def request_guard(app: ASGIApp) -> ASGIApp:
    """ASGI middleware applying the path, Host and Origin checks above to every HTTP request."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        try:
            _check(scope)
        except RagError as e:
            # Answered here, through `send`, so the outer middleware (security headers) still applies.
            request: Request = Request(scope, receive)
            await rag_error_handler(request, e).to_asgi_response(None, request)(scope, receive, send)
            return
        await app(scope, receive, send)

    return middleware


def _check(scope: Scope) -> None:
    """Raises the error of the first check the request fails."""
    method = str(scope.get("method", ""))
    raw_path = scope.get("raw_path") or scope["path"].encode()
    if has_dot_segment(raw_path.split(b"?", 1)[0]):
        raise InvalidPath("the path has a '.' or '..' segment (plain or percent-encoded); send it resolved",
                          param="path")
    host_header = _header(scope, b"host")
    split = _split_host(host_header) if host_header is not None else None
    host, port = split if split is not None else (None, None)
    if host_header is not None:
        allowed: tuple[str, ...] = scope["app"].state.settings.allowed_hosts
        if host is None or not host_allowed(host, scope, allowed):
            raise HostNotAllowed(
                f"this service does not answer to the host {host_header[:100]!r}; add it to RAG_ALLOWED_HOSTS "
                "if it is this service's name", param="Host")
    origin = _header(scope, b"origin")
    if origin is not None and method in UNSAFE_METHODS:
        if host is None or not _same_origin(origin, scope["scheme"], host, port):
            raise CrossOriginRefused(
                f"a {method} from a page of another origin ({origin[:100]!r}) is refused; "
                "call the API from this service's own page or without an Origin header", param="Origin")

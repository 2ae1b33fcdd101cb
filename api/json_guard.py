"""JSON bodies are checked before any route decodes them: valid UTF-8, and nested no deeper than
RAG_MAX_JSON_DEPTH. Both used to surface from the decoder as a 500 (`UnicodeDecodeError`, and a
`RecursionError` at 1,000 levels) on every JSON route.

A `before_request` hook: it runs after the auth guard and before the handler's body is parsed,
and Litestar keeps the body it reads here for the handler.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import numpy as np
from litestar import Request

from rag.errors import InvalidInput, LimitExceeded

__all__ = ["check_json_body", "json_guard"]

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def check_json_body(body: bytes, max_depth: int) -> None:
    """Raise `InvalidInput` for a body that is not UTF-8 and `LimitExceeded` for one nested
    deeper than `max_depth`. Neither decodes the JSON: its syntax is the route's to judge."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the body is not valid UTF-8 (byte 0x{body[e.start]:02x} at position {e.start}); "
                           "JSON must be sent as UTF-8", param="body") from None
    # Brackets inside strings do not nest; the rest, in order, give the depth as a running sum.
    brackets = np.frombuffer(_STRING.sub(b"", body).translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if brackets.size == 0:
        return
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    depth = int(np.cumsum(steps).max())
    if depth > max_depth:
        raise LimitExceeded(f"the JSON body is nested {depth:,} levels deep; the limit is {max_depth} "
                            "(RAG_MAX_JSON_DEPTH)", param="body")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def json_guard(max_depth: int) -> Callable[[Request], Awaitable[None]]:
    """The hook for an app: checks the body of every POST, PUT or PATCH sent as JSON (or with no
    content type, which the upload route reads as JSON)."""

    async def guard(request: Request) -> None:
        if request.method not in _BODY_METHODS:
            return
        content_type = request.headers.get("content-type", "")
        if content_type and not _is_json(content_type):
            return
        body = await request.body()
        if body:
            check_json_body(body, max_depth)

    return guard

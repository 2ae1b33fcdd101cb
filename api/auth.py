"""Bearer-key auth: with RAG_API_KEYS set, every route but the public ones needs a key."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler


def require_api_key(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    keys: tuple[str, ...] = connection.app.state.settings.api_keys
    if not keys or handler.opt.get("public"):
        return
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("missing API key: send 'Authorization: Bearer <key>'")
    # Compare against every key in constant time so timing does not reveal a prefix.
    if not any(hmac.compare_digest(token.strip().encode(), k.encode()) for k in keys):
        raise NotAuthorizedException("invalid API key")

"""An unknown query parameter on the service's own routes is a 400 that names it.

Litestar ignores query parameters a handler does not declare, so a typo (`?sorce=notes/a.txt`,
`?limt=5`) silently does something else: on `DELETE …/documents` it would be refused anyway, but on
a listing it returns the whole collection. The guard compares the request's query keys with what
the handler declares (its signature, less path parameters, dependencies and Litestar's reserved
names). Only the API's routes (those in the OpenAPI document) are checked; routes whose `opt` has
`relay_query` (the OpenAI passthrough) relay query strings as they are.
"""

from __future__ import annotations

from functools import cache

from litestar.connection import ASGIConnection
from litestar.constants import RESERVED_KWARGS
from litestar.handlers.base import BaseRouteHandler
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.params import KwargDefinition, ParameterKwarg

from rag.errors import InvalidInput

__all__ = ["RELAY_QUERY", "reject_unknown_query"]

RELAY_QUERY = "relay_query"
"""The `opt` key of routes that pass their query string on unread."""


@cache
def _declared(handler: HTTPRouteHandler, path_params: frozenset[str]) -> frozenset[str]:
    """The query keys `handler` reads (by their wire names)."""
    dependencies = set(handler.resolve_dependencies())
    names: set[str] = set()
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name in RESERVED_KWARGS or name in dependencies or name in path_params or name == "self":
            continue
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg) and (kwarg.header or kwarg.cookie):
            continue
        if isinstance(kwarg, KwargDefinition) and not isinstance(kwarg, ParameterKwarg):
            continue  # a body (`Body(...)`), not a query parameter
        names.add(kwarg.query if isinstance(kwarg, ParameterKwarg) and kwarg.query else name)
    return frozenset(names)


def reject_unknown_query(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Guard: 400 `invalid_input` naming the first query parameter the route does not take."""
    if (not isinstance(handler, HTTPRouteHandler) or not connection.query_params or handler.opt.get(RELAY_QUERY)
            or not handler.resolve_include_in_schema()):
        return  # not an API route: the page, its assets (`?v=2` busts a cache), the docs, /metrics
    known = _declared(handler, frozenset(connection.path_params))
    for key in connection.query_params:
        if key not in known:
            takes = ", ".join(sorted(known)) or "none"
            raise InvalidInput(f"unknown query parameter {key!r}; this route takes: {takes}", param=key)

"""The one place errors become HTTP responses.

Routes under /v1 answer in OpenAI's error shape, so OpenAI's SDKs raise their usual classes; the
rest answer `{"error": {"message", "type", "param"}}` too, so clients need one parser. No user
mistake may surface as a 500.
"""

from __future__ import annotations

import logging
import re

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from rag import errors

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[Exception], int, str]] = [
    (errors.NotFound, 404, "not_found_error"),
    (errors.AlreadyExists, 409, "conflict_error"),
    (errors.EmbedderMismatch, 409, "embedder_mismatch"),
    (errors.UnsupportedFile, 415, "unsupported_file"),
    (errors.UnreadableFile, 400, "invalid_request_error"),
    (errors.InvalidInput, 400, "invalid_request_error"),
    (errors.MissingCredentials, 503, "missing_credentials"),
    (errors.ConfigError, 503, "configuration_error"),
]


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, type_: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message, type_, param), status_code=status, media_type=MediaType.JSON,
                    headers=headers)


def rag_error_handler(_: Request, exc: errors.RagError) -> Response:
    if isinstance(exc, errors.UpstreamError):
        headers = {"x-request-id": exc.request_id} if exc.request_id else None
        kind = {429: "rate_limit_error", 504: "timeout_error"}.get(exc.status, "upstream_error")
        return error_response(exc.status, str(exc), kind, headers=headers)
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            return error_response(status, str(exc), kind, getattr(exc, "param", None))
    log.exception("unmapped service error", exc_info=exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, str(exc), "server_error")


def http_error_handler(_: Request, exc: HTTPException) -> Response:
    param = None
    message = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0] if isinstance(exc.extra[0], dict) else {}
        param = first.get("key")
        # msgspec names a missing field only in its message: "Object missing required field `query`".
        missing = re.search(r"missing required field `([^`]+)`", str(first.get("message", "")))
        if missing:
            param = missing.group(1)
        message = "; ".join(
            f"{e.get('key') or 'body'}: {e.get('message')}" for e in exc.extra if isinstance(e, dict)
        ) or exc.detail
    kind = "authentication_error" if isinstance(exc, NotAuthorizedException) else "invalid_request_error"
    if exc.status_code >= 500:
        kind = "server_error"
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", "Bearer")
    return error_response(exc.status_code, message, kind, param, headers=headers or None)


def unexpected_error_handler(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal error", "server_error")


EXCEPTION_HANDLERS = {
    errors.RagError: rag_error_handler,
    HTTPException: http_error_handler,
    HTTP_500_INTERNAL_SERVER_ERROR: unexpected_error_handler,
}

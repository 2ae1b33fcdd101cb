"""The one place errors become HTTP responses.

Every error body is OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so OpenAI's
SDKs raise their usual classes and other clients need one parser. The service's own errors say how
they are reported (`status`, `type`, `code`, `param`: see `rag/errors.py`); this module only reads
those attributes, and translates Litestar's own exceptions (validation, auth, routing, body size)
into the same shape. No user mistake may surface as a 500.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap
from msgspec import UNSET, Meta, UnsetType

from api.request_id import UPSTREAM_HEADER
from api.responses import DocumentAccepted
from rag import errors

__all__ = ["EXCEPTION_HANDLERS", "ErrorBody", "ErrorDetail", "RejectedFile", "error_response", "path_param"]

log = logging.getLogger(__name__)


class RejectedFile(msgspec.Struct, kw_only=True):
    """A file of an upload that cannot be read, and why."""

    name: str
    error: str
    code: Annotated[str, Meta(description="`unsupported_file` or `unreadable_file`.")]


class ErrorDetail(msgspec.Struct, kw_only=True):
    """What went wrong, in OpenAI's error shape (plus `files`, `documents` or `loading` where they apply).

    Field descriptions are `Meta`s, so they reach the OpenAPI document.
    """

    message: Annotated[str, Meta(description="A sentence that says what to fix.")]
    type: Annotated[str, Meta(description=(
        "OpenAI's error type (`invalid_request_error`, `not_found_error`, `rate_limit_error`, ...)."))]
    param: Annotated[str | None, Meta(description="The request field at fault, when there is one (always, for a 400).")]
    code: Annotated[str | None, Meta(description=(
        "Stable machine-readable code, e.g. `collection_not_found`, `embedder_mismatch`."))]
    files: Annotated[list[RejectedFile] | UnsetType, Meta(description=(
        "An upload refused whole (`files_rejected`): each unreadable or unsupported file."))] = UNSET
    documents: Annotated[list[DocumentAccepted] | UnsetType, Meta(description=(
        "An upload waited for that failed (`ingest_failed`): every document's status."))] = UNSET
    loading: Annotated[list[str] | UnsetType, Meta(description=(
        "The server is still loading (`not_ready`): what, in words."))] = UNSET


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error response's body."""

    error: ErrorDetail


# Litestar's own exceptions, by status: (OpenAI type, stable code).
_HTTP_KINDS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_input"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "route_not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "upload_too_large"),
    415: ("unsupported_file", "unsupported_media_type"),
}


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None,
               **details: object) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **details}}


def error_response(status: int, message: str, type_: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None, **details: object) -> Response:
    return Response(error_body(message, type_, param, code, **details), status_code=status,
                    media_type=MediaType.JSON, headers=headers)


def path_param(exc: msgspec.ValidationError | str) -> str | None:
    """The field a msgspec validation message names: "... - at `$.documents[0].text`" gives
    `documents[0].text`; "Object missing required field `query`" gives `query`."""
    message = str(exc)
    at = re.search(r"at `\$\.?([^`]*)`", message)
    missing = re.search(r"missing required field `([^`]+)`", message)
    if at and missing:
        return f"{at.group(1)}.{missing.group(1)}" if at.group(1) else missing.group(1)
    if missing:
        return missing.group(1)
    if at:
        return at.group(1) or None
    return None


def rag_error_handler(_: Request, exc: errors.RagError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, errors.UpstreamError) and exc.request_id:
        # x-request-id is the service's own (api/request_id.py); the upstream's travels beside it.
        headers[UPSTREAM_HEADER] = exc.request_id
    if isinstance(exc, errors.ConfigError):
        # The service's own configuration is at fault: OpenAI's SDKs honour this and do not retry.
        headers["x-should-retry"] = "false"
    if exc.retry_after_s is not None:
        headers["retry-after"] = str(exc.retry_after_s)
    if exc.status >= 500 and not isinstance(exc, errors.UpstreamError | errors.ConfigError | errors.NotReady
                                            | errors.Overloaded):
        log.error("service error: %s", exc, exc_info=exc)
    return error_response(exc.status, str(exc), exc.type, exc.param, exc.code, headers=headers or None,
                          **exc.details)


def http_error_handler(_: Request, exc: HTTPException) -> Response:
    param = None
    message = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0] if isinstance(exc.extra[0], dict) else {}
        param = first.get("key")
        # msgspec names a missing field only in its message: "Object missing required field `query`".
        param = path_param(str(first.get("message", ""))) or param
        message = "; ".join(
            f"{e.get('key') or 'body'}: {e.get('message')}" for e in exc.extra if isinstance(e, dict)
        ) or exc.detail
        if param is None:
            param = "body"
    kind, code = _HTTP_KINDS.get(exc.status_code, ("invalid_request_error", "invalid_request"))
    if exc.status_code >= 500:
        kind, code = "server_error", "internal_error"
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", "Bearer")
    return error_response(exc.status_code, message, kind, param, code, headers=headers or None)


def unexpected_error_handler(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal error", "server_error", code="internal_error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    errors.RagError: rag_error_handler,
    HTTPException: http_error_handler,
    HTTP_500_INTERNAL_SERVER_ERROR: unexpected_error_handler,
}

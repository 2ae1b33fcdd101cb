"""The error tree every layer raises, and the one contract every front end reads from it.

Each class carries, as data, what a front end needs to report it: the HTTP `status`, OpenAI's error
`type`, a stable `code` that clients may branch on, and the command line's `exit_code`. The HTTP
layer (`api/errors.py`) and the CLI read these attributes and keep no tables of their own. Status
and exit code live here as openai-python puts `status_code` on its error classes: they are facts
about the error, and no HTTP code runs in `rag/`.

`param` names the offending input field when there is one (a 400 always names it).
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists", "CollectionExists", "CollectionNotFound", "ConfigError", "DocumentNotFound",
    "EXIT_CODES", "EmbedderMismatch", "FilesRejected", "IngestFailed", "InputTooLong", "InvalidInput",
    "MigrationError",
    "MissingCredentials", "NotReady", "ModelNotFound", "NotFound", "RagError", "UnreadableFile", "UnsupportedFile",
    "UpstreamError", "UpstreamRateLimited", "UpstreamRefused", "UpstreamTimeout", "UpstreamUnavailable",
    "CrossOriginRefused", "Forbidden", "HostNotAllowed", "InvalidPath", "Overloaded", "UpstreamMalformed",
]

EXIT_CODES = {
    0: "success",
    1: "some files failed to ingest (each is named on stderr); `rag eval` could not score the whole data set",
    2: "usage error or invalid input",
    3: "not found (collection, document, model)",
    4: "conflict (already exists, other embedder)",
    5: "configuration (missing key, bad setting, database schema, `rag serve` port in use)",
    6: "upstream failure (OpenAI-compatible server: rate limited, timed out, unavailable)",
    130: "interrupted (Ctrl-C); what was committed is kept, and the same command resumes",
}
"""The `rag` command's exit statuses, by meaning (the README lists the same)."""


class RagError(Exception):
    """Base of every error this service raises on purpose."""

    status: int = 500
    """HTTP status the API answers with."""
    type: str = "server_error"
    """OpenAI's error `type` (what OpenAI's SDKs and existing clients read)."""
    code: str = "internal_error"
    """Stable machine-readable code; never changes meaning once shipped."""
    exit_code: int = 1
    """Exit status of the `rag` command."""

    details: dict[str, object]
    """Structured detail a front end adds to its error body (e.g. which files failed)."""

    retry_after_s: int | None = None
    """Seconds after which a retry may succeed (the API's `Retry-After` header), when known."""

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param
        self.details = {}

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(RagError):
    """A setting is missing or malformed."""

    status, type, code, exit_code = 503, "configuration_error", "configuration_error", 5


class MissingCredentials(ConfigError):
    """An OpenAI feature was asked for but OPENAI_API_KEY is not set."""

    type, code = "missing_credentials", "missing_credentials"


class MigrationError(ConfigError):
    """The database's schema cannot be brought to this version's (newer, or a step failed)."""

    code = "migration_failed"


class NotReady(RagError):
    """The server is still loading (the model, the indexes); `details["loading"]` says what."""

    status, type, code, exit_code = 503, "service_unavailable", "not_ready", 5

    def __init__(self, loading: list[str]):
        super().__init__("still loading: " + ", ".join(loading))
        self.details = {"loading": list(loading)}


class InvalidInput(RagError, ValueError):
    """The caller's input is malformed; the message says why and `param` names the field."""

    status, type, code, exit_code = 400, "invalid_request_error", "invalid_input", 2


class InputTooLong(InvalidInput):
    """A text exceeds what the embedder reads and truncation was not allowed."""

    code = "input_too_long"


class NotFound(RagError):
    """A named thing does not exist."""

    status, type, code, exit_code = 404, "not_found_error", "not_found", 3


class CollectionNotFound(NotFound):
    """No collection by that name."""

    code = "collection_not_found"


class DocumentNotFound(NotFound):
    """No document by that id in the collection."""

    code = "document_not_found"


class ModelNotFound(NotFound):
    """No model by that name is served here."""

    code = "model_not_found"


class AlreadyExists(RagError):
    """A thing by that name exists already."""

    status, type, code, exit_code = 409, "conflict_error", "already_exists", 4


class CollectionExists(AlreadyExists):
    """A collection by that name exists already."""

    code = "collection_exists"


class EmbedderMismatch(RagError):
    """The collection was built with another embedder; its vectors cannot be mixed."""

    status, type, code, exit_code = 409, "embedder_mismatch", "embedder_mismatch", 4


class UnsupportedFile(RagError):
    """A file's type has no loader."""

    status, type, code, exit_code = 415, "unsupported_file", "unsupported_file", 2


class UnreadableFile(RagError):
    """A file could not be parsed: empty, encrypted or corrupt."""

    status, type, code, exit_code = 400, "invalid_request_error", "unreadable_file", 2


class FilesRejected(RagError):
    """Some files of an upload cannot be read, so none of it was ingested; `details["files"]`
    names each with its reason. 415 when any has an unsupported type, else 400."""

    status, type, code, exit_code = 400, "invalid_request_error", "files_rejected", 2

    def __init__(self, failures: list[tuple[str, RagError]]):
        super().__init__("nothing was ingested: " + "; ".join(str(e) for _, e in failures), param="files")
        if any(isinstance(e, UnsupportedFile) for _, e in failures):
            self.status, self.type = UnsupportedFile.status, UnsupportedFile.type
        self.details = {"files": [{"name": n, "error": str(e), "code": e.code} for n, e in failures]}


class IngestFailed(RagError):
    """Documents the caller waited for failed; it answers with the first failure's meaning (an
    upstream embedder's 429 stays 429) and `details["documents"]` lists every document's status."""

    type, code, exit_code = "ingest_failed", "ingest_failed", 1

    def __init__(self, message: str, *, first: RagError, documents: list[dict[str, object]]):
        super().__init__(message, param="documents")
        self.status = first.status
        self.details = {"documents": documents}


class UpstreamError(RagError):
    """An upstream (OpenAI-compatible) server failed; `request_id` is the upstream's own id."""

    status, type, code, exit_code = 502, "upstream_error", "upstream_error", 6

    def __init__(self, message: str, *, request_id: str | None = None, param: str | None = None):
        super().__init__(message, param=param)
        self.request_id = request_id

    @staticmethod
    def for_status(status: int, message: str, *, request_id: str | None = None) -> UpstreamError:
        """The error class that reports `status` (as carried by a streamed `error` event)."""
        cls = {429: UpstreamRateLimited, 504: UpstreamTimeout}.get(status, UpstreamUnavailable)
        return cls(message, request_id=request_id)


class UpstreamRefused(UpstreamError):
    """The upstream refused the service's own request (bad key, unknown model): a 502 for the
    caller, since the fix is in the service's configuration, not in the request."""

    code = "upstream_refused"


class UpstreamRateLimited(UpstreamError):
    """The upstream kept answering 429 after the retries."""

    status, type, code = 429, "rate_limit_error", "upstream_rate_limited"


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""

    status, type, code = 504, "timeout_error", "upstream_timeout"


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached or answered with a server error."""

    code = "upstream_unavailable"


class InvalidPath(InvalidInput):
    """A request path holds a `.` or `..` segment (plain or percent-encoded): refused before routing."""

    code = "invalid_path"


class HostNotAllowed(InvalidInput):
    """The request's Host is not the bound address, `localhost` or an entry of RAG_ALLOWED_HOSTS
    (a DNS-rebinding page would send its own name)."""

    code = "host_not_allowed"


class Forbidden(RagError):
    """The request is understood but refused."""

    status, type, code, exit_code = 403, "permission_error", "forbidden", 2


class CrossOriginRefused(Forbidden):
    """A state-changing request came from a page of another origin (its `Origin` is not this service's)."""

    code = "cross_origin_refused"


class Overloaded(RagError):
    """Every worker of a kind of work is busy and its waiting line is full; retry after `retry_after_s`."""

    status, type, code, exit_code = 503, "overloaded_error", "overloaded", 1

    def __init__(self, message: str, *, retry_after_s: int = 1):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UpstreamMalformed(UpstreamError):
    """The upstream answered, but not in the shape asked for (an unexpected status, invalid JSON, an
    empty body, HTML, a plain reply where a stream was asked for, missing fields)."""

    code = "upstream_malformed"

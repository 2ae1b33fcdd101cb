"""The error tree every layer raises. The CLI maps it to exit codes, the API to HTTP statuses."""

from __future__ import annotations


class RagError(Exception):
    """Base of every error this service raises on purpose."""


class ConfigError(RagError):
    """A setting is missing or malformed."""


class MissingCredentials(ConfigError):
    """An OpenAI feature was asked for but OPENAI_API_KEY is not set."""


class InvalidInput(RagError, ValueError):
    """The caller's input is malformed; the message says which field and why."""


class NotFound(RagError):
    """A named thing does not exist."""


class CollectionNotFound(NotFound):
    """No collection by that name."""


class DocumentNotFound(NotFound):
    """No document by that id in the collection."""


class AlreadyExists(RagError):
    """A thing by that name exists already."""


class EmbedderMismatch(RagError):
    """The collection was built with another embedder; its vectors cannot be mixed."""


class UnsupportedFile(RagError):
    """A file's type has no loader."""


class UnreadableFile(RagError):
    """A file could not be parsed: empty, encrypted or corrupt."""


class InputTooLong(InvalidInput):
    """A text exceeds what the embedder reads and truncation was not allowed."""


class UpstreamError(RagError):
    """An upstream (OpenAI-compatible) server failed; `status` is the HTTP status to answer with."""

    status: int = 502

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.request_id = request_id


class UpstreamRateLimited(UpstreamError):
    """The upstream kept answering 429 after the retries."""

    status = 429


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""

    status = 504


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached or answered with a server error."""

    status = 502

"""Checks on what an OpenAI-compatible upstream answers, before anything of it is used.

The SDK builds its response objects without validating them, and it returns whatever a 200 holds:
an HTML error page, an empty body, plain JSON where a stream was asked for. Read unchecked, such a
reply became an empty answer with status 200 or a Python error ("'NoneType' object is not
iterable"). Here every reply is held to the shape asked for, and anything else raises
`UpstreamMalformed` (502) naming what was wrong: the status, the content type, the JSON, the
missing or mistyped field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from rag.errors import UpstreamMalformed

__all__ = ["HTTPResponse", "check_reply", "chunk_parts", "embedding_rows", "json_reply", "stream_data"]

EVENT_STREAM = "text/event-stream"
JSON = "application/json"
DONE = "[DONE]"
_EXCERPT = 80


class HTTPResponse(Protocol):
    """What is read of the SDK's raw HTTP response (httpx's, or httpx2's in newer SDKs)."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def read(self) -> bytes: ...
    def iter_lines(self) -> Iterator[str]: ...
    def close(self) -> None: ...


def _request_id(response: HTTPResponse) -> str | None:
    return response.headers.get("x-request-id")


def _malformed(response: HTTPResponse, what: str) -> UpstreamMalformed:
    return UpstreamMalformed(f"the OpenAI upstream sent a malformed reply: {what}", request_id=_request_id(response))


def _excerpt(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return repr(text[:_EXCERPT] + ("..." if len(text) > _EXCERPT else ""))


def check_reply(response: HTTPResponse, media_type: str) -> None:
    """Status 200 and a body of `media_type` (`application/json` or `text/event-stream`)."""
    if response.status_code != 200:
        raise _malformed(response, f"status {response.status_code} where 200 was expected")
    content_type = response.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != media_type:
        asked = "an event stream" if media_type == EVENT_STREAM else "JSON"
        raise _malformed(response, f"{content_type or 'no content type'} where {asked} ({media_type}) was asked for")


def json_reply(response: HTTPResponse) -> dict[str, Any]:
    """The body of a checked JSON reply, which must be a JSON object."""
    check_reply(response, JSON)
    body = response.read()
    if not body.strip():
        raise _malformed(response, "an empty body")
    try:
        data = json.loads(body)
    except ValueError:
        raise _malformed(response, f"invalid JSON {_excerpt(body)}") from None
    if not isinstance(data, dict):
        raise _malformed(response, f"JSON {type(data).__name__} where an object was expected")
    return data


def stream_data(response: HTTPResponse) -> Iterator[dict[str, Any] | None]:
    """Each event's `data` of a checked event stream, decoded, then None for `[DONE]` (and no more).

    Raises `UpstreamMalformed` for data that is not a JSON object and for an `error` the upstream
    sends mid-stream. A stream that ends without `[DONE]` just ends: the caller decides whether
    what came was complete (a chat chunk's `finish_reason` says so).
    """
    check_reply(response, EVENT_STREAM)
    lines: list[str] = []
    try:
        for line in response.iter_lines():
            if line.startswith("data:"):
                lines.append(line[5:].removeprefix(" "))
            elif not line and lines:
                event = _event(response, "\n".join(lines))
                lines = []
                yield event
                if event is None:
                    return
            # other fields (event, id, retry), comments and blank lines between events: skipped
        if lines:  # the last event had no blank line after it
            yield _event(response, "\n".join(lines))
    finally:
        response.close()


def _event(response: HTTPResponse, data: str) -> dict[str, Any] | None:
    if data.strip() == DONE:
        return None
    try:
        event = json.loads(data)
    except ValueError:
        raise _malformed(response, f"an event that is not JSON: {_excerpt(data)}") from None
    if not isinstance(event, dict):
        raise _malformed(response, f"an event that is a JSON {type(event).__name__}, not an object")
    error = event.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        raise UpstreamMalformed(f"the OpenAI upstream failed mid-stream: {str(message)[:500]}",
                                request_id=_request_id(response))
    return event


def chunk_parts(response: HTTPResponse, chunk: dict[str, Any]) -> tuple[str | None, list[str], bool, dict | None]:
    """(model, the delta texts, whether a choice finished, usage) of one chat completion chunk."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise _malformed(response, f"a chunk whose `choices` is {type(choices).__name__}, not a list")
    texts: list[str] = []
    finished = False
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise _malformed(response, "a chunk choice without a `delta` object")
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise _malformed(response, f"a delta whose `content` is {type(content).__name__}, not text")
        if content:
            texts.append(content)
        finished = finished or choice.get("finish_reason") is not None
    model = chunk.get("model")
    usage = chunk.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise _malformed(response, f"a chunk whose `usage` is {type(usage).__name__}, not an object")
    return (model if isinstance(model, str) else None), texts, finished, usage


def embedding_rows(response: HTTPResponse, count: int) -> list[str | list[float]]:
    """The `embedding` of each of `count` inputs, in input order, from a checked embeddings reply."""
    data = json_reply(response).get("data")
    if not isinstance(data, list):
        raise _malformed(response, f"`data` is {type(data).__name__}, not a list of embeddings")
    rows: dict[int, str | list[float]] = {}
    for item in data:
        index = item.get("index") if isinstance(item, dict) else None
        embedding = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(index, int) or isinstance(index, bool):
            raise _malformed(response, "an embedding without an integer `index`")
        if not (isinstance(embedding, str) or (isinstance(embedding, list) and embedding
                                                and all(isinstance(v, int | float) for v in embedding))):
            raise _malformed(response, f"embedding {index} is neither base64 text nor a list of numbers")
        rows[index] = embedding
    if sorted(rows) != list(range(count)) or len(data) != count:
        raise _malformed(response, f"{len(data)} embeddings for {count} inputs")
    return [rows[i] for i in range(count)]

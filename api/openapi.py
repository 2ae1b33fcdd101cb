"""What the OpenAPI document says that Litestar cannot derive from a handler's signature.

Litestar documents a route's success response from the handler's return type, and adds a 400 in
its own `{status_code, detail}` shape to every route with parameters. This service answers every
error in one shape (`api.errors.ErrorBody`), streams server-sent events beside JSON on two routes,
and reads the upload body itself. `documented(...)` gives a route handler the `responses` and
`operation_class` that say so:

- each error status the route can answer, with `ErrorBody`, and no other (401 unless public);
- an event stream as a second media type of the success response (`EventStream`): the body is a
  string, and `x-itemSchema` describes each event as OpenAPI 3.2's `itemSchema` does (`event`,
  `data`; JSON data under `contentSchema`), which 3.1 has no field for;
- a request body the handler parses itself;
- for the passthrough routes, that they relay the upstream's answers unchanged (opaque).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, RequestBody, Schema

from api.errors import ErrorBody

__all__ = ["ERROR_DESCRIPTIONS", "UPSTREAM_ERRORS", "Documented", "Event", "EventStream", "InlineSchema",
           "documented", "json_schema"]

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid input: `message` says what to fix and `param` names the field.",
    401: "A missing or invalid API key (when the server sets RAG_API_KEYS).",
    404: "No such collection, document or model: `code` says which.",
    409: "A conflict: the collection exists already, or was built with another embedder.",
    413: "The request body exceeds RAG_MAX_UPLOAD_MB.",
    415: "A file type with no loader, or a body that is neither multipart/form-data nor JSON.",
    429: "The OpenAI upstream kept answering 429 after the retries.",
    502: "The OpenAI upstream failed, could not be reached, or refused the service's own request.",
    503: "Not configured for this: OPENAI_API_KEY is needed and not set (sent with `x-should-retry: false`); "
         "on /health/ready, still loading (`not_ready`, `loading` says what); or busy: every worker for this kind "
         "of request is taken and RAG_QUEUE_LIMIT wait (`code` `overloaded`, with `Retry-After`).",
    504: "The OpenAI upstream did not answer in time.",
}
"""What each error status means, wherever a route answers it (the body is always `ErrorBody`)."""

UPSTREAM_ERRORS = (429, 502, 503, 504)
"""What a route that may call the OpenAI upstream (an openai-embedder collection, a chat model)
answers when that fails."""

EVENT_STREAM = "text/event-stream"


@dataclass
class InlineSchema(Schema):
    """A JSON Schema given whole, where Litestar's registry of components cannot be reached."""

    value: dict[str, Any] = field(default_factory=dict)

    def to_schema(self) -> dict[str, Any]:
        return self.value


def json_schema(type_: Any) -> dict[str, Any]:
    """The JSON Schema of `type_` as msgspec (which encodes and decodes it) sees it, with every
    `$ref` inlined, so it can stand anywhere in the document."""
    (top,), components = msgspec.json.schema_components([type_], ref_template="{name}")

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(components[node["$ref"]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(top)
    return result


@dataclass(frozen=True)
class Event:
    """One kind of server-sent event."""

    name: str | None
    """Its `event:` field; None when it has none (an EventSource reports it as `message`)."""
    data: type | str
    """The type whose JSON is the event's `data`, or the literal `data` (OpenAI's `[DONE]`)."""
    description: str

    def item_schema(self) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required = ["data"]
        if self.name is not None:
            properties["event"] = {"const": self.name}
            required.append("event")
        if isinstance(self.data, str):
            properties["data"] = {"const": self.data}
        else:
            properties["data"] = {"type": "string", "contentMediaType": "application/json",
                                  "contentSchema": json_schema(self.data)}
        return {"title": self.name or (self.data if isinstance(self.data, str) else self.data.__name__),
                "description": self.description, "type": "object", "properties": properties,
                "required": required}


@dataclass(frozen=True)
class EventStream:
    """A `text/event-stream` answer beside the JSON one, on the same status."""

    description: str
    events: tuple[Event, ...]
    status: int = 200

    def media_type(self) -> OpenAPIMediaType:
        events = [e.item_schema() for e in self.events]
        # Before OpenAPI 3.2's `itemSchema`, tools read a stream's `schema` as the schema of each
        # event (schemathesis validates every event against it), so both say the same.
        return _EventStreamMediaType(
            schema=InlineSchema(value={"description": self.description, "anyOf": events}),
            item_schema=InlineSchema(value={"anyOf": events}),
        )


@dataclass
class _EventStreamMediaType(OpenAPIMediaType):
    item_schema: Schema | None = field(default=None, metadata={"alias": "x-itemSchema"})


class Documented(TypedDict):
    """Keyword arguments of a route handler decorator."""

    responses: dict[int, ResponseSpec]
    operation_class: type[Operation]


def documented(*errors: int, public: bool = False, stream: EventStream | None = None,
               request_body: RequestBody | None = None, responses: Mapping[int, ResponseSpec] | None = None,
               opaque: str | None = None) -> Documented:
    """A route's `responses` and `operation_class`: the error statuses it answers (401 added unless
    the route is `public`), an event stream beside its JSON, a body it parses itself, other
    `responses` (a second success status), or, for a route that relays another server's answers,
    `opaque`: what it relays, documented as the `default` response in place of a success schema."""
    declared = set(errors) if public else {*errors, 401}
    specs = {status: ResponseSpec(data_container=ErrorBody, description=ERROR_DESCRIPTIONS[status],
                                  generate_examples=False)
             for status in sorted(declared)}
    specs.update(responses or {})

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            by_status = dict(self.responses or {})
            for status in list(by_status):
                # Litestar's own 400 ({status_code, detail}) on a route that cannot answer 400.
                if int(status) >= 400 and int(status) not in declared:
                    del by_status[status]
            if stream is not None:
                success = by_status[str(stream.status)]
                if not isinstance(success, OpenAPIResponse):
                    raise TypeError(f"the {stream.status} response is a reference; an event stream cannot be added")
                success.content = {**(success.content or {}), EVENT_STREAM: stream.media_type()}
            if opaque is not None:
                for status in [s for s in by_status if s.startswith("2")]:
                    del by_status[status]
                # A media type range with no schema: any body, in any content type.
                by_status["default"] = OpenAPIResponse(description=opaque, content={"*/*": OpenAPIMediaType()})
            self.responses = by_status
            if request_body is not None:
                self.request_body = request_body

    return {"responses": specs, "operation_class": DocumentedOperation}

"""A real HTTP server on 127.0.0.1 that speaks OpenAI's wire format, for tests.

It is a small plain-ASGI application served by uvicorn in a background thread (one per test
session), reset before every test. It records every request it receives, byte for byte, so a test
can assert on what was sent (prompts, headers, uploads), and it can be told to misbehave:

    def test_something(openai_server):
        openai_server.set_reply("Paris [1].")         # the next chat completion's text
        openai_server.fail_next(429, times=1)          # the next request answers 429
        openai_server.slow_next(2.0)                   # the next request waits 2 s first
        gate = openai_server.hold_stream(after=1)      # streams stop after 1 event until gate.set()
        ... client with base_url=openai_server.url ...
        openai_server.requests[-1].json()["messages"]

Endpoints live in one routing table (`ROUTES`, filled by the `@route` decorator): add an endpoint by
writing one handler `async def handler(server, request, params) -> Reply`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pytest
import uvicorn

from rag.tokens import count_chat_tokens, encoding_for_model, get_encoding

__all__ = ["DEFAULT_REPLY", "FakeOpenAI", "RecordedRequest", "Reply", "fake_embedding", "openai_server"]

DEFAULT_REPLY = "This is the test server's reply."
EMBEDDING_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
UNKNOWN_MODEL_DIMENSIONS = 384
"""What any other embedding model name answers with (lets tests exercise dimension probing)."""
MODELS = ("gpt-5.4-mini", "gpt-5.4", "text-embedding-3-small", "text-embedding-3-large")
HOLD_LIMIT_S = 30.0
"""A held stream resumes by itself after this long, so a forgotten gate cannot hang the suite."""


# --------------------------------------------------------------------------- requests and replies


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: str
    """The raw query string, without the `?`."""
    headers: list[tuple[str, str]]
    """Header names lower-cased, in the order received (repeats kept)."""
    body: bytes
    received_at: float
    """`time.monotonic()` when the whole body had arrived."""
    started_at: float = 0.0
    """`time.monotonic()` when the request (headers) arrived: with `received_at`, shows an
    upload was streamed rather than sent after being buffered whole."""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in reversed(self.headers) if k == name), None)

    @property
    def query_params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What a handler answers: a whole body, or an async iterator of chunks (streamed)."""

    status: int = 200
    body: bytes | AsyncIterator[bytes] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_reply(obj: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    return Reply(status, json.dumps(obj).encode(), [("content-type", "application/json"), *headers])


def error_reply(status: int, message: str, type_: str, code: str | None = None,
                param: str | None = None, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """OpenAI's error shape, which the SDK turns into its exception classes."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json_reply(body, status, headers)


def sse_reply(server: FakeOpenAI, events: Iterable[Any], done: bool = True) -> Reply:
    """Server-sent events, honouring the server's stream pause and hold. An event is a dict (sent
    as JSON), a string (sent as is), or a `(name, data)` pair for an `event:` line as the
    Responses and Assistants APIs send; `done` appends OpenAI's `data: [DONE]` terminator."""

    async def body() -> AsyncIterator[bytes]:
        items = list(events)
        if done:
            items.append("[DONE]")
        for i, event in enumerate(items):
            await server._between_events(i)
            name, data = event if isinstance(event, tuple) else (None, event)
            line = f"event: {name}\n" if name else ""
            line += f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
            yield line.encode()

    return Reply(200, body(), [("content-type", "text/event-stream"), ("cache-control", "no-cache")])


Handler = Callable[["FakeOpenAI", RecordedRequest, dict[str, str]], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


ROUTES: list[Route] = []


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a handler for `method path`; `{name}` in the path matches one segment."""
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method.upper(), regex, handler))
        return handler

    return register


# --------------------------------------------------------------------------- faults


@dataclass
class _Fault:
    remaining: int
    path: str | None
    status: int | None = None
    body: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay_s: float = 0.0

    def matches(self, request: RecordedRequest) -> bool:
        return self.remaining > 0 and (self.path is None or request.path.startswith(self.path))


_DEFAULT_ERRORS = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to do this.", "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error",
          "model_not_found"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    503: ("The engine is currently overloaded.", "server_error", None),
}


# --------------------------------------------------------------------------- the server


class FakeOpenAI:
    """The test server's state and ASGI entry point (see the module docstring)."""

    def __init__(self) -> None:
        self.url = ""
        """Base URL for an OpenAI client, `http://127.0.0.1:PORT/v1` (set once it listens)."""
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.reset()

    # ---- per-test state

    def reset(self) -> None:
        """Forget requests, replies and faults; release any held stream."""
        with self._lock:
            self._generation = getattr(self, "_generation", 0) + 1
            self.requests: list[RecordedRequest] = []
            self.replies: list[str | Callable[[dict], str]] = []
            """Script of chat replies, used first to last; a callable gets the request body."""
            self.stream_pause_s = 0.0
            """Sleep between streamed events."""
            self.shuffle_embeddings = False
            """Answer embedding rows in reverse order (clients must sort by `index`)."""
            self.store: dict[str, dict[str, Any]] = {}
            """Objects created through the API, by id (used by the CRUD-style endpoints)."""
            self.blobs: dict[str, bytes] = {}
            """File and upload-part contents, by id."""
            self._faults: list[_Fault] = []
            for gate in getattr(self, "_holds", []):
                gate[1].set()
            self._holds: list[tuple[int, threading.Event]] = []

    def set_reply(self, *replies: str | Callable[[dict], str]) -> None:
        """Script the next chat completion replies (replacing any left); then DEFAULT_REPLY."""
        with self._lock:
            self.replies = list(replies)

    def fail_next(self, status: int, times: int = 1, *, body: Any = None,
                  headers: dict[str, str] | None = None, path: str | None = None,
                  retry_after_ms: int | None = 10) -> None:
        """The next `times` requests (under `path`, if given) answer `status` with OpenAI's error
        body (or `body`). A short `retry-after-ms` keeps the SDK's retries fast in tests;
        pass None to leave the SDK's own backoff."""
        extra = list((headers or {}).items())
        if retry_after_ms is not None:
            extra.append(("retry-after-ms", str(retry_after_ms)))
        with self._lock:
            self._faults.append(_Fault(times, path, status=status, body=body, headers=extra))

    def slow_next(self, seconds: float, times: int = 1, *, path: str | None = None) -> None:
        """The next `times` requests wait `seconds` before answering (normally)."""
        with self._lock:
            self._faults.append(_Fault(times, path, delay_s=seconds))

    def hold_stream(self, after: int = 1) -> threading.Event:
        """Streams stop after `after` events until the returned event is set (or 30 s pass)."""
        gate = threading.Event()
        with self._lock:
            self._holds.append((after, gate))
        return gate

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path is `path` (e.g. "/v1/embeddings")."""
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_test{next(self._ids):06d}"

    def next_reply(self, body: dict) -> str:
        with self._lock:
            reply = self.replies.pop(0) if self.replies else DEFAULT_REPLY
        return reply(body) if callable(reply) else reply

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake when the server is reset: a test's slow request must not outlive it."""
        generation, deadline = self._generation, time.monotonic() + seconds
        while time.monotonic() < deadline and self._generation == generation:
            await asyncio.sleep(min(0.01, max(0.0, deadline - time.monotonic())))

    async def _between_events(self, index: int) -> None:
        if index > 0 and self.stream_pause_s:
            await self._sleep(self.stream_pause_s)
        for after, gate in list(self._holds):
            if index == after:
                deadline = time.monotonic() + HOLD_LIMIT_S
                while not gate.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)

    def _take_faults(self, request: RecordedRequest) -> tuple[_Fault | None, float]:
        """The status fault to answer with, if any, and the delay to apply first."""
        delay, failure = 0.0, None
        with self._lock:
            for fault in self._faults:
                if not fault.matches(request):
                    continue
                if fault.status is None and not delay:
                    fault.remaining -= 1
                    delay = fault.delay_s
                elif fault.status is not None and failure is None:
                    fault.remaining -= 1
                    failure = fault
            self._faults = [f for f in self._faults if f.remaining > 0]
        return failure, delay

    # ---- ASGI

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return  # no lifespan or websockets
        started_at = time.monotonic()
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]],
            body=b"".join(chunks),
            received_at=time.monotonic(),
            started_at=started_at,
        )
        with self._lock:
            self.requests.append(request)
        reply = await self._answer(request)
        headers = [(b"x-request-id", self.new_id("req").encode())]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        try:
            if isinstance(reply.body, bytes):
                headers.append((b"content-length", str(len(reply.body)).encode()))
                await send({"type": "http.response.start", "status": reply.status, "headers": headers})
                await send({"type": "http.response.body", "body": reply.body})
                return
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            async for chunk in reply.body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except OSError:
            pass  # the client went away (a timeout test); nothing to answer

    async def _answer(self, request: RecordedRequest) -> Reply:
        failure, delay = self._take_faults(request)
        if delay:
            await self._sleep(delay)
        if failure is not None:
            if failure.body is not None:
                body = failure.body
                if not isinstance(body, bytes):
                    body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                return Reply(failure.status, body, [("content-type", "application/json"), *failure.headers])
            message, type_, code = _DEFAULT_ERRORS.get(failure.status, ("Test failure.", "server_error", None))
            return error_reply(failure.status, message, type_, code, headers=failure.headers)
        allowed = []
        # Fixed paths before patterns: /v1/threads/runs is not thread "runs".
        for candidate in sorted(ROUTES, key=lambda r: r.pattern.groups):
            match = candidate.pattern.match(request.path)
            if match:
                if candidate.method == request.method:
                    return await candidate.handler(self, request, match.groupdict())
                allowed.append(candidate.method)
        if allowed:
            return error_reply(405, f"Method {request.method} not allowed on {request.path}",
                               "invalid_request_error", headers=[("allow", ", ".join(allowed))])
        return error_reply(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error")


# --------------------------------------------------------------------------- endpoints


def fake_embedding(text: str, dimensions: int) -> np.ndarray:
    """The unit-norm float32 vector the server answers for `text` at its native `dimensions`
    (deterministic: seeded by the text's sha256)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return vector / np.linalg.norm(vector)


def expected_embedding(text: str, model: str = "text-embedding-3-small", dimensions: int | None = None) -> np.ndarray:
    """What the server answers for `text`: like OpenAI, a shortened vector is the full one cut to
    `dimensions` and renormalised."""
    vector = fake_embedding(text, EMBEDDING_DIMENSIONS.get(model, UNKNOWN_MODEL_DIMENSIONS))
    if dimensions:
        vector = vector[:dimensions] / np.linalg.norm(vector[:dimensions])
    return vector.astype(np.float32)


def _bad_request(message: str, param: str | None = None) -> Reply:
    return error_reply(400, message, "invalid_request_error", param=param)


@route("POST", "/v1/embeddings")
async def embeddings(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    """OpenAI's limits are enforced, so a client that breaks them fails here as it would there."""
    try:
        body = request.json()
    except ValueError:
        return _bad_request("We could not parse the JSON body of your request.")
    model, raw = body.get("model"), body.get("input")
    if not isinstance(model, str) or raw is None:
        return _bad_request("'model' and 'input' are required.")
    enc = get_encoding("cl100k_base")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        return _bad_request("'input' must be a string or a non-empty array.", "input")
    if len(raw) > 2048:
        return _bad_request(f"'input' has {len(raw)} items; at most 2048 are allowed.", "input")
    texts, total = [], 0
    for item in raw:
        if isinstance(item, list):
            ids = item
            texts.append(enc.decode(ids))
        elif isinstance(item, str) and item:
            ids = enc.encode(item, disallowed_special=())
            texts.append(item)
        else:
            return _bad_request("'input' cannot contain empty strings.", "input")
        if len(ids) > 8192:
            return _bad_request(f"This model's maximum context length is 8192 tokens, however you "
                                f"requested {len(ids)} tokens.", "input")
        total += len(ids)
    if total > 300_000:
        return _bad_request(f"Requested {total} tokens, max 300000 tokens per request", "input")
    dimensions = body.get("dimensions")
    native = EMBEDDING_DIMENSIONS.get(model, UNKNOWN_MODEL_DIMENSIONS)
    if dimensions is not None and (model == "text-embedding-ada-002" or not 1 <= dimensions <= native):
        return _bad_request(f"dimensions={dimensions} is not supported by {model}.", "dimensions")
    fmt = body.get("encoding_format", "float")
    data = []
    for i, text in enumerate(texts):
        vector = expected_embedding(text, model, dimensions)
        encoded = base64.b64encode(vector.astype("<f4").tobytes()).decode() if fmt == "base64" else vector.tolist()
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    if server.shuffle_embeddings:
        data.reverse()
    return json_reply({"object": "list", "data": data, "model": model,
                       "usage": {"prompt_tokens": total, "total_tokens": total}})


def _split_reply(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text) or [text]


@route("POST", "/v1/chat/completions")
async def chat_completions(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    try:
        body = request.json()
    except ValueError:
        return _bad_request("We could not parse the JSON body of your request.")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not isinstance(messages, list) or not messages:
        return _bad_request("'model' and a non-empty 'messages' are required.")
    reply = server.next_reply(body)
    prompt_tokens = count_chat_tokens(messages, model)
    completion_tokens = len(encoding_for_model(model).encode(reply, disallowed_special=()))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    ident, created = server.new_id("chatcmpl"), int(time.time())
    if not body.get("stream"):
        return json_reply({
            "id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": reply, "refusal": None}}],
            "usage": usage,
        })
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict, finish: str | None = None, choices: bool = True) -> dict:
        event: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created,
                                 "model": model, "choices": []}
        if choices:
            event["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        if include_usage:
            event["usage"] = None
        return event

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in _split_reply(reply)]
    events.append(chunk({}, "stop"))
    if include_usage:
        events.append({**chunk({}, choices=False), "usage": usage})
    return sse_reply(server, events)


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "test-server"}


@route("GET", "/v1/models")
async def list_models(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    return json_reply({"object": "list", "data": [_model(name) for name in MODELS]})


@route("GET", "/v1/models/{model}")
async def retrieve_model(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
    if params["model"] not in MODELS:
        return error_reply(404, f"The model '{params['model']}' does not exist", "invalid_request_error",
                           "model_not_found", "model")
    return json_reply(_model(params["model"]))


# --------------------------------------------------------------------------- passthrough endpoints
# Just enough of the Responses, Conversations, Assistants, Files, Uploads, Images and Audio APIs for
# the official SDK to parse what it gets: objects live in `server.store`, file bytes in `server.blobs`.


@dataclass
class Part:
    """One field of a multipart/form-data body."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode()


def parse_multipart(request: RecordedRequest) -> dict[str, list[Part]]:
    """The fields of a multipart/form-data body, by name (repeats kept, e.g. `image[]`)."""
    ctype = request.header("content-type") or ""
    match = re.search(r'boundary="?([^";]+)"?', ctype)
    if not ctype.startswith("multipart/form-data") or not match:
        raise ValueError(f"not a multipart/form-data body: {ctype!r}")
    fields: dict[str, list[Part]] = {}
    for section in request.body.split(b"--" + match.group(1).encode())[1:]:
        if section.startswith(b"--"):
            break  # the closing delimiter
        head, _, data = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in head.decode("utf-8").split("\r\n"))
        )
        disposition = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        part = Part(name.group(1) if name else "", filename.group(1) if filename else None,
                    headers.get("content-type"), data.removesuffix(b"\r\n"))
        fields.setdefault(part.name, []).append(part)
    return fields


def _form(request: RecordedRequest) -> tuple[dict[str, list[Part]] | None, Reply | None]:
    try:
        return parse_multipart(request), None
    except (ValueError, UnicodeDecodeError) as e:
        return None, _bad_request(str(e))


def _json_body(request: RecordedRequest) -> tuple[dict, Reply | None]:
    if not request.body:
        return {}, None
    try:
        body = request.json()
    except ValueError:
        return {}, _bad_request("We could not parse the JSON body of your request.")
    return (body, None) if isinstance(body, dict) else ({}, _bad_request("The body must be a JSON object."))


def _not_found(kind: str, ident: str) -> Reply:
    return error_reply(404, f"No {kind} found with id '{ident}'.", "invalid_request_error")


def _stored(server: FakeOpenAI, ident: str, kind: str) -> dict | None:
    obj = server.store.get(ident)
    return obj if obj is not None and obj.get("object") == kind else None


def _page(items: list[dict], request: RecordedRequest) -> dict:
    """OpenAI's cursor page, honouring `order` and `limit` (oldest first as stored)."""
    query = {k: v[-1] for k, v in request.query_params.items()}
    if query.get("order", "desc") == "desc":
        items = items[::-1]
    items = items[: int(query.get("limit", 20))]
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": False}


def _list_of(server: FakeOpenAI, kind: str, **scope: str) -> list[dict]:
    return [o for o in server.store.values()
            if o.get("object") == kind and all(o.get(k) == v for k, v in scope.items())]


def _crud(path: str, kind: str, prefix: str, make: Callable[[FakeOpenAI, dict, dict], dict],
          methods: str = "create list retrieve update delete") -> None:
    """Register create/list on `path` and retrieve/update/delete on `path/{id}` for one object
    kind; `make(server, body, params)` builds a new object's fields from the request body
    (`params` has the path's parameters and the new object's `id`)."""
    wanted = set(methods.split())
    scope_names = re.findall(r"\{(\w+)\}", path)

    async def create(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
        body, error = _json_body(request)
        if error:
            return error
        obj = {"id": server.new_id(prefix), "object": kind, "created_at": int(time.time()),
               **{k: params[k] for k in scope_names}}
        obj.update(make(server, body, {**params, "id": obj["id"]}))
        server.store[obj["id"]] = obj
        return json_reply(obj)

    async def list_(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
        return json_reply(_page(_list_of(server, kind, **{k: params[k] for k in scope_names}), request))

    async def one(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
        obj = _stored(server, params["object_id"], kind)
        if obj is None:
            return _not_found(kind, params["object_id"])
        if request.method == "POST":
            body, error = _json_body(request)
            if error:
                return error
            obj.update({k: v for k, v in body.items() if k not in ("id", "object")})
        if request.method == "DELETE":
            del server.store[obj["id"]]
            return json_reply({"id": obj["id"], "object": f"{kind}.deleted", "deleted": True})
        return json_reply(obj)

    if "create" in wanted:
        route("POST", path)(create)
    if "list" in wanted:
        route("GET", path)(list_)
    for verb, method in (("retrieve", "GET"), ("update", "POST"), ("delete", "DELETE")):
        if verb in wanted:
            route(method, path + "/{object_id}")(one)


def _message_content(content: Any) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    return [{"type": "text", "text": {"value": p.get("text", ""), "annotations": []}}
            for p in content or [] if isinstance(p, dict)]


def _new_message(server: FakeOpenAI, body: dict, params: dict) -> dict:
    return {"role": body.get("role", "user"), "content": _message_content(body.get("content")),
            "assistant_id": None, "run_id": None, "attachments": body.get("attachments") or [],
            "metadata": body.get("metadata") or {}, "status": "completed",
            "completed_at": int(time.time()), "incomplete_at": None, "incomplete_details": None}


_crud("/v1/assistants", "assistant", "asst", lambda server, body, params: {
    "name": None, "description": None, "instructions": None, "tools": [], "metadata": {},
    "tool_resources": None, "temperature": 1.0, "top_p": 1.0, "response_format": "auto", **body})
def _new_thread(server: FakeOpenAI, body: dict, params: dict) -> dict:
    for given in body.get("messages") or []:
        message = {"id": server.new_id("msg"), "object": "thread.message", "created_at": int(time.time()),
                   "thread_id": params["id"], **_new_message(server, given, {})}
        server.store[message["id"]] = message
    return {"metadata": body.get("metadata") or {}, "tool_resources": body.get("tool_resources")}


_crud("/v1/threads", "thread", "thread", _new_thread, "create retrieve update delete")
_crud("/v1/threads/{thread_id}/messages", "thread.message", "msg", _new_message)
_crud("/v1/conversations", "conversation", "conv", lambda server, body, params: {
    "metadata": body.get("metadata") or {}}, "create retrieve update delete")


# ---- Responses


def _response_object(server: FakeOpenAI, body: dict, reply: str, status: str = "completed") -> dict:
    model = body.get("model") or "gpt-5.4-mini"
    text = body.get("input") if isinstance(body.get("input"), str) else json.dumps(body.get("input"))
    input_tokens = len(encoding_for_model(model).encode(text or "", disallowed_special=()))
    output_tokens = len(encoding_for_model(model).encode(reply, disallowed_special=()))
    message = {"type": "message", "id": server.new_id("msg"), "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": reply, "annotations": [], "logprobs": []}]}
    return {
        "id": server.new_id("resp"), "object": "response", "created_at": int(time.time()), "status": status,
        "model": model, "output": [message] if status == "completed" else [],
        "instructions": body.get("instructions"), "metadata": body.get("metadata") or {},
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": body.get("tools") or [],
        "temperature": 1.0, "top_p": 1.0, "error": None, "incomplete_details": None,
        "previous_response_id": body.get("previous_response_id"),
        "conversation": {"id": body["conversation"]} if isinstance(body.get("conversation"), str) else None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                  "total_tokens": input_tokens + output_tokens,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    }


def _response_events(response: dict, reply: str) -> list[tuple[str, dict]]:
    """The event sequence OpenAI streams for a one-message text response."""
    message = response["output"][0]
    ids = {"item_id": message["id"], "output_index": 0}
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[tuple[str, dict]] = [
        ("response.created", {"response": started}),
        ("response.in_progress", {"response": started}),
        ("response.output_item.added", {"output_index": 0, "item": {**message, "status": "in_progress",
                                                                    "content": []}}),
        ("response.content_part.added", {**ids, "content_index": 0,
                                         "part": {"type": "output_text", "text": "", "annotations": []}}),
    ]
    events += [("response.output_text.delta", {**ids, "content_index": 0, "delta": piece, "logprobs": []})
               for piece in _split_reply(reply)]
    events += [
        ("response.output_text.done", {**ids, "content_index": 0, "text": reply, "logprobs": []}),
        ("response.content_part.done", {**ids, "content_index": 0, "part": message["content"][0]}),
        ("response.output_item.done", {"output_index": 0, "item": message}),
        ("response.completed", {"response": response}),
    ]
    return [(name, {"type": name, "sequence_number": i, **data}) for i, (name, data) in enumerate(events)]


@route("POST", "/v1/responses")
async def create_response(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    body, error = _json_body(request)
    if error:
        return error
    if not body.get("model") or "input" not in body:
        return _bad_request("'model' and 'input' are required.")
    reply = server.next_reply(body)
    response = _response_object(server, body, reply)
    server.store[response["id"]] = {**response, "_input": body["input"]}
    if body.get("stream"):
        return sse_reply(server, _response_events(response, reply), done=False)
    return json_reply(response)


def _public(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


@route("GET", "/v1/responses/{response_id}")
@route("DELETE", "/v1/responses/{response_id}")
@route("POST", "/v1/responses/{response_id}/cancel")
async def response_by_id(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
    response = _stored(server, params["response_id"], "response")
    if response is None:
        return _not_found("response", params["response_id"])
    if request.method == "DELETE":
        del server.store[response["id"]]
        return json_reply({"id": response["id"], "object": "response.deleted", "deleted": True})
    if request.path.endswith("/cancel"):
        response["status"] = "cancelled"
    return json_reply(_public(response))


@route("GET", "/v1/responses/{response_id}/input_items")
async def response_input_items(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
    response = _stored(server, params["response_id"], "response")
    if response is None:
        return _not_found("response", params["response_id"])
    given = response["_input"]
    if isinstance(given, str):
        given = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": given}]}]
    items = [{"id": f"{response['id']}_item{i}", "status": "completed", **item} for i, item in enumerate(given)]
    return json_reply(_page(items, request))


@route("POST", "/v1/responses/input_tokens")
async def response_input_tokens(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    body, error = _json_body(request)
    if error:
        return error
    text = body.get("input") if isinstance(body.get("input"), str) else json.dumps(body.get("input"))
    tokens = len(encoding_for_model(body.get("model") or "").encode(text, disallowed_special=()))
    return json_reply({"object": "response.input_tokens", "input_tokens": tokens})


@route("GET", "/v1/conversations/{conversation_id}/items")
@route("POST", "/v1/conversations/{conversation_id}/items")
async def conversation_items(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
    conversation = _stored(server, params["conversation_id"], "conversation")
    if conversation is None:
        return _not_found("conversation", params["conversation_id"])
    items = conversation.setdefault("_items", [])
    if request.method == "POST":
        body, error = _json_body(request)
        if error:
            return error
        added = [{"id": server.new_id("item"), "status": "completed", **item} for item in body.get("items", [])]
        items.extend(added)
        return json_reply({"object": "list", "data": added, "first_id": added[0]["id"] if added else None,
                           "last_id": added[-1]["id"] if added else None, "has_more": False})
    return json_reply(_page(items, request))


# ---- Assistants runs


def _run_object(server: FakeOpenAI, thread_id: str, body: dict, status: str) -> dict:
    assistant = server.store.get(body.get("assistant_id", ""), {})
    now = int(time.time())
    return {
        "id": server.new_id("run"), "object": "thread.run", "created_at": now, "thread_id": thread_id,
        "assistant_id": body.get("assistant_id"), "status": status,
        "model": body.get("model") or assistant.get("model") or "gpt-5.4-mini",
        "instructions": body.get("instructions") or assistant.get("instructions") or "",
        "tools": body.get("tools") or assistant.get("tools") or [], "metadata": body.get("metadata") or {},
        "parallel_tool_calls": True, "tool_choice": "auto", "response_format": "auto",
        "truncation_strategy": {"type": "auto", "last_messages": None}, "required_action": None,
        "last_error": None, "incomplete_details": None, "usage": None, "temperature": 1.0, "top_p": 1.0,
        "started_at": now, "completed_at": now if status == "completed" else None, "expires_at": None,
        "cancelled_at": None, "failed_at": None, "max_completion_tokens": None, "max_prompt_tokens": None,
    }


def _run(server: FakeOpenAI, thread_id: str, body: dict) -> Reply:
    """Run the thread at once: the assistant's reply (from the script) becomes its last message."""
    reply = server.next_reply(body)
    run = _run_object(server, thread_id, body, "completed")
    run["usage"] = {"prompt_tokens": 10, "completion_tokens": len(_split_reply(reply)), "total_tokens": 0}
    run["usage"]["total_tokens"] = 10 + run["usage"]["completion_tokens"]
    message = {"id": server.new_id("msg"), "object": "thread.message", "created_at": run["created_at"],
               "thread_id": thread_id, "role": "assistant", "content": _message_content(reply),
               "assistant_id": run["assistant_id"], "run_id": run["id"], "attachments": [], "metadata": {},
               "status": "completed", "completed_at": run["created_at"], "incomplete_at": None,
               "incomplete_details": None}
    server.store[run["id"]] = run
    server.store[message["id"]] = message
    if not body.get("stream"):
        return json_reply(run)
    pending = {**run, "status": "queued", "completed_at": None, "usage": None}
    draft = {**message, "status": "in_progress", "content": [], "completed_at": None}
    events: list[tuple[str, Any]] = [
        ("thread.run.created", pending),
        ("thread.run.queued", pending),
        ("thread.run.in_progress", {**pending, "status": "in_progress"}),
        ("thread.run.step.created", _run_step(run, message, "in_progress")),
        ("thread.message.created", draft),
        ("thread.message.in_progress", draft),
    ]
    events += [("thread.message.delta", {"id": message["id"], "object": "thread.message.delta", "delta": {
        "content": [{"index": 0, "type": "text", "text": {"value": piece, "annotations": []}}]}})
        for piece in _split_reply(reply)]
    events += [("thread.message.completed", message),
               ("thread.run.step.completed", _run_step(run, message, "completed")),
               ("thread.run.completed", run),
               ("done", "[DONE]")]
    return sse_reply(server, events, done=False)


def _run_step(run: dict, message: dict, status: str) -> dict:
    return {"id": run["id"].replace("run", "step", 1), "object": "thread.run.step",
            "created_at": run["created_at"], "run_id": run["id"], "assistant_id": run["assistant_id"],
            "thread_id": run["thread_id"], "type": "message_creation", "status": status,
            "step_details": {"type": "message_creation", "message_creation": {"message_id": message["id"]}},
            "cancelled_at": None, "completed_at": run["completed_at"] if status == "completed" else None,
            "expired_at": None, "failed_at": None, "last_error": None, "metadata": {}, "usage": None}


@route("POST", "/v1/threads/{thread_id}/runs")
async def create_run(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
    body, error = _json_body(request)
    if error:
        return error
    if _stored(server, params["thread_id"], "thread") is None:
        return _not_found("thread", params["thread_id"])
    if not body.get("assistant_id"):
        return _bad_request("'assistant_id' is required.", "assistant_id")
    return _run(server, params["thread_id"], body)


@route("POST", "/v1/threads/runs")
async def create_thread_and_run(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    body, error = _json_body(request)
    if error:
        return error
    thread = {"id": server.new_id("thread"), "object": "thread", "created_at": int(time.time())}
    thread.update(_new_thread(server, body.get("thread") or {}, {"id": thread["id"]}))
    server.store[thread["id"]] = thread
    return _run(server, thread["id"], body)


@route("GET", "/v1/threads/{thread_id}/runs")
async def list_runs(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
    return json_reply(_page(_list_of(server, "thread.run", thread_id=params["thread_id"]), request))


@route("GET", "/v1/threads/{thread_id}/runs/{run_id}")
@route("POST", "/v1/threads/{thread_id}/runs/{run_id}")
@route("POST", "/v1/threads/{thread_id}/runs/{run_id}/cancel")
@route("POST", "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
@route("GET", "/v1/threads/{thread_id}/runs/{run_id}/steps")
@route("GET", "/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
async def run_by_id(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
    run = _stored(server, params["run_id"], "thread.run")
    if run is None or run["thread_id"] != params["thread_id"]:
        return _not_found("run", params["run_id"])
    if request.path.endswith("/cancel"):
        run.update(status="cancelled", cancelled_at=int(time.time()))
    elif request.path.endswith("/submit_tool_outputs"):
        body, error = _json_body(request)
        if error:
            return error
        return _run(server, run["thread_id"], {**body, "assistant_id": run["assistant_id"]})
    elif "/steps" in request.path:
        messages = [m for m in _list_of(server, "thread.message", run_id=run["id"])]
        steps = [_run_step(run, m, "completed") for m in messages]
        if "step_id" in params:
            step = next((s for s in steps if s["id"] == params["step_id"]), None)
            return json_reply(step) if step else _not_found("run step", params["step_id"])
        return json_reply(_page(steps, request))
    return json_reply(run)


# ---- Files and uploads


def _file_object(server: FakeOpenAI, data: bytes, filename: str, purpose: str) -> dict:
    obj = {"id": server.new_id("file"), "object": "file", "bytes": len(data), "created_at": int(time.time()),
           "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
           "status_details": None}
    server.store[obj["id"]] = obj
    server.blobs[obj["id"]] = data
    return obj


@route("POST", "/v1/files")
async def create_file(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    form, error = _form(request)
    if error:
        return error
    if "file" not in form or "purpose" not in form:
        return _bad_request("'file' and 'purpose' are required.")
    part = form["file"][0]
    return json_reply(_file_object(server, part.data, part.filename or "file", form["purpose"][0].text))


@route("GET", "/v1/files")
async def list_files(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    purpose = request.query_params.get("purpose", [None])[-1]
    files = [f for f in _list_of(server, "file") if purpose is None or f["purpose"] == purpose]
    return json_reply(_page(files, request))


@route("GET", "/v1/files/{file_id}")
@route("DELETE", "/v1/files/{file_id}")
@route("GET", "/v1/files/{file_id}/content")
async def file_by_id(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
    obj = _stored(server, params["file_id"], "file")
    if obj is None:
        return _not_found("file", params["file_id"])
    if request.method == "DELETE":
        del server.store[obj["id"]]
        server.blobs.pop(obj["id"], None)
        return json_reply({"id": obj["id"], "object": "file", "deleted": True})
    if request.path.endswith("/content"):
        return Reply(200, server.blobs[obj["id"]], [("content-type", "application/octet-stream")])
    return json_reply(obj)


@route("POST", "/v1/uploads")
async def create_upload(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    body, error = _json_body(request)
    if error:
        return error
    upload = {"id": server.new_id("upload"), "object": "upload", "bytes": body.get("bytes", 0),
              "created_at": int(time.time()), "expires_at": int(time.time()) + 3600,
              "filename": body.get("filename", "upload"), "purpose": body.get("purpose", "assistants"),
              "status": "pending", "file": None}
    server.store[upload["id"]] = upload
    return json_reply(upload)


@route("POST", "/v1/uploads/{upload_id}/parts")
@route("POST", "/v1/uploads/{upload_id}/complete")
@route("POST", "/v1/uploads/{upload_id}/cancel")
async def upload_by_id(server: FakeOpenAI, request: RecordedRequest, params: dict) -> Reply:
    upload = _stored(server, params["upload_id"], "upload")
    if upload is None:
        return _not_found("upload", params["upload_id"])
    action = request.path.rsplit("/", 1)[1]
    if action == "parts":
        form, error = _form(request)
        if error:
            return error
        part = {"id": server.new_id("part"), "object": "upload.part", "created_at": int(time.time()),
                "upload_id": upload["id"]}
        server.blobs[part["id"]] = form["data"][0].data
        return json_reply(part)
    if action == "cancel":
        upload["status"] = "cancelled"
        return json_reply(upload)
    body, error = _json_body(request)
    if error:
        return error
    data = b"".join(server.blobs.pop(p, b"") for p in body.get("part_ids", []))
    upload.update(status="completed", file=_file_object(server, data, upload["filename"], upload["purpose"]))
    return json_reply(upload)


# ---- Images


def fake_image(seed: bytes) -> bytes:
    """The 'PNG' the server answers for an image request, deterministic in the request's inputs."""
    return b"\x89PNG\r\n\x1a\n" + hashlib.shake_256(seed).digest(4096)


def _images_reply(data: bytes, n: int) -> Reply:
    encoded = base64.b64encode(data).decode()
    return json_reply({"created": int(time.time()), "data": [{"b64_json": encoded, "revised_prompt": None}] * n,
                       "usage": {"input_tokens": 10, "output_tokens": 100, "total_tokens": 110,
                                 "input_tokens_details": {"image_tokens": 0, "text_tokens": 10}}})


@route("POST", "/v1/images/generations")
async def images_generate(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    body, error = _json_body(request)
    if error:
        return error
    if not body.get("prompt"):
        return _bad_request("'prompt' is required.", "prompt")
    return _images_reply(fake_image(body["prompt"].encode()), int(body.get("n") or 1))


@route("POST", "/v1/images/edits")
@route("POST", "/v1/images/variations")
async def images_from_images(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    form, error = _form(request)
    if error:
        return error
    images = form.get("image", []) + form.get("image[]", [])
    if not images:
        return _bad_request("'image' is required.", "image")
    prompt = form["prompt"][0].data if "prompt" in form else b""
    n = int(form["n"][0].text) if "n" in form else 1
    return _images_reply(fake_image(prompt + b"".join(hashlib.sha256(p.data).digest() for p in images)), n)


# ---- Audio

_AUDIO_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                "wav": "audio/wav", "pcm": "audio/pcm"}


def fake_speech(text: str) -> bytes:
    """The audio bytes the server answers for `text` (64 KiB, deterministic)."""
    return hashlib.shake_256(text.encode()).digest(65536)


def fake_transcript(audio: bytes) -> str:
    return f"Transcript of {len(audio)} bytes, sha256 {hashlib.sha256(audio).hexdigest()[:12]}."


@route("POST", "/v1/audio/speech")
async def audio_speech(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    body, error = _json_body(request)
    if error:
        return error
    if not body.get("input") or not body.get("voice"):
        return _bad_request("'input' and 'voice' are required.")
    audio = fake_speech(body["input"])
    fmt = body.get("response_format", "mp3")
    # Sent in pieces, as a real text-to-speech stream is.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(audio), 8192):
            yield audio[start : start + 8192]

    return Reply(200, chunks(), [("content-type", _AUDIO_TYPES.get(fmt, "application/octet-stream"))])


@route("POST", "/v1/audio/transcriptions")
@route("POST", "/v1/audio/translations")
async def audio_transcribe(server: FakeOpenAI, request: RecordedRequest, _: dict) -> Reply:
    form, error = _form(request)
    if error:
        return error
    if "file" not in form or "model" not in form:
        return _bad_request("'file' and 'model' are required.")
    text = fake_transcript(form["file"][0].data)
    fmt = form["response_format"][0].text if "response_format" in form else "json"
    task = "translate" if request.path.endswith("translations") else "transcribe"
    if "stream" in form and form["stream"][0].text == "true" and task == "transcribe":
        events = [{"type": "transcript.text.delta", "delta": piece, "logprobs": None}
                  for piece in _split_reply(text)]
        events.append({"type": "transcript.text.done", "text": text, "logprobs": None,
                       "usage": {"type": "tokens", "input_tokens": 10, "output_tokens": len(events),
                                 "total_tokens": 10 + len(events)}})
        return sse_reply(server, events, done=False)
    if fmt == "text":
        return Reply(200, text.encode(), [("content-type", "text/plain; charset=utf-8")])
    if fmt == "srt":
        srt = f"1\n00:00:00,000 --> 00:00:01,000\n{text}\n\n"
        return Reply(200, srt.encode(), [("content-type", "text/plain")])
    if fmt == "vtt":
        vtt = f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n\n"
        return Reply(200, vtt.encode(), [("content-type", "text/vtt")])
    if fmt == "verbose_json":
        return json_reply({"task": task, "language": "english", "duration": 1.0, "text": text, "segments": [{
            "id": 0, "seek": 0, "start": 0.0, "end": 1.0, "text": text, "tokens": [1, 2], "temperature": 0.0,
            "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0}]})
    return json_reply({"text": text})


# --------------------------------------------------------------------------- serving


class ServerThread:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, app: Callable, lifespan: str = "off") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, lifespan=lifespan, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=1, loop="asyncio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"uvicorn-{self.port}", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()


_session_server: FakeOpenAI | None = None


@pytest.fixture
def openai_server(request: pytest.FixtureRequest) -> Iterator[FakeOpenAI]:
    """The session's OpenAI test server (started on first use), reset for this test."""
    global _session_server
    if _session_server is None:
        server = FakeOpenAI()
        thread = ServerThread(server).start()
        server.url = f"http://127.0.0.1:{thread.port}/v1"
        _session_server = server

        def stop() -> None:
            global _session_server
            thread.stop()
            _session_server = None

        request.config.add_cleanup(stop)
    _session_server.reset()
    yield _session_server
    _session_server.reset()  # releases held streams a failed test left behind

"""A real HTTP server on 127.0.0.1 that speaks OpenAI's wire format, for tests.

It answers what the service itself calls upstream: chat completions (whole and streamed), embeddings
(with OpenAI's limits) and models. It is a small plain-ASGI application served by uvicorn in a
background thread (one per test session), reset before every test. It records every request it
receives, byte for byte, so a test can assert on what was sent (prompts, headers), and it can be
told to misbehave:

    def test_something(openai_server):
        openai_server.set_reply("Paris [1].")         # the next chat completion's text
        openai_server.fail_next(429, times=1)          # the next request answers 429
        openai_server.slow_next(2.0)                   # the next request waits 2 s first
        gate = openai_server.hold_stream(after=1)      # streams stop after 1 event until gate.set()
        openai_server.hang()                           # every request hangs until the next reset
        ... client with base_url=openai_server.url ...
        openai_server.requests[-1].json()["messages"]

Endpoints live in one routing table (`ROUTES`, filled by the `@route` decorator): add an endpoint by
writing one handler `async def handler(server, request, params) -> Reply`. The passthrough routes
relay bytes and are tested against the echo upstream (support.echo_upstream), not here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from rag.tokens import count_chat_tokens, encoding_for_model, get_encoding
from support.asgi import RecordedRequest, Reply, read_request, send_reply, session_server, sleep_unless

__all__ = ["DEFAULT_REPLY", "FakeOpenAI", "RecordedRequest", "Reply", "expected_embedding", "fake_embedding",
           "openai_server"]

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
HANG_LIMIT_S = 300.0
"""A hanging request (`hang`) answers by itself after this long, for the same reason."""


# --------------------------------------------------------------------------- replies


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
    content_type: str = "application/json"

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
                  retry_after_ms: int | None = 10, content_type: str = "application/json") -> None:
        """The next `times` requests (under `path`, if given) answer `status` with OpenAI's error
        body (or `body`, sent as `content_type`: so a 200 can be garbage too). A short
        `retry-after-ms` keeps the SDK's retries fast in tests; pass None to leave the SDK's own backoff."""
        extra = list((headers or {}).items())
        if retry_after_ms is not None:
            extra.append(("retry-after-ms", str(retry_after_ms)))
        with self._lock:
            self._faults.append(_Fault(times, path, status=status, body=body, headers=extra,
                                       content_type=content_type))

    def slow_next(self, seconds: float, times: int = 1, *, path: str | None = None) -> None:
        """The next `times` requests wait `seconds` before answering (normally)."""
        with self._lock:
            self._faults.append(_Fault(times, path, delay_s=seconds))

    def hang(self, *, path: str | None = None) -> None:
        """From now on every request (under `path`, if given) hangs: it is read and never answered,
        until the server is reset (or HANG_LIMIT_S pass). The upstream that starves a service."""
        self.slow_next(HANG_LIMIT_S, times=sys.maxsize, path=path)

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
        generation = self._generation
        await sleep_unless(seconds, lambda: self._generation == generation)

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
        request = await read_request(scope, receive)
        if request is None:
            return
        with self._lock:
            self.requests.append(request)
        reply = await self._answer(request)
        await send_reply(send, reply, [("x-request-id", self.new_id("req"))])

    async def _answer(self, request: RecordedRequest) -> Reply:
        failure, delay = self._take_faults(request)
        if delay:
            await self._sleep(delay)
        if failure is not None:
            if failure.body is not None:
                body = failure.body
                if not isinstance(body, bytes):
                    body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                return Reply(failure.status, body, [("content-type", failure.content_type), *failure.headers])
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


# --------------------------------------------------------------------------- serving


@pytest.fixture
def openai_server(request: pytest.FixtureRequest) -> Iterator[FakeOpenAI]:
    """The session's OpenAI test server (started on first use), reset for this test."""
    yield from session_server(request, "openai", FakeOpenAI)

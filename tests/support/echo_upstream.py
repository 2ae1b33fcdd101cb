"""An upstream that understands nothing: it records every request byte for byte and answers what
the test scripted, for tests of the passthrough routes (which relay bytes, not OpenAI's APIs).

A real HTTP server on 127.0.0.1 (uvicorn in a thread, one per session, reset before each test):

    def test_something(echo_upstream):
        echo_upstream.reply(status=404, body=b'{"error": {}}', headers={"content-type": "application/json"})
        gate = echo_upstream.reply(chunks=[b"data: 1\\n\\n", b"data: 2\\n\\n"], hold_after=1)
        echo_upstream.reply(delay_s=3.0)               # answer (the echo) only after 3 s
        ... the service with OPENAI_BASE_URL = echo_upstream.url ...
        echo_upstream.requests[-1].body                # exactly what arrived

Scripted replies are used first to last. Without one, the reply is the echo: status 200, the
request's own body and content type. Every reply carries an `x-request-id` of `req_echo…`.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from support.asgi import RecordedRequest, Reply, read_request, send_reply, session_server, sleep_unless

__all__ = ["HOLD_LIMIT_S", "EchoUpstream", "echo_upstream"]

HOLD_LIMIT_S = 30.0
"""A held stream resumes by itself after this long, so a forgotten gate cannot hang the suite."""


@dataclass
class _Scripted:
    status: int
    body: bytes
    chunks: Sequence[bytes] | None
    headers: list[tuple[str, str]]
    delay_s: float
    hold_after: int | None
    gate: threading.Event = field(default_factory=threading.Event)


class EchoUpstream:
    """The echo upstream's state and ASGI entry point (see the module docstring)."""

    def __init__(self) -> None:
        self.url = ""
        """Base URL, `http://127.0.0.1:PORT/v1` (set once it listens)."""
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._generation = 0
        self.requests: list[RecordedRequest] = []
        self._script: list[_Scripted] = []
        self._gates: list[threading.Event] = []

    def reset(self) -> None:
        """Forget requests and scripted replies; release any held stream."""
        with self._lock:
            self._generation += 1
            for gate in self._gates:
                gate.set()
            self.requests = []
            self._script = []
            self._gates = []

    def reply(self, status: int = 200, body: bytes = b"", *, chunks: Sequence[bytes] | None = None,
              headers: Mapping[str, str] | None = None, delay_s: float = 0.0,
              hold_after: int | None = None) -> threading.Event:
        """Script the next reply: `status` and `headers` with `body`, or with `chunks` sent one by
        one (no content-length) after waiting `delay_s`. With `hold_after`, the stream stops after
        that many chunks until the returned event is set (or HOLD_LIMIT_S pass)."""
        scripted = _Scripted(status, body, chunks, list((headers or {}).items()), delay_s, hold_after)
        with self._lock:
            self._script.append(scripted)
            self._gates.append(scripted.gate)
        return scripted.gate

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return  # no lifespan or websockets
        request = await read_request(scope, receive)
        if request is None:
            return
        with self._lock:
            self.requests.append(request)
            scripted = self._script.pop(0) if self._script else None
            generation = self._generation
        if scripted is None:
            reply = Reply(200, request.body,
                          [("content-type", request.header("content-type") or "application/octet-stream")])
        else:
            if scripted.delay_s:
                await sleep_unless(scripted.delay_s, lambda: self._generation == generation)
            body = scripted.body if scripted.chunks is None else self._stream(scripted)
            reply = Reply(scripted.status, body, scripted.headers)
        await send_reply(send, reply, [("x-request-id", f"req_echo{next(self._ids):06d}")])

    async def _stream(self, scripted: _Scripted) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(scripted.chunks or ()):
            if i == scripted.hold_after:
                deadline = time.monotonic() + HOLD_LIMIT_S
                while not scripted.gate.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
            yield chunk


@pytest.fixture
def echo_upstream(request: pytest.FixtureRequest) -> Iterator[EchoUpstream]:
    """The session's echo upstream (started on first use), reset for this test."""
    yield from session_server(request, "echo", EchoUpstream)

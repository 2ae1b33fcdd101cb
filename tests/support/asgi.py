"""Real HTTP servers on 127.0.0.1 for tests: an ASGI app served by uvicorn in a thread, and the
recording and replying that the OpenAI test server and the echo upstream share."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn

__all__ = ["RecordedRequest", "Reply", "ServerThread", "read_request", "send_reply", "session_server",
           "sleep_unless"]


@dataclass
class RecordedRequest:
    """One request as a test server received it."""

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
    """What a test server answers: a whole body, or an async iterator of chunks (streamed)."""

    status: int = 200
    body: bytes | AsyncIterator[bytes] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


async def read_request(scope: dict, receive: Callable) -> RecordedRequest | None:
    """The whole request, body included; None when the client went away before sending it all."""
    started_at = time.monotonic()
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return RecordedRequest(
        method=scope["method"],
        path=scope["path"],
        query=scope["query_string"].decode("latin-1"),
        headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]],
        body=b"".join(chunks),
        received_at=time.monotonic(),
        started_at=started_at,
    )


async def send_reply(send: Callable, reply: Reply, extra_headers: list[tuple[str, str]]) -> None:
    """Send `reply` (with `extra_headers` first): a whole body with its length, or chunk by chunk."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in [*extra_headers, *reply.headers]]
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


async def sleep_unless(seconds: float, still: Callable[[], bool]) -> None:
    """Sleep `seconds`, waking early once `still()` is false (a server reset between tests: a
    slow request must not outlive the test that asked for it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and still():
        await asyncio.sleep(min(0.01, max(0.0, deadline - time.monotonic())))


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


_session_servers: dict[str, Any] = {}


def session_server(request: pytest.FixtureRequest, name: str, make: Callable[[], Any]) -> Iterator[Any]:
    """The session's one server called `name` (made by `make` and started on first use), reset
    before and after the test. The app needs `reset()` and a writable `url`; it is served under
    `/v1`, so `url` is `http://127.0.0.1:PORT/v1`, an OpenAI client's base URL."""
    if name not in _session_servers:
        app = make()
        thread = ServerThread(app).start()
        app.url = f"http://127.0.0.1:{thread.port}/v1"
        _session_servers[name] = app

        def stop() -> None:
            thread.stop()
            _session_servers.pop(name, None)

        request.config.add_cleanup(stop)
    app = _session_servers[name]
    app.reset()
    yield app
    app.reset()  # releases held streams a failed test left behind

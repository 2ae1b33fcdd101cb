"""The /v1 passthrough routes: the real app on uvicorn, relaying to an echo upstream.

The passthrough understands none of the APIs it relays (api/passthrough.py): it forwards bytes. So
its tests need no emulation of those APIs either: the echo upstream (support.echo_upstream) records
every request byte for byte and answers what the test scripts. Every route of the table is checked
for method, path, query, headers, body bytes and status, and every route family for streaming.
Both ends are real HTTP servers on 127.0.0.1, so streaming in both directions is what is tested,
not a test client's buffering.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from itertools import cycle

import httpx
import openai
import pytest
from support.asgi import ServerThread
from support.net import free_port

from api.app import create_app
from api.passthrough import PASSTHROUGH_ROUTES, PREFIX
from rag.config import Settings

CLIENT_KEY = "client-key"
UPSTREAM_KEY = "sk-upstream-key"
FAMILIES = ("assistants", "audio", "conversations", "files", "images", "responses", "threads", "uploads")
"""The OpenAI API families relayed, by the first segment of their paths."""


@pytest.fixture
def start_service(echo_upstream, rag_env):
    """Start the app on uvicorn with these settings (upstream: the echo); its base URL."""
    threads: list[ServerThread] = []

    def start(**overrides) -> str:
        values = {"home": rag_env, "openai_api_key": UPSTREAM_KEY, "openai_base_url": echo_upstream.url,
                  "openai_timeout_s": 10.0, "api_keys": (CLIENT_KEY,)}
        app = create_app(Settings(**(values | overrides)), warm_up=False)  # no local model needed here
        thread = ServerThread(app, lifespan="on").start()
        threads.append(thread)
        return f"http://127.0.0.1:{thread.port}"

    yield start
    for thread in threads:
        thread.stop()


@pytest.fixture
def service(start_service) -> str:
    return start_service()


@pytest.fixture
def http(service):
    with httpx.Client(base_url=service, headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=30) as client:
        yield client


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, (filename, data) in files.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


# ---------------------------------------------------------------- every route, by family


def routes_of(family: str) -> list[tuple[str, str]]:
    """(method, concrete path under /v1) of every row of the table in `family`, ids filled in."""
    return [(method, PREFIX + re.sub(r"\{(\w+):str\}", r"\1-42", path))
            for path, methods in PASSTHROUGH_ROUTES if path.split("/")[1] == family for method in methods]


def test_the_table_relays_exactly_these_families():
    assert {path.split("/")[1] for path, _ in PASSTHROUGH_ROUTES} == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_route_relays_method_path_query_headers_body_and_status(family, echo_upstream, http):
    routes = routes_of(family)
    statuses = cycle((200, 201, 400, 404, 409, 429, 500, 503))
    rng = random.Random(family)
    for n, (method, path) in enumerate(routes):
        status = next(statuses)
        body = rng.randbytes(1000) if method == "POST" else b""  # not UTF-8: bytes, not text
        answer = json.dumps({"route": f"{method} {path}", "n": n}).encode() + rng.randbytes(100)
        echo_upstream.reply(status, answer, headers={"content-type": "application/x-reply", "x-upstream": "kept",
                                                     "openai-processing-ms": str(n)})
        query = f"n={n}&odd=a%2Fb%20c+d&empty="
        headers = {"openai-beta": "assistants=v2", "idempotency-key": f"key-{n}", "accept": family}
        if body:
            headers["content-type"] = "application/x-request"
        response = http.request(method, f"{path}?{query}", content=body, headers=headers)

        received = echo_upstream.requests[-1]
        assert (received.method, received.path, received.query, received.body) == (method, path, query, body)
        assert [v for k, v in received.headers if k == "authorization"] == [f"Bearer {UPSTREAM_KEY}"]
        for name, value in headers.items():
            assert received.header(name) == value, (method, path, name)
        assert (response.status_code, response.content) == (status, answer), (method, path)
        assert response.headers["content-type"] == "application/x-reply"
        assert response.headers["x-upstream"] == "kept" and response.headers["openai-processing-ms"] == str(n)
        # The upstream's id moved aside; x-request-id is the service's own.
        assert response.headers["x-upstream-request-id"].startswith("req_echo")
        assert response.headers["x-request-id"].startswith("req_") and "echo" not in response.headers["x-request-id"]
    assert len(echo_upstream.requests) == len(routes) > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_streams_back_as_the_upstream_sends(family, echo_upstream, service):
    """The caller has the first event while the upstream still holds back the rest: a buffering
    proxy would block here until the hold (30 s) or the read timeout (10 s) failed the test."""
    method, path = next(route for route in routes_of(family) if route[0] == "POST")
    events = [f"event: {family}.{i}\ndata: {json.dumps({'i': i})}\n\n".encode() for i in range(4)]
    gate = echo_upstream.reply(chunks=events, hold_after=1, headers={"content-type": "text/event-stream"})
    with httpx.stream(method, f"{service}{path}", timeout=10, content=b'{"stream": true}',
                      headers={"authorization": f"Bearer {CLIENT_KEY}"}) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
        assert "content-length" not in response.headers
        chunks = response.iter_raw()
        first = b""
        while len(first) < len(events[0]):
            first += next(chunks)
        assert first == events[0]
        assert not gate.is_set()  # the upstream is still holding back every later event
        gate.set()
        rest = b"".join(chunks)
    assert rest == b"".join(events[1:])
    assert echo_upstream.requests[0].body == b'{"stream": true}'


# ---------------------------------------------------------------- bytes, headers, query


def test_a_20_mb_upload_and_its_echo_arrive_byte_for_byte_with_the_services_key(echo_upstream, http):
    data = random.Random(7).randbytes(20 * 1024 * 1024)
    body = multipart({"purpose": "assistants"}, {"file": ("big.bin", data)})
    started = time.monotonic()
    response = http.post("/v1/files?source=test&note=a%2Fb", content=body, headers={
        "content-type": "multipart/form-data; boundary=b0undary",
        "openai-beta": "assistants=v2", "idempotency-key": "upload-1"})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    (received,) = echo_upstream.requests
    assert hashlib.sha256(received.body).hexdigest() == hashlib.sha256(body).hexdigest()
    assert received.header("content-length") == str(len(body))
    assert received.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert [v for k, v in received.headers if k == "authorization"] == [f"Bearer {UPSTREAM_KEY}"]
    assert received.header("openai-beta") == "assistants=v2"
    assert received.header("idempotency-key") == "upload-1"
    assert received.header("content-type") == "multipart/form-data; boundary=b0undary"
    assert received.query == "source=test&note=a%2Fb"
    assert response.headers["x-upstream-request-id"].startswith("req_echo")
    # The echo sends the 20 MB back: the download direction, byte for byte.
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(body).hexdigest()
    assert response.headers["content-length"] == str(len(body))
    print(f"\n20 MB up and back down through the passthrough: {elapsed:.2f} s")


def test_an_upload_is_streamed_upstream_before_the_caller_has_finished(echo_upstream, http):
    sent_last_at = 0.0

    def body():
        nonlocal sent_last_at
        yield b"x" * (1024 * 1024)
        time.sleep(0.5)
        sent_last_at = time.monotonic()
        yield b"y" * 1024

    echo_upstream.reply(400, b'{"error": {"message": "not multipart at all"}}')
    response = http.post("/v1/images/variations", content=body(),
                         headers={"content-type": "multipart/form-data; boundary=zz"})
    assert response.status_code == 400  # the upstream's verdict, passed back
    (received,) = echo_upstream.requests
    assert received.body == b"x" * (1024 * 1024) + b"y" * 1024
    assert received.header("transfer-encoding") == "chunked"
    assert received.started_at < sent_last_at  # upstream had the request before the body was done


def test_query_strings_pass_unchanged(echo_upstream, http):
    query = "limit=2&order=asc&odd=a%2Fb%20c+d&empty=&x=%E2%9C%93"
    response = http.get(f"/v1/files?{query}")
    assert response.status_code == 200
    assert echo_upstream.requests[0].query == query


def test_hop_by_hop_and_credentials_are_not_forwarded_either_way(echo_upstream, http):
    echo_upstream.reply(200, b"{}", headers={"set-cookie": "upstream=secret", "keep-alive": "timeout=5",
                                             "x-kept": "yes"})
    response = http.get("/v1/assistants", headers={
        "connection": "keep-alive, x-hop", "x-hop": "1", "keep-alive": "timeout=5", "te": "trailers",
        "cookie": "session=secret", "openai-organization": "org-caller", "x-custom": "kept",
        "openai-beta": "assistants=v2"})
    assert response.status_code == 200
    received = echo_upstream.requests[0]
    names = {k for k, _ in received.headers}
    assert not names & {"x-hop", "keep-alive", "te", "cookie", "openai-organization", "x-custom"}
    assert received.header("openai-beta") == "assistants=v2"
    assert received.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert "set-cookie" not in response.headers and "keep-alive" not in response.headers
    assert response.headers["x-kept"] == "yes"


def test_only_allowed_request_headers_reach_the_upstream(echo_upstream, http):
    hostile = {"x-api-key": "caller-secret", "api-key": "caller-secret", "x-forwarded-host": "evil.example",
               "forwarded": "host=evil.example", "x-original-url": "/v1/admin", "x-rewrite-url": "/v1/admin",
               "x-forwarded-for": "10.0.0.1", "x-real-ip": "10.0.0.1", "openai-project": "proj-caller"}
    response = http.post("/v1/files", content=b"{}", headers={**hostile, "content-type": "application/json",
                                                                "idempotency-key": "k1"})
    assert response.status_code == 200
    received = echo_upstream.requests[0]
    names = {k for k, _ in received.headers}
    assert not names & set(hostile), names & set(hostile)
    assert received.header("idempotency-key") == "k1" and received.header("content-type") == "application/json"


@pytest.mark.parametrize("path", [
    "/v1/threads/../messages/x", "/v1/threads/%2e%2e/messages/x", "/v1/threads/%2E%2e/messages/x",
    "/v1/threads/%252e%252e/messages/x", "/v1/threads/.%2e/messages/x", "/v1/threads/t1/messages/.",
    "/v1/threads/..%2fmessages/x", "/v1/files/%2e",
])
def test_dot_segments_are_refused_before_routing(echo_upstream, service, path):
    # httpx itself would resolve a plain `..`, so the request is written on the socket by hand.
    import socket
    from urllib.parse import urlsplit

    port = urlsplit(service).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
                     "Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", answer
    assert b'"invalid_path"' in rest
    assert echo_upstream.requests == []


def test_redirects_are_relayed_not_followed(echo_upstream, http):
    echo_upstream.reply(307, b"", headers={"location": "http://127.0.0.1:9/v1/elsewhere"})
    response = http.get("/v1/files/f1", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "http://127.0.0.1:9/v1/elsewhere"
    assert len(echo_upstream.requests) == 1


def test_routes_outside_the_table_are_not_forwarded(echo_upstream, http):
    assert http.put("/v1/files").status_code == 405
    missing = http.get("/v1/fine_tuning/jobs")
    assert missing.status_code == 404 and "error" in missing.json()
    assert echo_upstream.requests == []


def test_the_services_own_auth_guards_the_passthrough(echo_upstream, service):
    response = httpx.get(f"{service}/v1/files")
    assert response.status_code == 401
    wrong = httpx.get(f"{service}/v1/files", headers={"authorization": f"Bearer {UPSTREAM_KEY}"})
    assert wrong.status_code == 401
    assert echo_upstream.requests == []


def test_body_over_the_upload_limit_is_413(echo_upstream, start_service):
    service = start_service(max_upload_mb=1)
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/octet-stream"}
    announced = httpx.post(f"{service}/v1/files", content=b"x" * (1024 * 1024 + 1), headers=headers)
    assert announced.status_code == 413
    assert "RAG_MAX_UPLOAD_MB" in announced.json()["error"]["message"]
    assert echo_upstream.requests == []

    def chunks():
        for _ in range(3):
            yield b"x" * (512 * 1024)

    chunked = httpx.post(f"{service}/v1/files", content=chunks(), headers=headers)
    assert chunked.status_code == 413
    assert "RAG_MAX_UPLOAD_MB" in chunked.json()["error"]["message"]
    assert echo_upstream.requests == []  # the upstream never saw a complete request


# ---------------------------------------------------------------- the official SDK through the service


PICTURE = random.Random(3).randbytes(50_000)
AUDIO = random.Random(5).randbytes(30_000)
SDK_CALLS = {
    "responses": lambda sdk: sdk.responses.with_raw_response.create(model="gpt-5.4-mini", input="Say something."),
    "conversations": lambda sdk: sdk.conversations.with_raw_response.create(metadata={"topic": "test"}),
    "assistants": lambda sdk: sdk.beta.assistants.with_raw_response.create(model="gpt-5.4-mini", name="Helper"),
    "threads": lambda sdk: sdk.beta.threads.runs.with_raw_response.create(thread_id="thread_1", assistant_id="a_1"),
    "files": lambda sdk: sdk.files.with_raw_response.create(file=("notes.txt", b"hello passthrough"),
                                                            purpose="assistants"),
    "files?list": lambda sdk: sdk.files.with_raw_response.list(limit=2, order="asc"),
    "uploads": lambda sdk: sdk.uploads.parts.with_raw_response.create("upload_1", data=b"abc"),
    "images": lambda sdk: sdk.images.with_raw_response.edit(model="image-model", prompt="add a boat",
                                                             image=("in.png", PICTURE, "image/png")),
    "audio": lambda sdk: sdk.audio.transcriptions.with_raw_response.create(model="transcribe-model",
                                                                           file=("a.wav", AUDIO)),
}
# Set per connection (httpx and uvicorn each make their own) or replaced by the service's key.
_NOT_RELAYED = {"authorization", "host", "connection"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks Assistants retired
@pytest.mark.parametrize("call", sorted(SDK_CALLS))
def test_the_sdks_requests_arrive_as_it_sent_them(call, echo_upstream, service):
    sent: list[httpx.Request] = []
    http_client = httpx.Client(event_hooks={"request": [lambda request: sent.append(request) or request.read()]})
    sdk = openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{service}/v1", max_retries=0, timeout=30,
                        http_client=http_client)
    raw = SDK_CALLS[call](sdk)
    http_client.close()
    ((request,), (received,)) = (sent, echo_upstream.requests)
    assert (received.method, received.path, received.query) == (request.method, request.url.path,
                                                                 request.url.query.decode())
    assert received.body == request.content  # multipart uploads included, boundary and all
    for name, value in request.headers.items():
        if name not in _NOT_RELAYED:
            assert received.header(name) == value, name
    assert received.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert raw.status_code == 200 and raw.http_response.content == request.content


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("status", "error"), [
    (400, openai.BadRequestError), (401, openai.AuthenticationError), (404, openai.NotFoundError),
    (429, openai.RateLimitError), (500, openai.InternalServerError),
])
def test_upstream_errors_keep_status_and_body(echo_upstream, service, http, status, error):
    sdk = openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{service}/v1", max_retries=0, timeout=30)
    error_body = {"error": {"message": "Upstream says no.", "type": "test_error", "param": None, "code": "no"}}
    echo_upstream.reply(status, json.dumps(error_body).encode(), headers={"content-type": "application/json"})
    with pytest.raises(error) as caught:
        sdk.files.list()
    assert caught.value.status_code == status
    # The SDK shows the service's own id; the upstream's is passed along beside it.
    assert caught.value.request_id.startswith("req_") and "echo" not in caught.value.request_id
    assert caught.value.response.headers["x-upstream-request-id"].startswith("req_echo")
    assert caught.value.body == error_body["error"]

    raw = b'{"error": {"message": "exact bytes", "type": "x", "param": null, "code": "c"}}  '
    echo_upstream.reply(status, raw, headers={"content-type": "application/json"})
    response = http.get("/v1/files")
    assert (response.status_code, response.content) == (status, raw)
    assert len(echo_upstream.requests) == 2  # never retried by the service


def test_unreachable_upstream_is_502(start_service):
    service = start_service(openai_base_url=f"http://127.0.0.1:{free_port()}/v1")
    sdk = openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{service}/v1", max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.files.list()
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_error" and "OPENAI_BASE_URL" in caught.value.body["message"]


def test_no_key_is_503_naming_the_variable(echo_upstream, start_service):
    service = start_service(openai_api_key=None)
    response = httpx.get(f"{service}/v1/files", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert response.status_code == 503
    assert "OPENAI_API_KEY" in response.json()["error"]["message"]
    assert response.headers["x-should-retry"] == "false"
    assert echo_upstream.requests == []
    # The SDK reads x-should-retry: with its default retries it still sends the request once.
    sent: list[httpx.Request] = []
    sdk = openai.OpenAI(api_key=CLIENT_KEY, base_url=f"{service}/v1", max_retries=2, timeout=30,
                        http_client=httpx.Client(event_hooks={"request": [sent.append]}))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.files.list()
    assert caught.value.status_code == 503 and caught.value.code == "missing_credentials"
    assert len(sent) == 1


def test_slow_upstream_is_504(echo_upstream, start_service):
    service = start_service(openai_timeout_s=0.5)
    echo_upstream.reply(delay_s=3.0)
    started = time.monotonic()
    response = httpx.post(f"{service}/v1/responses", headers={"authorization": f"Bearer {CLIENT_KEY}"},
                          json={"model": "gpt-5.4-mini", "input": "hi"})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"
    assert time.monotonic() - started < 2.5

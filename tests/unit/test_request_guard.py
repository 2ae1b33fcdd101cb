"""Cross-site and Host protection (api/request_guard.py), with and without API keys.

A page of another site can make the browser send a `text/plain` or multipart POST without any CORS
preflight, and a DNS-rebinding page reaches the service under its own host name: both must be
refused whatever the key setting. Keys are read from Authorization alone, so a browser never adds
one by itself (a cookie) and none leaks into logs (a query string).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from litestar.testing import TestClient
from support.fake_embedder import KIND
from support.responses import error_of

from api.app import create_app
from api.request_guard import has_dot_segment
from rag.config import Settings

OWN = "http://testserver.local"
"""The TestClient's origin: its requests carry `Host: testserver.local`, the address it 'binds'."""
EVIL = "http://evil.example"


def make_client(**overrides) -> TestClient:
    settings = replace(Settings.from_env(), embedder=KIND, **overrides)
    return TestClient(app=create_app(settings, warm_up=False))


@pytest.fixture
def client(fake_home: Path):
    with make_client() as c:
        yield c


def names(client: TestClient) -> list[str]:
    return [c["name"] for c in client.get("/collections").json()["data"]]


def test_a_cross_origin_text_plain_post_is_refused_and_writes_nothing(client):
    response = client.post("/collections", content=b'{"name": "pwned"}',
                           headers={"content-type": "text/plain", "origin": EVIL})
    e = error_of(response, 403)
    assert (e["code"], e["param"], e["type"]) == ("cross_origin_refused", "Origin", "permission_error")
    assert "pwned" not in names(client)


def test_a_cross_origin_upload_and_chat_are_refused(client):
    upload = client.post("/collections/wren/documents", files={"files": ("x.txt", b"planted text")},
                         headers={"origin": EVIL})
    assert error_of(upload, 403)["code"] == "cross_origin_refused"
    chat = client.post("/v1/chat/completions", content=b'{"model": "m", "messages": []}',
                       headers={"content-type": "text/plain", "origin": EVIL})
    assert error_of(chat, 403)["code"] == "cross_origin_refused"
    assert error_of(client.delete("/collections/wren", headers={"origin": "null"}), 403)
    assert error_of(client.post("/collections", json={"name": "p"}, headers={"origin": OWN + ":8080"}), 403)
    assert "wren" in names(client) and "p" not in names(client)


def test_same_origin_and_originless_writes_and_foreign_reads_pass(client):
    assert client.post("/collections", json={"name": "mine"}, headers={"origin": OWN}).status_code == 201
    assert client.post("/collections", json={"name": "mine2"}, headers={"origin": OWN + ":80"}).status_code == 201
    assert client.post("/collections", json={"name": "cli"}).status_code == 201  # not a browser: no Origin
    # Reading is left to the browser's same-origin policy (no CORS headers are sent).
    assert client.get("/collections", headers={"origin": EVIL}).status_code == 200


def test_cross_origin_is_refused_with_keys_too(fake_home):
    with make_client(api_keys=("k1",)) as c:
        response = c.post("/collections", json={"name": "x"},
                          headers={"origin": EVIL, "authorization": "Bearer k1"})
        assert error_of(response, 403)["code"] == "cross_origin_refused"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost.evil"])
def test_a_foreign_host_is_refused(client, host):
    e = error_of(client.get("/collections", headers={"host": host}), 400)
    assert (e["code"], e["param"]) == ("host_not_allowed", "Host")
    assert "RAG_ALLOWED_HOSTS" in e["message"]


def test_localhost_and_allowed_hosts_are_served(fake_home):
    with make_client(allowed_hosts=("rag.internal",)) as c:
        assert c.get("/collections", headers={"host": "localhost:8000"}).status_code == 200
        assert c.get("/collections", headers={"host": "RAG.internal"}).status_code == 200
        assert c.post("/collections", json={"name": "n"},
                      headers={"host": "rag.internal:8443", "origin": "http://rag.internal:8443"}).status_code == 201
        assert error_of(c.get("/collections", headers={"host": "other.internal"}), 400)
    with make_client(allowed_hosts=("*",)) as c:
        assert c.get("/collections", headers={"host": "anything.example"}).status_code == 200


def test_keys_count_only_in_authorization(fake_home):
    with make_client(api_keys=("k1",)) as c:
        assert c.get("/collections", headers={"authorization": "Bearer k1"}).status_code == 200
        error_of(c.get("/collections?api_key=k1"), 401)
        error_of(c.get("/collections?key=k1&token=k1"), 401)
        error_of(c.get("/collections", headers={"cookie": "api_key=k1; token=k1; authorization=Bearer k1"}), 401)
        error_of(c.get("/collections", headers={"x-api-key": "k1", "api-key": "k1"}), 401)


@pytest.mark.parametrize(("path", "dotted"), [
    (b"/v1/threads/../x", True), (b"/v1/threads/%2e%2E/x", True), (b"/a/%252e%252e/b", True), (b"/a/.", True),
    (b"/a/..%2fb", True), (b"/a/..%5cb", True), (b"/a/%25252525252e", True),
    (b"/collections/a..b/search", False), (b"/static/js/api.js", False), (b"/a/.hidden", False), (b"/", False),
])
def test_dot_segments(path, dotted):
    assert has_dot_segment(path) is dotted

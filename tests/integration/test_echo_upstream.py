"""The echo upstream itself, over real HTTP: the passthrough tests rely on what it promises."""

from __future__ import annotations

import threading
import time

import httpx


def test_a_request_is_recorded_byte_for_byte_and_echoed(echo_upstream):
    body = bytes(range(256)) * 4
    response = httpx.post(f"{echo_upstream.url}/any/path?b=2&a=%2F&a=", content=body,
                          headers={"content-type": "application/x-anything", "x-custom": "One", "X-Twice": "1"})
    (received,) = echo_upstream.requests
    assert (received.method, received.path, received.query) == ("POST", "/v1/any/path", "b=2&a=%2F&a=")
    assert received.body == body and received.header("content-length") == str(len(body))
    assert received.header("x-custom") == "One" and ("x-twice", "1") in received.headers
    assert received.started_at <= received.received_at
    assert (response.status_code, response.content) == (200, body)
    assert response.headers["content-type"] == "application/x-anything"
    assert response.headers["x-request-id"].startswith("req_echo")


def test_scripted_replies_come_first_in_order_then_the_echo(echo_upstream):
    echo_upstream.reply(404, b'{"error": "gone"}', headers={"content-type": "application/json", "x-a": "1"})
    echo_upstream.reply(201, b"made")
    first, second, third = (httpx.delete(f"{echo_upstream.url}/things/1") for _ in range(3))
    assert (first.status_code, first.content, first.headers["x-a"]) == (404, b'{"error": "gone"}', "1")
    assert (second.status_code, second.content) == (201, b"made")
    assert (third.status_code, third.content) == (200, b"")
    assert [r.method for r in echo_upstream.requests] == ["DELETE"] * 3


def test_chunks_are_streamed_and_a_hold_keeps_the_rest_back(echo_upstream):
    gate = echo_upstream.reply(chunks=[b"one\n", b"two\n", b"three\n"], hold_after=1,
                               headers={"content-type": "text/event-stream"})
    with httpx.stream("GET", f"{echo_upstream.url}/stream") as response:
        assert "content-length" not in response.headers
        lines = response.iter_lines()
        assert next(lines) == "one"
        released_at = time.monotonic()
        threading.Timer(0.2, gate.set).start()
        rest = list(lines)
        assert time.monotonic() - released_at >= 0.15  # the rest waited for the gate
    assert rest == ["two", "three"]


def test_a_delayed_reply_waits_then_answers(echo_upstream):
    echo_upstream.reply(503, b"late", delay_s=0.3)
    started = time.monotonic()
    response = httpx.get(f"{echo_upstream.url}/slow")
    assert time.monotonic() - started >= 0.3
    assert (response.status_code, response.content) == (503, b"late")


def test_reset_forgets_requests_and_script(echo_upstream):
    echo_upstream.reply(500)
    httpx.get(f"{echo_upstream.url}/x")
    echo_upstream.reply(500)
    echo_upstream.reset()
    assert echo_upstream.requests == []
    assert httpx.get(f"{echo_upstream.url}/x").status_code == 200

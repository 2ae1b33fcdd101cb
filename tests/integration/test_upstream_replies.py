"""Upstream garbage never becomes a silent answer (rag/upstream_replies.py, rag/openai_client.py).

The OpenAI test server is told to answer chat completions and embeddings with what a broken or
impostor upstream sends: a 200 holding invalid JSON, nothing, an HTML page, plain JSON where a
stream was asked for, chunks of the wrong shape, a stream cut off midway, an unexpected status.
Every route that relays such a reply answers 502 naming what was wrong, or, once its stream has
begun, ends it with an `error` event, never with `done`. A Retry-After longer than the time left is
answered with 429 at once. The app runs in-process on the fake-embedded sample collection.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from litestar.testing import TestClient
from support.fake_embedder import KIND
from support.openai_server import DEFAULT_REPLY
from support.responses import error_of
from support.sse import ask_events, sse_events

from api.app import create_app
from rag.config import Settings
from rag.embeddings.openai import OpenAIEmbedder
from rag.errors import UpstreamMalformed
from rag.openai_client import make_client

CHAT = "/v1/chat/completions"


def chunk(content: str | None = "hi", finish: str | None = None, **extra) -> str:
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5.4-mini",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}], **extra}
    return "data: " + json.dumps(body) + "\n\n"


PLAIN_COMPLETION = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-5.4-mini",
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi [1]."},
                                            "finish_reason": "stop"}]})

# (name, status, body, content type, what the error message must name)
AT_OPEN = [
    ("invalid-json", 200, "{not json", "application/json", "application/json where an event stream"),
    ("html", 200, "<html><body>Bad gateway</body></html>", "text/html", "text/html where an event stream"),
    ("plain-json-for-a-stream", 200, PLAIN_COMPLETION, "application/json", "where an event stream"),
    ("empty-no-type", 200, "", "", "no content type"),
    ("status-201", 201, chunk(finish="stop") + "data: [DONE]\n\n", "text/event-stream", "status 201"),
]
"""Replies refused before the stream opens: every route answers 502."""

IN_STREAM = [
    ("empty-stream", "", "without any completion chunk"),
    ("only-done", "data: [DONE]\n\n", "without any completion chunk"),
    ("choices-null", chunk(choices=None) + "data: [DONE]\n\n", "`choices` is NoneType"),
    ("delta-missing", 'data: {"choices": [{"index": 0}]}\n\ndata: [DONE]\n\n', "without a `delta`"),
    ("content-number", chunk(content=7) + "data: [DONE]\n\n", "`content` is int"),
    ("event-not-json", chunk() + "data: {oops\n\n", "not JSON"),
    ("event-a-list", "data: [1, 2]\n\n", "JSON list"),
    ("cut-off", chunk("The answer") + chunk(" is"), "ended before the answer finished"),
    ("error-mid-stream", chunk("The") + 'data: {"error": {"message": "overloaded, try later"}}\n\n', "overloaded"),
]
"""Replies that open as an event stream and go wrong inside it."""


@pytest.fixture
def client(fake_home, openai_server):
    settings = replace(Settings.from_env(), embedder=KIND, openai_api_key="sk-test",
                       openai_base_url=openai_server.url, openai_timeout_s=10.0)
    with TestClient(app=create_app(settings, warm_up=False)) as c:
        yield c


def garbage(openai_server, status: int, body: str, content_type: str) -> None:
    # Three times: the retries (of a 5xx) would see the same.
    openai_server.fail_next(status, times=3, body=body.encode(), content_type=content_type, path=CHAT,
                            retry_after_ms=None)


def ask(client, stream: bool = False):
    return client.post("/collections/wren/ask", json={"question": "What is a quorum?", "stream": stream})


def chat(client, stream: bool = False):
    return client.post(CHAT, json={"collection": "wren", "stream": stream,
                                   "messages": [{"role": "user", "content": "What is a quorum?"}]})


def test_a_sound_reply_still_answers(client, openai_server):
    assert ask(client).json()["answer"] == DEFAULT_REPLY
    events = ask_events(ask(client, stream=True).text)
    assert [name for name, _ in events][-2:] == ["citations", "done"]


@pytest.mark.parametrize(("status", "body", "content_type", "named"),
                         [case[1:] for case in AT_OPEN], ids=[case[0] for case in AT_OPEN])
@pytest.mark.parametrize("route", ["ask", "ask-stream", "chat", "chat-stream"])
def test_a_reply_of_the_wrong_kind_is_a_502_naming_it(client, openai_server, route, status, body, content_type,
                                                       named):
    garbage(openai_server, status, body, content_type)
    call, stream = (ask if route.startswith("ask") else chat), route.endswith("stream")
    e = error_of(call(client, stream=stream), 502)
    assert e["code"] == "upstream_malformed" and named in e["message"], e["message"]


@pytest.mark.parametrize(("body", "named"), [case[1:] for case in IN_STREAM], ids=[case[0] for case in IN_STREAM])
def test_a_broken_stream_is_a_502_when_answered_whole(client, openai_server, body, named):
    garbage(openai_server, 200, body, "text/event-stream")
    e = error_of(ask(client), 502)
    assert named in e["message"], e["message"]
    garbage(openai_server, 200, body, "text/event-stream")
    e = error_of(chat(client), 502)
    assert named in e["message"], e["message"]


@pytest.mark.parametrize(("body", "named"), [case[1:] for case in IN_STREAM], ids=[case[0] for case in IN_STREAM])
def test_a_broken_stream_ends_with_an_error_event_never_done(client, openai_server, body, named):
    garbage(openai_server, 200, body, "text/event-stream")
    events = ask_events(ask(client, stream=True).text)
    assert events[-1][0] == "error" and named in events[-1][1]["message"], events
    assert "done" not in [name for name, _ in events]
    garbage(openai_server, 200, body, "text/event-stream")
    data = [d for _, d in sse_events(chat(client, stream=True).text)]
    last = json.loads(data[-2])
    assert data[-1] == "[DONE]" and named in last["error"]["message"], data
    assert not any('"finish_reason":"stop"' in d for d in data)


def test_a_retry_after_longer_than_the_time_left_is_a_429_at_once(client, openai_server):
    openai_server.fail_next(429, times=5, headers={"retry-after": "30"}, retry_after_ms=None, path=CHAT)
    started = time.monotonic()
    response = ask(client)
    e = error_of(response, 429)
    assert time.monotonic() - started < 5  # not 30 s, twice
    assert response.headers["retry-after"] == "30" and "retry after 30 s" in e["message"]
    assert len(openai_server.requests_to(CHAT)) == 1


def test_a_short_retry_after_is_waited_for(client, openai_server):
    openai_server.fail_next(429, times=1, headers={"retry-after": "1"}, retry_after_ms=None, path=CHAT)
    started = time.monotonic()
    assert ask(client).json()["answer"] == DEFAULT_REPLY
    assert 1.0 <= time.monotonic() - started < 8
    assert len(openai_server.requests_to(CHAT)) == 2


# -- the openai embedder --------------------------------------------------------------------------

EMBEDDINGS = [
    ("invalid-json", 200, "{not json", "application/json", "invalid JSON"),
    ("empty", 200, "", "application/json", "an empty body"),
    ("html", 200, "<html>sorry</html>", "text/html", "text/html where JSON"),
    ("a-list", 200, "[]", "application/json", "JSON list where an object"),
    ("data-null", 200, '{"data": null}', "application/json", "`data` is NoneType"),
    ("no-index", 200, '{"data": [{"embedding": [0.1]}]}', "application/json", "integer `index`"),
    ("bad-vector", 200, '{"data": [{"index": 0, "embedding": {"x": 1}}]}', "application/json", "neither base64"),
    ("bad-base64", 200, '{"data": [{"index": 0, "embedding": "!!!"}]}', "application/json", "cannot be decoded"),
    ("too-few", 200, '{"data": []}', "application/json", "0 embeddings for 1 inputs"),
    ("status-204", 204, "", "application/json", "status 204"),
]


@pytest.mark.parametrize(("status", "body", "content_type", "named"),
                         [case[1:] for case in EMBEDDINGS], ids=[case[0] for case in EMBEDDINGS])
def test_embedding_replies_are_checked(openai_server, rag_env, status, body, content_type, named):
    settings = Settings(home=rag_env, openai_api_key="sk-test", openai_base_url=openai_server.url,
                        openai_timeout_s=10.0)
    embedder = OpenAIEmbedder.from_settings(settings, client=make_client(settings, max_retries=0))
    openai_server.fail_next(status, body=body.encode(), content_type=content_type, retry_after_ms=None)
    with pytest.raises(UpstreamMalformed) as caught:
        embedder.embed(["one text"])
    assert caught.value.status == 502 and named in str(caught.value), str(caught.value)

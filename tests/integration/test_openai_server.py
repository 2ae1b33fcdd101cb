"""The OpenAI test server itself, through the official SDK: later tests rely on what it promises."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import openai
import pytest
from support.openai_server import DEFAULT_REPLY, expected_embedding

from rag.tokens import count_chat_tokens, count_tokens


@pytest.fixture
def client(openai_server) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=openai_server.url, max_retries=0, timeout=10)


MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Capital of France?"}]


def test_chat_completion_replies_from_the_script_and_records_the_prompt(openai_server, client):
    openai_server.set_reply("Paris [1].", lambda body: f"echo: {body['messages'][-1]['content']}")
    first = client.chat.completions.create(model="gpt-5.4-mini", messages=MESSAGES)
    second = client.chat.completions.create(model="gpt-5.4-mini", messages=MESSAGES)
    third = client.chat.completions.create(model="gpt-5.4-mini", messages=MESSAGES)
    assert first.choices[0].message.content == "Paris [1]."
    assert second.choices[0].message.content == "echo: Capital of France?"
    assert third.choices[0].message.content == DEFAULT_REPLY
    assert first.usage.prompt_tokens == count_chat_tokens(MESSAGES, "gpt-5.4-mini")
    assert first.usage.completion_tokens == count_tokens("Paris [1].", "o200k_base")
    request = openai_server.requests[0]
    assert (request.method, request.path, request.query) == ("POST", "/v1/chat/completions", "")
    assert request.header("content-type") == "application/json"
    assert request.json()["messages"] == MESSAGES


def test_streamed_chat_completion_yields_chunks_then_usage(openai_server, client):
    openai_server.set_reply("Paris is the capital [1].")
    stream = client.chat.completions.create(model="gpt-5.4-mini", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Paris is the capital [1]."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_raw_stream_ends_with_done(openai_server):
    with httpx.stream("POST", f"{openai_server.url}/chat/completions",
                      json={"model": "m", "messages": MESSAGES, "stream": True}) as response:
        assert response.headers["content-type"] == "text/event-stream"
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_a_held_stream_delivers_its_first_event_before_the_rest(openai_server):
    openai_server.set_reply("one two three")
    gate = openai_server.hold_stream(after=1)
    got: list[tuple[float, str]] = []
    with httpx.stream("POST", f"{openai_server.url}/chat/completions",
                      json={"model": "m", "messages": MESSAGES, "stream": True}) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line)
        released_at = time.monotonic()
        threading.Timer(0.2, gate.set).start()
        got = [(time.monotonic(), line) for line in lines if line]
    assert '"role": "assistant"' in first
    assert got[0][0] - released_at >= 0.15  # the rest waited for the gate
    assert got[-1][1] == "data: [DONE]"


def test_embeddings_in_float_and_base64(openai_server, client):
    floats = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"],
                                      encoding_format="float", dimensions=16)
    decoded = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=16)
    assert [d.index for d in floats.data] == [0, 1]
    for row_f, row_d, text in zip(floats.data, decoded.data, "ab", strict=True):
        np.testing.assert_allclose(row_f.embedding, expected_embedding(text, dimensions=16), rtol=1e-6)
        np.testing.assert_allclose(row_d.embedding, expected_embedding(text, dimensions=16), rtol=1e-6)
    assert openai_server.requests[1].json()["encoding_format"] == "base64"  # the SDK's default
    assert floats.usage.prompt_tokens == 2


def test_embeddings_enforce_openais_limits(openai_server, client):
    with pytest.raises(openai.BadRequestError, match="at most 2048"):
        client.embeddings.create(model="text-embedding-3-small", input=["x"] * 2049)
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.embeddings.create(model="text-embedding-3-small", input="hi" + " hello" * 9000)


def test_models_and_unknown_routes(openai_server, client):
    assert "gpt-5.4-mini" in [m.id for m in client.models.list()]
    assert client.models.retrieve("gpt-5.4-mini").owned_by == "test-server"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    response = httpx.post(f"{openai_server.url}/nothing/here")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (POST /v1/nothing/here)"


def test_faults_apply_to_the_next_requests_only(openai_server, client):
    openai_server.fail_next(503, times=2, path="/v1/models")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as caught:
            client.models.list()
        assert caught.value.status_code == 503 and caught.value.request_id.startswith("req_test")
    assert client.models.list().data
    assert len(openai_server.requests) == 3


def test_reset_forgets_everything(openai_server, client):
    openai_server.set_reply("x")
    openai_server.fail_next(500)
    openai_server.reset()
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == DEFAULT_REPLY
    assert len(openai_server.requests) == 1

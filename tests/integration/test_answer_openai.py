"""Answers from an OpenAI-compatible chat model, over real HTTP to the OpenAI test server.

The app runs in-process (Litestar's TestClient, so its lifespan runs) on a real store and the real
local embedder; every chat completion goes over HTTP to the test server on 127.0.0.1, which records
the prompt it received and can be told to fail, stall or say something with bad citations.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from litestar.testing import TestClient
from support.responses import error_of
from support.sse import ask_events, chat_chunks

from api.app import create_app
from rag.answer import SYSTEM_PROMPT, build_messages
from rag.config import Settings
from rag.tokens import count_chat_tokens, encoding_for_model

CHAT_MODEL = "gpt-5.4-mini"
QUESTION = "How many panels are on the school roof?"
BAD_CITATIONS = "The school has 540 panels [1]. See also [7] and [2, 9]."
# [7] and the 9 of [2, 9] point at no passage (5 are sent): both go, the rest stays as written.
FILTERED = "The school has 540 panels [1]. See also  and [2]."  # streamed: text already sent stays
FILTERED_PLAIN = "The school has 540 panels [1]. See also and [2]."  # whole answers are tidied


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture
def start(home, openai_server, monkeypatch):
    """Open the app with OPENAI_API_KEY set and the test server as OPENAI_BASE_URL (plus `env`)."""
    clients: list[TestClient] = []

    def open_client(**env: str) -> TestClient:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", openai_server.url)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        client = TestClient(app=create_app(Settings.from_env(), warm_up=False))
        clients.append(client.__enter__())
        return client

    yield open_client
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(start) -> TestClient:
    return start()


def search(client: TestClient, question: str = QUESTION, k: int = 5) -> list[dict]:
    r = client.post("/collections/wren/search", json={"query": question, "k": k})
    assert r.status_code == 200, r.text
    return r.json()["hits"]


def sent_prompt(openai_server) -> tuple[dict, str]:
    """The last chat request the test server received, and its user message."""
    body = openai_server.requests_to("/v1/chat/completions")[-1].json()
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["role"] == "user"
    return body, user["content"]


def passages_in(prompt: str) -> int:
    return sum(1 for line in prompt.splitlines() if line.startswith("[") and "] (" in line)


def tokens_of(usage: dict) -> dict:
    """OpenAI's token counts of an answer's usage (the rest is checked in test_conversations.py)."""
    return {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def upstream_usage(body: dict, reply: str) -> dict:
    """The usage the test server reports for this request and reply."""
    prompt = count_chat_tokens(body["messages"], body["model"])
    completion = len(encoding_for_model(body["model"]).encode(reply))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# -- the prompt and the citations -----------------------------------------------------------------

def test_prompt_holds_numbered_passages_and_citations_map_to_them(client, openai_server):
    hits = search(client)
    openai_server.set_reply(BAD_CITATIONS)
    r = client.post("/collections/wren/ask", json={"question": QUESTION, "temperature": 0.2, "max_tokens": 300})
    assert r.status_code == 200, r.text
    answer = r.json()

    body, prompt = sent_prompt(openai_server)
    assert body["model"] == CHAT_MODEL and body["stream"] is True
    assert body["temperature"] == 0.2 and body["max_completion_tokens"] == 300 and "max_tokens" not in body
    assert openai_server.requests_to("/v1/chat/completions")[-1].header("authorization") == "Bearer test-key"
    assert prompt.startswith("Passages:\n\n[1] (") and prompt.endswith(f"\n\nQuestion: {QUESTION}")
    # Passage n is the n-th hit of the same search, in order.
    positions = []
    for n, hit in enumerate(hits, start=1):
        header = prompt.index(f"[{n}] (")
        assert prompt.index(hit["text"].strip(), header) > header
        positions.append(header)
    assert positions == sorted(positions) and passages_in(prompt) == len(hits) == 5

    assert answer["answer"] == FILTERED_PLAIN
    assert answer["model"] == CHAT_MODEL
    assert [c["index"] for c in answer["citations"]] == [1, 2]
    for c in answer["citations"]:
        hit = hits[c["index"] - 1]
        assert (c["chunk_id"], c["document_id"], c["quote"]) == (hit["chunk_id"], hit["document_id"], hit["text"])
        assert (c["start_char"], c["end_char"], c["source"]) == (hit["start_char"], hit["end_char"], hit["source"])
        text = client.get(f"/collections/wren/documents/{c['document_id']}").json()["text"]
        assert text[c["start_char"]:c["end_char"]] == c["quote"]
    assert tokens_of(answer["usage"]) == upstream_usage(body, BAD_CITATIONS)


def test_streamed_answer_drops_bad_markers_split_across_chunks(client, openai_server):
    hits = search(client)
    openai_server.set_reply(BAD_CITATIONS)
    r = client.post("/collections/wren/ask", json={"question": QUESTION, "stream": True, "max_tokens": 100})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = ask_events(r.text)
    kinds = [k for k, _ in events]
    assert kinds[-2:] == ["citations", "done"] and set(kinds[:-2]) == {"delta"}
    deltas = [d["text"] for k, d in events if k == "delta"]
    # The test server sends "[2," and " 9]." in separate chunks: the marker is held back whole.
    assert len(deltas) > 5 and not any(d.endswith(("[2", "[2,")) for d in deltas)
    assert "".join(deltas) == FILTERED
    citations, done = events[-2][1], events[-1][1]
    assert [(c["index"], c["chunk_id"]) for c in citations] == [(1, hits[0]["chunk_id"]), (2, hits[1]["chunk_id"])]
    body, _ = sent_prompt(openai_server)
    assert body["max_completion_tokens"] == 100 and "temperature" not in body
    assert done["model"] == CHAT_MODEL and tokens_of(done["usage"]) == upstream_usage(body, BAD_CITATIONS)


def test_chat_completions_with_a_collection_use_the_chat_model(client, openai_server):
    hits = search(client)
    messages = [{"role": "user", "content": QUESTION}]
    openai_server.set_reply(BAD_CITATIONS, BAD_CITATIONS)
    r = client.post("/v1/chat/completions", json={"model": CHAT_MODEL, "collection": "wren", "messages": messages,
                                                  "max_tokens": 50})
    assert r.status_code == 200, r.text
    plain = r.json()
    assert plain["model"] == CHAT_MODEL and plain["choices"][0]["message"]["content"] == FILTERED_PLAIN
    assert [(c["index"], c["chunk_id"]) for c in plain["citations"]] == [(1, hits[0]["chunk_id"]),
                                                                         (2, hits[1]["chunk_id"])]
    assert sent_prompt(openai_server)[0]["max_completion_tokens"] == 50

    streamed = client.post("/v1/chat/completions", json={"model": CHAT_MODEL, "collection": "wren",
                                                         "messages": messages, "stream": True})
    chunks = chat_chunks(streamed.text)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == FILTERED
    assert chunks[-1]["citations"] == plain["citations"]
    assert tokens_of(chunks[-1]["usage"]) == upstream_usage(sent_prompt(openai_server)[0], BAD_CITATIONS)


# -- upstream failures ----------------------------------------------------------------------------

def test_upstream_429_stays_429_after_the_retries(client, openai_server):
    openai_server.fail_next(429, times=3)
    err = error_of(client.post("/collections/wren/ask", json={"question": QUESTION}), 429)
    assert err["type"] == "rate_limit_error" and "rate limit" in err["message"].lower()
    assert len(openai_server.requests_to("/v1/chat/completions")) == 3  # the first try and two retries
    # Streamed too: the failure comes before the stream opens, so it keeps its status.
    openai_server.fail_next(429, times=3)
    error_of(client.post("/collections/wren/ask", json={"question": QUESTION, "stream": True}), 429)
    openai_server.fail_next(429, times=3)
    err = error_of(client.post("/v1/chat/completions", json={
        "model": CHAT_MODEL, "collection": "wren", "messages": [{"role": "user", "content": QUESTION}]}), 429)
    assert err["type"] == "rate_limit_error"


def test_upstream_500_becomes_502(client, openai_server):
    openai_server.fail_next(500, times=3)
    err = error_of(client.post("/collections/wren/ask", json={"question": QUESTION}), 502)
    assert err["type"] == "upstream_error" and "500" in err["message"]
    assert len(openai_server.requests_to("/v1/chat/completions")) == 3
    # One failure is retried away by the SDK: the caller never sees it.
    openai_server.fail_next(500, times=1)
    openai_server.set_reply("Fine [1].")
    ok = client.post("/collections/wren/ask", json={"question": QUESTION})
    assert ok.status_code == 200 and ok.json()["answer"] == "Fine [1]."


def test_upstream_timeout_becomes_504(start, openai_server):
    client = start(RAG_OPENAI_TIMEOUT_S="0.5")
    openai_server.slow_next(30.0, times=3)
    started = time.monotonic()
    err = error_of(client.post("/collections/wren/ask", json={"question": QUESTION}), 504)
    assert err["type"] == "timeout_error" and "RAG_OPENAI_TIMEOUT_S" in err["message"]
    assert time.monotonic() - started < 10.0  # three 0.5 s attempts and the backoff, not the upstream's 30 s
    assert len(openai_server.requests_to("/v1/chat/completions")) == 3


# -- the /v1 routes with a key --------------------------------------------------------------------

def test_chat_completions_without_a_collection_pass_through(client, openai_server):
    openai_server.set_reply("Hello from upstream.")
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Say hello"}], "temperature": 0.5}
    r = client.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer caller-key"})
    assert r.status_code == 200, r.text
    upstream = r.json()
    assert upstream["object"] == "chat.completion" and upstream["id"].startswith("chatcmpl_test")
    assert upstream["choices"][0]["message"]["content"] == "Hello from upstream."
    assert "citations" not in upstream
    [sent] = openai_server.requests_to("/v1/chat/completions")
    assert sent.json() == body  # forwarded unchanged, with the service's key instead of the caller's
    assert sent.header("authorization") == "Bearer test-key"

    openai_server.set_reply("Streamed from upstream.")
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True})
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    chunks = chat_chunks(streamed.text)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Streamed from upstream."
    assert "citations" not in chunks[-1]
    # The upstream's errors come back as they were sent: the caller's SDK decides about retrying.
    openai_server.fail_next(429)
    err = error_of(client.post("/v1/chat/completions", json=body), 429)
    assert err == {"message": "Rate limit reached for requests.", "type": "requests", "param": None,
                   "code": "rate_limit_exceeded"}


def test_models_list_the_chat_model_with_a_key(start):
    client = start(RAG_CHAT_MODEL="local-llm")
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["all-MiniLM-L6-v2", "extractive", "local-llm"]


# -- fitting the context to the model's window ----------------------------------------------------

def test_passages_are_fitted_to_the_context_window(start, openai_server):
    window, reply_tokens, k = 1200, 200, 10
    client = start(RAG_CHAT_MODEL="local-llm", RAG_CHAT_CONTEXT_TOKENS=str(window))
    hits = search(client, k=k)
    assert len(hits) == k
    openai_server.set_reply("Many [1].")
    r = client.post("/collections/wren/ask", json={"question": QUESTION, "k": k, "max_tokens": reply_tokens})
    assert r.status_code == 200, r.text
    assert r.json()["citations"][0]["chunk_id"] == hits[0]["chunk_id"]

    body, prompt = sent_prompt(openai_server)
    assert body["model"] == "local-llm" and body["max_completion_tokens"] == reply_tokens
    sent = passages_in(prompt)
    assert 1 <= sent < k
    assert count_chat_tokens(body["messages"], "local-llm") + reply_tokens <= window
    # The longest prefix that fits: the same search's hits, in order, and one more would not fit.
    as_hits = [SimpleNamespace(**h) for h in hits]
    assert body["messages"] == build_messages(QUESTION, as_hits[:sent])
    assert count_chat_tokens(build_messages(QUESTION, as_hits[:sent + 1]), "local-llm") + reply_tokens > window

    # A window the question alone overflows is the caller's problem to fix, not a 500.
    small = start(RAG_CHAT_MODEL="local-llm", RAG_CHAT_CONTEXT_TOKENS="256")
    err = error_of(small.post("/collections/wren/ask", json={"question": QUESTION, "max_tokens": reply_tokens}), 400)
    assert "context window" in err["message"]


def test_a_model_the_caller_names_and_the_upstream_refuses_is_400(client, openai_server):
    openai_server.fail_next(404, path="/v1/chat/completions")
    r = client.post("/collections/wren/ask", json={"question": "How much is a share?", "model": "gpt-typo"})
    assert r.status_code == 400, r.text
    assert "gpt-typo" in r.json()["error"]["message"]


def test_wait_true_answers_with_the_failures_status(start, openai_server):
    client = start()
    created = client.post("/collections", json={"name": "remote", "embedder": "openai"})
    assert created.status_code == 201, created.text
    openai_server.fail_next(429, times=3, path="/v1/embeddings")  # the first try and both retries
    r = client.post("/collections/remote/documents?wait=true", json={"documents": [{"text": "Bees make honey."}]})
    assert r.status_code == 429, r.text
    [doc] = r.json()["error"]["documents"]
    assert doc["status"] == "failed" and "rate" in doc["error"].lower()
    ok = client.post("/collections/remote/documents?wait=true", json={"documents": [{"text": "Bees make honey."}]})
    assert ok.status_code == 201 and ok.json()["data"][0]["status"] == "ready"

"""Conversations: `/ask` with `messages`, `/v1/chat/completions` with the whole list.

A scripted three-turn conversation over the sample corpus, offline (the extractive answerer and its
rule-based rewrite) and through the chat model path (the OpenAI test server on 127.0.0.1, which
records what it received: the rewrite call and the answer call of each turn). Then the window:
oldest turns go first, and passages go from the lowest-ranked up only when even the question and
the passages do not fit.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from litestar.testing import TestClient
from support.responses import error_of

from api.app import create_app
from rag.answer import REWRITE_PROMPT, SYSTEM_PROMPT, build_messages
from rag.config import Settings
from rag.tokens import count_chat_tokens, encoding_for_model

CHAT_MODEL = "gpt-5.4-mini"
TURNS = ["How many panels are on the school roof?", "And on the barn?", "When did it start generating?"]
ARRAYS = "the-arrays.html"


def upstream_tokens(body: dict, reply: str) -> dict:
    """The usage the test server reports for this request and reply."""
    prompt = count_chat_tokens(body["messages"], body["model"])
    completion = len(encoding_for_model(body["model"]).encode(reply))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@pytest.fixture
def offline(home) -> TestClient:
    with TestClient(app=create_app(Settings.from_env(), warm_up=False)) as client:
        yield client


@pytest.fixture
def start(home, openai_server, monkeypatch):
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


# -- three turns, offline -------------------------------------------------------------------------

def test_three_turns_offline_through_ask_and_chat_completions(offline: TestClient) -> None:
    messages: list[dict] = []
    answers = []
    for turn in TURNS:
        messages.append({"role": "user", "content": turn})
        r = offline.post("/collections/wren/ask", json={"messages": messages})
        assert r.status_code == 200, r.text
        answer = r.json()
        answers.append(answer)
        messages.append({"role": "assistant", "content": answer["answer"]})
    first, second, third = answers
    assert "540 panels" in first["answer"] and "180 panels" in second["answer"] and "3 May 2022" in third["answer"]
    assert "540" not in second["answer"]  # the follow-up is about the barn, not the school again
    for answer in answers:
        assert answer["citations"][0]["source"].endswith(ARRAYS) and answer["citations"][0]["index"] == 1
        assert answer["usage"]["rewrite"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert [a["usage"]["context"]["turns_sent"] for a in answers] == [0, 2, 4]

    # /v1/chat/completions reads the same list the same way.
    r = offline.post("/v1/chat/completions", json={"model": "extractive", "collection": "wren",
                                                   "messages": messages[:3]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == second["answer"]
    # Without the earlier turns the fragment cannot be answered as the conversation meant it.
    alone = offline.post("/collections/wren/ask", json={"question": TURNS[1]}).json()
    assert "180 panels" not in alone["answer"]


def test_ask_takes_either_question_or_messages(offline: TestClient) -> None:
    both = {"question": "q", "messages": [{"role": "user", "content": "q"}]}
    assert error_of(offline.post("/collections/wren/ask", json=both), 400)["param"] == "messages"
    assert error_of(offline.post("/collections/wren/ask", json={}), 400)["param"] == "question"
    assert error_of(offline.post("/collections/wren/ask", json={"messages": []}), 400)["param"] == "messages"
    no_user = {"messages": [{"role": "assistant", "content": "hello"}]}
    assert error_of(offline.post("/collections/wren/ask", json=no_user), 400)["param"] == "messages"


# -- three turns, through the chat model ----------------------------------------------------------

def test_three_turns_through_the_chat_model(start, openai_server) -> None:
    client = start()
    rewrites = ["How many panels are on the barn roof?", "When did the barn array start generating?"]
    replies = ["There are 540 panels [1].", "The barn has 180 panels [2].", "On 3 May 2022 [1]."]
    # Turn 1 needs no rewrite; turns 2 and 3 make one rewrite call each, before their answer.
    openai_server.set_reply(replies[0], rewrites[0], replies[1], rewrites[1], replies[2])
    messages: list[dict] = []
    answers = []
    for turn in TURNS:
        messages.append({"role": "user", "content": turn})
        r = client.post("/collections/wren/ask", json={"messages": messages})
        assert r.status_code == 200, r.text
        answers.append(r.json())
        messages.append({"role": "assistant", "content": answers[-1]["answer"]})

    calls = [r.json() for r in openai_server.requests_to("/v1/chat/completions")]
    assert [c.get("stream", False) for c in calls] == [True, False, True, False, True]
    answer_calls, rewrite_calls = [calls[0], calls[2], calls[4]], [calls[1], calls[3]]
    # Each rewrite call sees the conversation so far and the question to make standalone.
    for n, call in enumerate(rewrite_calls, start=1):
        assert call["model"] == CHAT_MODEL
        assert call["messages"] == [{"role": "system", "content": REWRITE_PROMPT}, *messages[:2 * n],
                                    {"role": "user", "content": TURNS[n]}]
    # Each answer call gets the whole conversation, with the passages retrieved for the rewritten
    # question under the last one.
    for n, call in enumerate(answer_calls):
        retrieval_question = TURNS[0] if n == 0 else rewrites[n - 1]
        hits = client.post("/collections/wren/search", json={"query": retrieval_question, "k": 5}).json()["hits"]
        expected = build_messages(TURNS[n], [SimpleNamespace(**h) for h in hits], messages[:2 * n])
        assert call["messages"] == expected
        assert call["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    # The model's [2] is the reader's [1]; its passage rank stays in `passage`.
    assert answers[1]["answer"] == "The barn has 180 panels [1]."
    assert [(c["index"], c["passage"]) for c in answers[1]["citations"]] == [(1, 2)]
    # Usage: the answer call's tokens as the upstream counted them, and the rewrite call's apart.
    for n, answer in enumerate(answers):
        usage = answer["usage"]
        assert {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")} == \
            upstream_tokens(answer_calls[n], replies[n])
        expected_rewrite = (upstream_tokens(rewrite_calls[n - 1], rewrites[n - 1]) if n else
                            {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
        assert usage["rewrite"] == expected_rewrite
        assert usage["context"] == {"passages_sent": 5, "passages_dropped": 0, "turns_sent": 2 * n,
                                    "turns_dropped": 0}


def test_chat_completions_send_the_whole_conversation_upstream(start, openai_server) -> None:
    client = start()
    openai_server.set_reply("How many panels are on the barn roof?", "180 panels [1].")
    messages = [{"role": "system", "content": "Answer in one sentence."},
                {"role": "user", "content": TURNS[0]}, {"role": "assistant", "content": "540 panels [1]."},
                {"role": "user", "content": TURNS[1]}]
    r = client.post("/v1/chat/completions", json={"model": CHAT_MODEL, "collection": "wren", "messages": messages,
                                                  "stream": True})
    assert r.status_code == 200, r.text
    chunks = [json.loads(line.removeprefix("data: ")) for line in r.text.split("\n\n")
              if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "180 panels [1]."
    rewrite, answer = [q.json() for q in openai_server.requests_to("/v1/chat/completions")]
    assert rewrite["messages"][1:] == messages[1:]  # the caller's instructions are not the rewriter's
    assert answer["messages"][:4] == [{"role": "system", "content": SYSTEM_PROMPT}, messages[0], messages[1],
                                      messages[2]]
    assert answer["messages"][4]["content"].endswith(f"Question: {TURNS[1]}")
    assert chunks[-1]["usage"]["rewrite"] == upstream_tokens(rewrite, "How many panels are on the barn roof?")


# -- fitting a conversation to the window ---------------------------------------------------------

def _long_conversation(turns: int) -> list[dict]:
    messages = []
    for n in range(turns):
        messages.append({"role": "user", "content": f"Question {n} about the co-operative's arrays and shares?"})
        messages.append({"role": "assistant", "content": f"Answer {n}: " + "the arrays are on two roofs. " * 40})
    return messages


def test_oldest_turns_go_first_and_the_passages_stay(start, openai_server) -> None:
    window, reply_tokens = 2500, 200
    client = start(RAG_CHAT_MODEL="local-llm", RAG_CHAT_CONTEXT_TOKENS=str(window))
    history = _long_conversation(6)
    messages = [*history, {"role": "user", "content": TURNS[0]}]
    openai_server.set_reply("How many panels are on the school roof?", "540 [1].")
    r = client.post("/collections/wren/ask", json={"messages": messages, "max_tokens": reply_tokens})
    assert r.status_code == 200, r.text
    context = r.json()["usage"]["context"]
    sent = openai_server.requests_to("/v1/chat/completions")[-1].json()["messages"]
    kept = context["turns_sent"]
    assert context["passages_sent"] == 5 and context["passages_dropped"] == 0
    assert 0 < kept < len(history) and context["turns_dropped"] == len(history) - kept
    assert sent[1:-1] == history[-kept:]  # the newest turns, in order
    assert count_chat_tokens(sent, "local-llm") + reply_tokens <= window
    # One more turn would not have fitted.
    hits = client.post("/collections/wren/search", json={"query": TURNS[0], "k": 5}).json()["hits"]
    one_more = build_messages(TURNS[0], [SimpleNamespace(**h) for h in hits], history[-kept - 1:])
    assert count_chat_tokens(one_more, "local-llm") + reply_tokens > window


def test_passages_go_from_the_lowest_ranked_up_when_nothing_else_can(start, openai_server) -> None:
    window, reply_tokens = 1200, 200
    client = start(RAG_CHAT_MODEL="local-llm", RAG_CHAT_CONTEXT_TOKENS=str(window))
    messages = [*_long_conversation(2), {"role": "user", "content": TURNS[0]}]
    openai_server.set_reply("How many panels are on the school roof?", "540 [1].")
    r = client.post("/collections/wren/ask", json={"messages": messages, "k": 10, "max_tokens": reply_tokens})
    assert r.status_code == 200, r.text
    context = r.json()["usage"]["context"]
    assert context["turns_sent"] == 0 and context["turns_dropped"] == 4
    assert 1 <= context["passages_sent"] < 10 and context["passages_dropped"] == 10 - context["passages_sent"]
    sent = openai_server.requests_to("/v1/chat/completions")[-1].json()["messages"]
    hits = client.post("/collections/wren/search", json={"query": TURNS[0], "k": 10}).json()["hits"]
    assert sent == build_messages(TURNS[0], [SimpleNamespace(**h) for h in hits[:context["passages_sent"]]])

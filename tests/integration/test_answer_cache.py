"""The answer cache: extractive answers and temperature-0 chat answers replayed from the store,
streamed replays the same events, stale entries gone on write, least recently used beyond the cap."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, text
from support.sse import ask_events, chat_chunks

from api.app import create_app
from rag.config import Settings

QUESTION = "How many panels are on the school roof?"
CHAT_MODEL = "gpt-5.4-mini"


@pytest.fixture
def start(home, monkeypatch):
    clients: list[TestClient] = []

    def open_client(**env: str) -> TestClient:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        client = TestClient(app=create_app(Settings.from_env(), warm_up=False))
        clients.append(client.__enter__())
        return client

    yield open_client
    for client in clients:
        client.__exit__(None, None, None)


def ask(client: TestClient, question: str = QUESTION, **body) -> dict:
    r = client.post("/collections/wren/ask", json={"question": question, **body})
    assert r.status_code == 200, r.text
    return r.json()


def rows(home: Path) -> list[tuple[int, int]]:
    """(collection_id, change_number) of every kept answer."""
    engine = create_engine(f"sqlite:///{home / 'rag.sqlite3'}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT collection_id, change_number FROM answer_cache"))]
    finally:
        engine.dispose()


def test_an_extractive_answer_is_replayed_and_says_so(start, home: Path) -> None:
    client = start()
    first, second = ask(client), ask(client)
    assert first["usage"]["cached"] is False and second["usage"]["cached"] is True
    assert second["usage"]["cost_usd"] == 0.0
    assert {**second, "usage": None} == {**first, "usage": None}
    assert {k: v for k, v in second["usage"].items() if k not in ("cached", "cost_usd")} == \
        {k: v for k, v in first["usage"].items() if k not in ("cached", "cost_usd")}
    assert len(rows(home)) == 1
    # Anything that shapes the answer is in the key: another k is another answer.
    assert ask(client, k=3)["usage"]["cached"] is False
    # The same conversation asked as messages (white space aside) is the same answer.
    same = client.post("/collections/wren/ask", json={"messages": [{"role": "user", "content": f"  {QUESTION} "}]})
    assert same.json()["usage"]["cached"] is True
    chat = client.post("/v1/chat/completions", json={"model": "extractive", "collection": "wren",
                                                     "messages": [{"role": "user", "content": QUESTION}]}).json()
    assert chat["usage"]["cached"] is True and chat["choices"][0]["message"]["content"] == first["answer"]


def test_a_streamed_replay_sends_the_same_events(start) -> None:
    client = start()
    fresh = ask_events(client.post("/collections/wren/ask", json={"question": QUESTION, "stream": True}).text)
    replay = ask_events(client.post("/collections/wren/ask", json={"question": QUESTION, "stream": True}).text)
    assert [kind for kind, _ in replay] == [kind for kind, _ in fresh]
    assert replay[:-1] == fresh[:-1]  # every delta and the citations
    (_, done_fresh), (_, done_replay) = fresh[-1], replay[-1]
    assert done_fresh["usage"]["cached"] is False and done_replay["usage"]["cached"] is True
    assert {**done_replay, "usage": {**done_replay["usage"], "cached": False}} == done_fresh
    # A streamed answer is kept whole: the plain ask replays it.
    assert ask(client)["usage"]["cached"] is True


def test_a_write_to_the_collection_retires_its_answers(start, home: Path) -> None:
    client = start()
    ask(client)
    [(collection_id, change)] = rows(home)
    added = client.post("/collections/wren/documents?wait=true",
                        json={"documents": [{"text": "The bike shed has 12 panels.", "source": "shed.txt"}]})
    assert added.status_code == 201, added.text
    after = ask(client)
    assert after["usage"]["cached"] is False
    # Writing the new answer deleted the one of the older change number.
    assert [c for _, c in rows(home)] == [c for _, c in rows(home) if c > change] and len(rows(home)) == 1
    assert ask(client)["usage"]["cached"] is True


def test_least_recently_used_answers_go_beyond_the_cap(start, home: Path) -> None:
    client = start(RAG_ANSWER_CACHE_ENTRIES="2")
    q1, q2, q3 = QUESTION, "What does one share cost?", "Who is the treasurer?"
    ask(client, q1)
    ask(client, q2)
    assert ask(client, q1)["usage"]["cached"] is True  # q1 is now the more recently used
    ask(client, q3)  # the third: q2 goes
    assert len(rows(home)) == 2
    assert ask(client, q1)["usage"]["cached"] is True
    assert ask(client, q3)["usage"]["cached"] is True
    assert ask(client, q2)["usage"]["cached"] is False


def test_a_cap_of_zero_keeps_nothing(start, home: Path) -> None:
    client = start(RAG_ANSWER_CACHE_ENTRIES="0")
    ask(client)
    assert ask(client)["usage"]["cached"] is False and rows(home) == []


def test_only_temperature_0_chat_answers_are_kept(start, openai_server) -> None:
    client = start(OPENAI_API_KEY="test-key", OPENAI_BASE_URL=openai_server.url)
    calls = lambda: len(openai_server.requests_to("/v1/chat/completions"))  # noqa: E731
    openai_server.set_reply("540 panels [1].", "540 panels [1].", "Still 540 [1].", "Again 540 [1].")
    ask(client)
    assert ask(client)["usage"]["cached"] is False and calls() == 2  # no temperature given: asked again
    zero = ask(client, temperature=0)
    replay = ask(client, temperature=0)
    assert calls() == 3 and replay["usage"]["cached"] is True and replay["answer"] == zero["answer"]
    assert ask(client, temperature=0.5)["usage"]["cached"] is False and calls() == 4
    # Streamed, the replay is the same chunks but for the cached usage.
    body = {"model": CHAT_MODEL, "collection": "wren", "temperature": 0,
            "messages": [{"role": "user", "content": QUESTION}]}
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True}).text
    chunks = chat_chunks(streamed)
    assert calls() == 4 and chunks[-1]["usage"]["cached"] is True
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == zero["answer"]

"""Citations as the routes return them, on the fake-embedded sample corpus: every marker in an
answer has a citation, every citation a marker, and every quote is its document's text at the
span it names. (That the right passage is quoted is the real model's job: tests/integration.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from litestar.testing import TestClient
from support.fake_embedder import KIND
from support.responses import check_citations
from support.sse import ask_events, chat_chunks

from api.app import create_app
from rag.config import Settings

QUESTIONS = ["How much does one share cost?", "What quorum does a general meeting need?",
             "How many panels are on the school roof?", "generation by month in 2024"]


@pytest.fixture
def client(fake_home: Path):
    with TestClient(app=create_app(Settings(home=fake_home, embedder=KIND), warm_up=False)) as c:
        yield c


@pytest.mark.parametrize("question", QUESTIONS)
def test_extractive_answers_cite_checkable_quotes(client, question: str):
    answer = client.post("/collections/wren/ask", json={"question": question, "k": 3}).json()
    assert answer["model"] == "extractive" and answer["usage"]["total_tokens"] > 0
    check_citations(client, answer["answer"], answer["citations"])
    # Numbered 1..n in the order first cited in the answer (README, "Changes"), not by rank.
    first_cited = list(dict.fromkeys(int(n) for n in re.findall(r"\[(\d+)\]", answer["answer"])))
    assert first_cited == list(range(1, len(first_cited) + 1))
    assert [c["index"] for c in answer["citations"]] == first_cited
    assert all(1 <= c["passage"] <= 3 for c in answer["citations"])
    hits = client.post("/collections/wren/search", json={"query": question, "k": 3}).json()["hits"]
    for c in answer["citations"]:  # passage n is the n-th hit of the same search
        hit = hits[c["passage"] - 1]
        assert (c["chunk_id"], c["document_id"], c["source"]) == (hit["chunk_id"], hit["document_id"], hit["source"])


def test_streamed_and_chat_answers_carry_the_same_citations(client):
    question = QUESTIONS[0]
    plain = client.post("/collections/wren/ask", json={"question": question}).json()
    events = ask_events(client.post("/collections/wren/ask", json={"question": question, "stream": True}).text)
    streamed = "".join(d["text"] for kind, d in events if kind == "delta")
    assert [d for kind, d in events if kind == "citations"] == [plain["citations"]]
    check_citations(client, streamed, plain["citations"])
    chat = {"model": "extractive", "collection": "wren", "messages": [{"role": "user", "content": question}]}
    completion = client.post("/v1/chat/completions", json=chat).json()
    check_citations(client, completion["choices"][0]["message"]["content"], completion["citations"])
    chunks = chat_chunks(client.post("/v1/chat/completions", json={**chat, "stream": True}).text)
    assert chunks[-1]["citations"] == completion["citations"]


def test_the_offline_answerer_reads_eight_passages_unless_k_says_how_many(client):
    # It quotes only the units that answer, so it reads deeper than a chat model (5) by default.
    question = QUESTIONS[0]
    default = client.post("/collections/wren/ask", json={"question": question}).json()
    assert default["usage"]["context"]["passages_sent"] == 8
    chosen = client.post("/collections/wren/ask", json={"question": question, "k": 3}).json()
    assert chosen["usage"]["context"]["passages_sent"] == 3

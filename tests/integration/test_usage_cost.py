"""Usage and cost in answers: every answer reports its tokens (answer and rewrite) and an estimated
cost from the price table (the table itself: tests/unit/test_price_table.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from support.prices import ROW, table_file

from api.app import create_app
from ingest.cli import main
from rag.config import Settings
from rag.tokens import count_chat_tokens, encoding_for_model

CHAT_MODEL = "gpt-5.4-mini"
QUESTION = "How many panels are on the school roof?"


# -- in answers -----------------------------------------------------------------------------------

@pytest.fixture
def start(home, openai_server, monkeypatch, tmp_path):
    clients: list[TestClient] = []

    def open_client(priced: bool = True) -> TestClient:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", openai_server.url)
        if priced:
            monkeypatch.setenv("RAG_PRICE_TABLE", str(table_file(tmp_path, ROW)))
        else:
            monkeypatch.delenv("RAG_PRICE_TABLE", raising=False)
        client = TestClient(app=create_app(Settings.from_env(), warm_up=False))
        clients.append(client.__enter__())
        return client

    yield open_client
    for client in clients:
        client.__exit__(None, None, None)


def upstream_tokens(body: dict, reply: str) -> tuple[int, int]:
    return count_chat_tokens(body["messages"], body["model"]), len(encoding_for_model(body["model"]).encode(reply))


def test_chat_answers_report_tokens_and_cost(start, openai_server) -> None:
    client = start()
    rewrite, reply = "How many panels are on the barn roof?", "180 panels [1]."
    openai_server.set_reply(rewrite, reply)
    messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "540 [1]."},
                {"role": "user", "content": "And on the barn?"}]
    r = client.post("/collections/wren/ask", json={"messages": messages})
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    rewrite_call, answer_call = [q.json() for q in openai_server.requests_to("/v1/chat/completions")]
    (rp, rc), (p, c) = upstream_tokens(rewrite_call, rewrite), upstream_tokens(answer_call, reply)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (p, c)
    assert usage["rewrite"] == {"prompt_tokens": rp, "completion_tokens": rc, "total_tokens": rp + rc}
    assert usage["cost_usd"] == pytest.approx(((p + rp) * 2.0 + (c + rc) * 8.0) / 1e6, abs=1e-12)
    assert usage["cached"] is False

    # The same through /v1/chat/completions, whole and streamed.
    openai_server.set_reply(reply, reply)
    body = {"model": CHAT_MODEL, "collection": "wren", "messages": [{"role": "user", "content": QUESTION}]}
    whole = client.post("/v1/chat/completions", json=body).json()["usage"]
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True}).text
    last = json.loads([line for line in streamed.split("\n\n") if line.startswith("data: {")][-1][6:])
    for got in (whole, last["usage"]):
        p, c = got["prompt_tokens"], got["completion_tokens"]
        assert got["cost_usd"] == pytest.approx((p * 2.0 + c * 8.0) / 1e6, abs=1e-12)
        assert got["rewrite"]["total_tokens"] == 0


def test_a_model_without_a_cited_price_costs_null(start, openai_server) -> None:
    client = start(priced=False)
    openai_server.set_reply("540 [1].")
    usage = client.post("/collections/wren/ask", json={"question": QUESTION}).json()["usage"]
    assert usage["prompt_tokens"] > 0 and usage["cost_usd"] is None


def test_extractive_answers_cost_nothing(home: Path) -> None:
    with TestClient(app=create_app(Settings.from_env(), warm_up=False)) as client:
        usage = client.post("/collections/wren/ask", json={"question": QUESTION}).json()["usage"]
    assert usage["cost_usd"] == 0.0 and usage["cached"] is False
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


def test_rag_ask_prints_usage_on_stderr(home: Path) -> None:
    result = CliRunner().invoke(main, ["ask", QUESTION, "-c", "wren", "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    answer = json.loads(result.stdout)
    usage = answer["usage"]
    assert result.stderr == (f"usage: {usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} "
                             f"completion tokens (extractive); cost $0.000000\n")

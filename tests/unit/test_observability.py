"""Request ids, /metrics, readiness and the service's own SDK conventions, through the TestClient
on the fake-embedded sample corpus."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from litestar.testing import TestClient
from support.fake_embedder import KIND
from support.metrics import scrape, value
from support.responses import error_of

from api.app import create_app
from rag.config import Settings
from rag.service import Service

SEARCH_ROUTE = "/collections/{name}/search"
ASK_ROUTE = "/collections/{name}/ask"


def app_for(**overrides):
    return create_app(replace(Settings.from_env(), embedder=KIND, **overrides), warm_up=False)


@pytest.fixture
def client(fake_home):
    with TestClient(app=app_for()) as c:
        yield c


def test_every_response_carries_its_own_request_id(client):
    answers = [client.get("/health"), client.get("/collections"), client.get("/nowhere"),
               client.post("/collections", json={"name": "bad name"}), client.delete("/health")]
    assert [a.status_code for a in answers] == [200, 200, 404, 400, 405]
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(i.startswith("req_") and len(i) == 36 for i in ids) and len(set(ids)) == len(ids)


def test_a_configuration_fault_says_do_not_retry(client):
    response = client.get("/v1/files")  # the passthrough, without OPENAI_API_KEY
    assert error_of(response, 503)["code"] == "missing_credentials"
    assert response.headers["x-should-retry"] == "false"
    assert "x-should-retry" not in client.get("/collections/nope").headers  # a 404 is the caller's


def test_one_model_by_id(client):
    assert client.get("/v1/models/extractive").json() == {"id": "extractive", "object": "model", "created": 0,
                                                          "owned_by": "rag-service"}
    assert client.get("/v1/models/all-MiniLM-L6-v2").status_code == 200
    missing = error_of(client.get("/v1/models/gpt-x"), 404)
    assert (missing["code"], missing["param"]) == ("model_not_found", "model")


def test_metrics_move_after_a_search_and_an_ask(client):
    before = scrape(client)
    assert client.post("/collections/wren/search", json={"query": "school roof panels"}).status_code == 200
    assert client.post("/collections/wren/ask", json={"question": "How many panels?"}).status_code == 200
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("rag_http_requests_total", path=SEARCH_ROUTE, status_code="200") == 1
    assert moved("rag_http_request_duration_seconds_count", path=ASK_ROUTE, status_code="200") == 1
    for stage in ("embed", "dense", "lexical", "fuse"):
        assert moved("rag_stage_seconds_count", operation="search", stage=stage) == 1, stage
        assert moved("rag_stage_seconds_count", operation="ask", stage=stage) == 1, stage
    assert moved("rag_stage_seconds_count", operation="ask", stage="answer") == 1
    assert moved("rag_tokens_total", model="extractive", kind="prompt") > 0
    # Route templates only: no collection name, no raw path in any label.
    assert not any("wren" in v for _, labels in after for _, v in labels)


def test_uploads_move_the_ingest_metrics(client):
    before = scrape(client)
    response = client.post("/collections/wren/documents?wait=true",
                           json={"documents": [{"text": "The barn has a new inverter.", "source": "barn"}]})
    assert response.status_code == 201
    after = scrape(client)
    assert value(after, "rag_ingest_documents_total", outcome="ready") - value(
        before, "rag_ingest_documents_total", outcome="ready") == 1
    assert value(after, "rag_ingest_chunks_total") > value(before, "rag_ingest_chunks_total")
    assert value(after, "rag_ingest_queue_depth") == 0


def test_metrics_need_a_key_when_keys_are_set(fake_home):
    with TestClient(app=app_for(api_keys=("k1",))) as c:
        assert error_of(c.get("/metrics"), 401)["code"] == "invalid_api_key"
        assert scrape(c, headers={"authorization": "Bearer k1"})


def test_ready_says_what_is_loading_until_a_slow_loader_finishes(fake_home, monkeypatch):
    release = threading.Event()
    model_loads: list[float] = []

    def slow_model(self: Service) -> None:
        release.wait(10)
        model_loads.append(time.monotonic())

    monkeypatch.setattr(Service, "warm_model", slow_model)
    app = create_app(replace(Settings.from_env(), embedder=KIND), warm_up=True)
    with TestClient(app=app) as c:
        assert c.get("/health/live").json() == {"status": "ok"}
        loading = error_of(c.get("/health/ready"), 503)
        assert loading["code"] == "not_ready" and "the local embedding model" in loading["loading"]
        # Requests are served meanwhile: a search loads what it needs itself.
        assert c.post("/collections/wren/search", json={"query": "panels"}).status_code == 200
        release.set()
        deadline = time.monotonic() + 10
        while (ready := c.get("/health/ready")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.json() == {"status": "ready"} and model_loads

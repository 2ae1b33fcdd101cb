"""End to end: a real `rag serve` with JSON logs, keys and a chat upstream, seen as an operator
sees it: readiness while it loads, /metrics after a search and an ask, request ids in the
answers and in the log, and no key, Authorization header or document text in the log."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import openai
import pytest
from support.metrics import scrape, value
from support.serve import ServeProcess

pytestmark = pytest.mark.slow

API_KEY = "key-observability-5e1f"
UPSTREAM_KEY = "sk-upstream-observability-77aa"
CHAT_MODEL = "gpt-5.4-mini"
SECRET_TEXT = "The vault under the barn opens with marmalade-4711-zebra."
"""A document's text: it must reach the index, never the log."""


def test_a_served_process_reports_readiness_metrics_and_clean_logs(seeded_home, tmp_path, openai_server):
    home = tmp_path / "home"
    shutil.copytree(seeded_home, home)
    server = ServeProcess(home, tmp_path / "serve.log", RAG_API_KEYS=API_KEY, RAG_LOG_FORMAT="json",
                          OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=openai_server.url, RAG_CHAT_MODEL=CHAT_MODEL)
    try:
        started = time.monotonic()
        server.wait_ready(path="/health/live")
        live_s = time.monotonic() - started
        first_ready = httpx.get(f"{server.url}/health/ready", timeout=5)
        server.wait_ready()
        ready_s = time.monotonic() - started
        assert first_ready.status_code in (200, 503)
        if first_ready.status_code == 503:
            assert first_ready.json()["error"]["code"] == "not_ready"
        print(f"live after {live_s:.2f} s, ready after {ready_s:.2f} s, first /health/ready: "
              f"{first_ready.status_code} {first_ready.text}")

        auth = {"authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
            before = scrape(http)
            upload = http.post("/collections/wren/documents", params={"wait": "true"},
                               json={"documents": [{"text": SECRET_TEXT, "source": "vault"}]})
            assert upload.status_code == 201, upload.text
            search = http.post("/collections/wren/search", json={"query": "vault barn"})
            assert search.status_code == 200 and search.json()["hits"]
            ask = http.post("/collections/wren/ask", json={"question": "How does the vault open?"})
            assert ask.status_code == 200 and ask.json()["model"] == CHAT_MODEL
            after = scrape(http)
            assert httpx.get(f"{server.url}/metrics").status_code == 401

        def moved(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert moved("rag_http_requests_total", path="/collections/{name}/search", status_code="200") == 1
        assert moved("rag_stage_seconds_count", operation="search", stage="embed") == 1
        assert moved("rag_stage_seconds_count", operation="ask", stage="answer") == 1
        assert moved("rag_tokens_total", model=CHAT_MODEL, kind="completion") > 0
        assert moved("rag_upstream_requests_total", endpoint="chat_completions", status="200") == 1
        assert moved("rag_ingest_documents_total", outcome="ready") == 1

        # The SDK sees the service's own request id.
        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=30)
        model = sdk.models.with_raw_response.retrieve("extractive")
        assert model.parse().id == "extractive" and model.headers["x-request-id"].startswith("req_")
    finally:
        server.stop()

    log = server.log.read_text()
    for secret in (API_KEY, UPSTREAM_KEY, "marmalade", "Bearer", "authorization"):
        assert secret not in log, secret
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message", "request_id"} <= r.keys() for r in records)
    by_id = {r["request_id"]: r for r in records if r["logger"] == "api.requests"}
    line = by_id[search.headers["x-request-id"]]
    assert (line["method"], line["route"], line["status"]) == ("POST", "/collections/{name}/search", 200)
    assert line["duration_ms"] > 0

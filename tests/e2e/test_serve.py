"""End to end: `rag serve` as a real process, driven over HTTP by the official `openai` SDK.

One server per module (starting one loads the model and the indexes), on a data folder with the
sample corpus ingested, with RAG_API_KEYS set so auth is part of every call. A second process,
`rag ingest`, writes to the same database while the server answers searches.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from support.net import free_port
from support.paths import ROOT
from support.responses import check_citations
from support.serve import ServeProcess, rag_command, subprocess_env

from rag.config import Settings
from rag.service import Service

pytestmark = pytest.mark.slow

API_KEY = "secret"
QUESTION = "How many panels are on the school roof?"


@pytest.fixture(scope="module")
def server_home(seeded_home, tmp_path_factory) -> Path:
    """This module's copy of the seeded data folder: the server and a second `rag ingest` write to it."""
    home = tmp_path_factory.mktemp("e2e") / "home"
    shutil.copytree(seeded_home, home)
    return home


@pytest.fixture(scope="module")
def server(server_home, tmp_path_factory):
    running = ServeProcess(server_home, tmp_path_factory.mktemp("e2e-log") / "serve.log", RAG_API_KEYS=API_KEY)
    try:
        yield running.wait_ready()
    finally:
        running.stop()


@pytest.fixture
def sent() -> list[httpx.Request]:
    """Requests the SDK client sent, as they left it."""
    return []


@pytest.fixture
def sdk(server, sent):
    http_client = httpx.Client(event_hooks={"request": [sent.append]})
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=60,
                           http_client=http_client)
    yield client
    client.close()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        yield client


# -- the OpenAI SDK against the service -----------------------------------------------------------

def test_sdk_lists_models(sdk):
    assert [m.id for m in sdk.models.list()] == ["all-MiniLM-L6-v2", "extractive"]


def test_sdk_embeddings_are_the_local_models_unit_vectors(sdk, sent, http, server_home):
    texts = ["The cat sits on the mat", "A feline rests on the rug"]
    result = sdk.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    # The SDK asks for base64 when not told otherwise and decodes it: this is that path.
    assert json.loads(sent[-1].content)["encoding_format"] == "base64"
    assert [d.index for d in result.data] == [0, 1] and result.model == "all-MiniLM-L6-v2"
    vectors = np.array([d.embedding for d in result.data], dtype=np.float32)
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with Service(Settings(home=server_home)) as service:
        local = service.embedder("local").embed(texts)
    np.testing.assert_allclose(vectors, local, atol=1e-5)
    score = http.post("/similarity", json={"a": texts[0], "b": texts[1]}).json()["score"]
    assert float(vectors[0] @ vectors[1]) == pytest.approx(score, abs=1e-5)
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0


def test_sdk_chat_with_a_collection_returns_citations(sdk, http):
    messages = [{"role": "user", "content": QUESTION}]
    completion = sdk.chat.completions.create(model="extractive", messages=messages, extra_body={"collection": "wren"})
    content = completion.choices[0].message.content
    assert completion.model == "extractive" and "540" in content
    citations = completion.model_extra["citations"]
    check_citations(http, content, citations)
    assert any(c["source"].endswith("the-arrays.html") for c in citations)

    chunks = list(sdk.chat.completions.create(model="extractive", messages=messages, stream=True,
                                              extra_body={"collection": "wren"}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed.strip() == content
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["citations"] == citations
    assert last.usage is not None and last.usage.total_tokens == completion.usage.total_tokens


# -- auth -----------------------------------------------------------------------------------------

def test_auth_over_http(server, sdk):
    wrong = openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-the-key", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert caught.value.status_code == 401 and caught.value.body["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="extractive", messages=[{"role": "user", "content": QUESTION}],
                                      extra_body={"collection": "wren"})
    wrong.close()
    assert sdk.models.list().data  # the right key works
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200  # public
    assert httpx.get(f"{server.url}/collections", timeout=10).status_code == 401


def test_serve_refuses_a_public_address_without_api_keys(tmp_path):
    run = subprocess.run(rag_command("serve", "--host", "0.0.0.0", "--port", str(free_port())), cwd=ROOT,
                         env=subprocess_env(tmp_path / "home"), capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "RAG_API_KEYS" in run.stderr
    assert not (tmp_path / "home").exists()  # refused before opening anything


# -- a second process writing while the server reads ----------------------------------------------

NEW_DOCUMENTS = {
    f"wildlife-{i:02d}.md": f"# Wildlife note {i}\n\nVolunteers counted {i + 3} hedgehogs nesting under the "
                            f"battery cabinet number {i} during the autumn survey of the Wrenfield hedgerows.\n\n"
                            f"The bat boxes on the east fence held {i * 2} pipistrelles in survey week {i}.\n"
    for i in range(12)
}


def test_ingest_while_serving_never_fails_a_search(server, server_home, http, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    for name, text in NEW_DOCUMENTS.items():
        (folder / name).write_text(text)
    query = {"query": "hedgehogs nesting under the battery cabinet", "k": 5}
    before = http.post("/collections/wren/search", json=query).json()["hits"]
    assert not any("wildlife-" in h["source"] for h in before)

    failures: list[str] = []
    done_while_ingesting = [0]
    stop = threading.Event()
    ingesting = threading.Event()

    def search_loop() -> None:
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=60) as c:
            queries = [query["query"], QUESTION, "share price", "general meeting quorum"]
            i = 0
            while not stop.is_set():
                mode = ("hybrid", "dense", "lexical")[i % 3]
                r = c.post("/collections/wren/search", json={"query": queries[i % len(queries)], "mode": mode})
                if r.status_code != 200:
                    failures.append(f"{r.status_code}: {r.text[:300]}")
                elif ingesting.is_set():
                    done_while_ingesting[0] += 1
                i += 1
                time.sleep(0.01)  # leave the ingest some of the two cores

    thread = threading.Thread(target=search_loop, daemon=True)
    thread.start()
    ingesting.set()
    run = subprocess.run(rag_command("ingest", str(folder), "-c", "wren", "--json"), cwd=ROOT,
                         env=subprocess_env(server_home), capture_output=True, text=True, timeout=180)
    ingesting.clear()
    stop.set()
    thread.join(timeout=60)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["added"] == len(NEW_DOCUMENTS) and not summary["failed"], summary
    assert not failures, failures[:3]
    assert done_while_ingesting[0] >= 10  # the searches really ran alongside the ingest
    assert "database is locked" not in server.output()

    # The server notices the newer index stamp and searches the new documents at once.
    after = http.post("/collections/wren/search", json=query).json()["hits"]
    assert "wildlife-" in after[0]["source"]
    for mode in ("dense", "lexical"):
        hits = http.post("/collections/wren/search", json={**query, "mode": mode}).json()["hits"]
        assert "wildlife-" in hits[0]["source"], mode
    assert http.get("/collections/wren").json()["documents"] == 17 + len(NEW_DOCUMENTS)

"""The HTTP API where the real model's meaning matters: the local model is the default, it finds
the passages that answer, quotes them, and its vectors and similarities are all-MiniLM-L6-v2's.
(The routes' plumbing runs on the fake embedder in tests/unit/test_api.py.)"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient
from support.responses import check_citations, error_of

from api.app import create_app
from rag.config import Settings


@pytest.fixture
def client(home: Path):
    with TestClient(app=create_app(Settings.from_env(), warm_up=False)) as c:
        yield c


def test_new_collections_get_the_local_model_by_default(client):
    created = client.post("/collections", json={"name": "notes", "chunk_size": 128, "chunk_overlap": 16})
    assert created.status_code == 201
    assert created.json()["embedder"] == {"kind": "local", "model": "all-MiniLM-L6-v2", "dim": 384}


def test_search_finds_the_passages_that_answer_in_every_mode(client):
    for mode in ("dense", "lexical", "hybrid"):
        hits = client.post("/collections/wren/search", json={"query": "How many panels are on the school roof?",
                                                             "mode": mode, "k": 5}).json()["hits"]
        assert any("the-arrays.html" in h["source"] for h in hits[:3]), mode
    pdf_query = {"query": "generation by month in 2024", "k": 5}
    pdf_hits = client.post("/collections/wren/search", json=pdf_query).json()["hits"]
    pages = [h["page"] for h in pdf_hits if h["source"].endswith(".pdf")]
    assert pages and all(p in (1, 2, 3) for p in pages)


def test_ask_extractive_cites_checkable_quotes(client):
    r = client.post("/collections/wren/ask", json={"question": "How much does one share cost?"})
    assert r.status_code == 200
    answer = r.json()
    assert answer["model"] == "extractive"
    assert "£50" in answer["answer"]
    assert answer["citations"] and answer["usage"]["total_tokens"] > 0
    check_citations(client, answer["answer"], answer["citations"])
    assert any("shares-and-interest" in c["source"] or "faq" in c["source"] for c in answer["citations"])


def test_similarity(client):
    cat = "The cat sits on the mat"
    assert client.post("/similarity", json={"a": cat, "b": "A feline rests on the rug"}).json()["score"] == pytest.approx(0.5607, abs=1e-3)
    scores = client.post("/similarity", json={"pairs": [[cat, "A feline rests on the rug"],
                                                        [cat, "Python is a programming language"]]}).json()["scores"]
    assert scores == pytest.approx([0.5607, 0.0317], abs=1e-3)
    error_of(client.post("/similarity", json={"a": "only a"}), 400)
    error_of(client.post("/similarity", json={"a": "", "b": "x"}), 400)


def test_openai_compatible_embeddings_and_models(client):
    models = client.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["all-MiniLM-L6-v2", "extractive"]
    r = client.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": ["hello world", "cats"]})
    body = r.json()
    assert r.status_code == 200 and [d["index"] for d in body["data"]] == [0, 1]
    v = np.array(body["data"][0]["embedding"], dtype=np.float32)
    assert v.shape == (384,) and np.linalg.norm(v) == pytest.approx(1, abs=1e-5)
    assert body["usage"]["prompt_tokens"] == 4 + 3  # [CLS] hello world [SEP] + [CLS] cats [SEP]
    b64 = client.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "hello world",
                                              "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, v, atol=1e-6)
    err = error_of(client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"}), 404)
    assert err["type"] == "not_found_error"
    error_of(client.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": [[1, 2]]}), 400)
    error_of(client.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": ""}), 400)


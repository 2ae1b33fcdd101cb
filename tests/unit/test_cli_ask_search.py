"""`rag search --min-score`, `rag ask --filter/--min-score` (and /ask's min_score), piped tables."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from litestar.testing import TestClient
from support.cli import run
from support.fake_embedder import KIND
from support.homes import SAMPLE_COLLECTION

from api.app import create_app
from rag.config import Settings

QUESTION = "What quorum does a general meeting need?"


def scores(*args: str) -> list[float]:
    """The hits' cosine similarities: what `min_score` reads in the default (hybrid) mode."""
    hits = json.loads(run("search", QUESTION, "-c", SAMPLE_COLLECTION, "--json", *args).stdout)["hits"]
    return [h["dense_score"] for h in hits]


def test_search_min_score_keeps_only_hits_at_or_above_it(fake_home: Path):
    every = scores("-k", "10")
    assert len(set(every)) > 2
    threshold = sorted(every)[len(every) // 2]
    kept = scores("-k", "10", "--min-score", str(threshold))
    assert kept == [s for s in every if s >= threshold] and len(kept) < len(every)


def test_ask_takes_filter_and_min_score_and_prints_usage_on_stderr(fake_home: Path):
    answered = json.loads(run("ask", QUESTION, "-c", SAMPLE_COLLECTION, "--model", "extractive", "--json",
                              "--filter", '{"format": "md"}').stdout)
    assert answered["citations"]
    # Only passages above every score: nothing to answer from.
    top = max(scores("-k", "10"))
    none = run("ask", QUESTION, "-c", SAMPLE_COLLECTION, "--model", "extractive", "--min-score", str(top + 1))
    assert "[1]" not in none.stdout
    assert none.stderr.startswith("usage: ")
    # A metadata filter that matches no document: nothing either.
    filtered = json.loads(run("ask", QUESTION, "-c", SAMPLE_COLLECTION, "--model", "extractive", "--json",
                              "--filter", '{"format": "no-such-format"}').stdout)
    assert filtered["citations"] == []
    assert "--filter: not valid JSON" in run("ask", QUESTION, "-c", SAMPLE_COLLECTION, "--filter", "{",
                                             code=2).stderr


def test_ask_route_takes_min_score_as_search_does(fake_home: Path):
    with TestClient(app=create_app(replace(Settings.from_env(), embedder=KIND), warm_up=False)) as client:
        url = f"/collections/{SAMPLE_COLLECTION}"
        hits = client.post(f"{url}/search", json={"query": QUESTION, "k": 5}).json()["hits"]
        cosines = sorted((h["dense_score"] for h in hits), reverse=True)
        threshold = cosines[1]
        above = {h["document_id"] for h in hits if h["dense_score"] >= threshold}
        body = {"question": QUESTION, "k": 5, "model": "extractive", "min_score": threshold}
        answer = client.post(f"{url}/ask", json=body).json()
        assert answer["citations"]
        assert {c["document_id"] for c in answer["citations"]} <= above  # cited only from passages kept
        nothing = client.post(f"{url}/ask", json={**body, "min_score": cosines[0] + 1}).json()
        assert nothing["citations"] == []
        assert client.post(f"{url}/ask", json={**body, "min_score": "high"}).status_code == 400


def test_piped_tables_are_plain_lines_with_whole_file_names(fake_home: Path):
    listed = run("documents", "list", "-c", SAMPLE_COLLECTION).stdout.splitlines()
    assert listed[0].split("\t") == ["id", "source", "status", "chunks", "updated"]
    docs = json.loads(run("documents", "list", "-c", SAMPLE_COLLECTION, "--json").stdout)["data"]
    assert [line.split("\t")[1] for line in listed[1:]] == [d["source"] for d in docs]
    assert "…" not in "\n".join(listed)
    collections = run("collections").stdout.splitlines()
    assert collections[1].startswith(f"{SAMPLE_COLLECTION}\tfake:")

"""`rag eval` when a record fails for a reason other than being empty or malformed: the score is
shown, and the run exits 1 saying it is not the data set's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.cli import run
from support.fake_embedder import FakeEmbedder

import ingest.pipeline
from rag import embeddings
from rag.config import Settings
from rag.errors import UpstreamRateLimited
from rag.service import Service

KIND = "flaky"


class FlakyEmbedder(FakeEmbedder):
    """The fake embedder, except that a call holding the word `explode` fails as a rate limit."""

    kind = KIND

    def _embed_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        if any("explode" in t.split() for t in texts):
            raise UpstreamRateLimited("the upstream is rate limiting")
        return super()._embed_batch(texts, truncate)


@pytest.fixture
def flaky_collection(rag_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(embeddings._KINDS, KIND, lambda settings, client: FlakyEmbedder())
    monkeypatch.setattr(ingest.pipeline, "EMBED_BATCH_CHUNKS", 1)  # one record per call: one fails alone
    with Service(Settings(home=rag_env, embedder=KIND)) as service:
        service.create_collection("ev", embedder=KIND)
    return "ev"


def test_a_failed_record_fails_the_run_after_its_score(tmp_path: Path, flaky_collection: str):
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    records = [{"_id": "d1", "text": "calcium absorption in the gut"},
               {"_id": "d2", "text": "heart attack risk explode"},
               {"_id": "d3", "text": "sleep and reaction times"}]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "calcium absorption"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    result = run("eval", "--beir", str(folder), "-c", flaky_collection, code=1)
    assert "nDCG@10 1.0000" in result.stdout and "2 documents" in result.stdout
    assert f"failed {folder.resolve() / 'corpus.jsonl'}#d2: the upstream is rate limiting" in result.stderr
    assert "the score is not the data set's: 1 records failed to ingest" in result.stderr

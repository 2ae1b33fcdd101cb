"""The ingest pipeline with several embedding calls in flight (RAG_EMBED_CONCURRENCY): documents
commit in the order they were read whatever order the calls finish in, the number of calls in
flight is bounded, a failed call fails only its own documents, and a rerun adds no duplicate."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import ingest.pipeline
from ingest.loaders import document_from_text
from ingest.pipeline import Pipeline
from rag.config import Settings
from rag.embeddings import register_embedder
from rag.embeddings.base import Embedder
from rag.errors import UpstreamRateLimited
from rag.service import Service

KIND = "scripted"
DOCUMENTS = 40
BATCH = 4  # chunks per embedding call in these tests: 40 one-chunk documents make 10 calls


class ScriptedEmbedder(Embedder):
    """Hashed words (deterministic), with per-call delays and failures chosen by the test, and a
    count of the calls running at once."""

    kind = KIND
    model_id = "scripted-hash"
    dim = 32
    max_input_tokens = 512
    batch_size = 1024  # one embed() call is one _embed_batch call

    def __init__(self) -> None:
        self.delay_for: dict[str, float] = {}
        """A call whose texts include this word sleeps this long."""
        self.fail_on: str | None = None
        """A call whose texts include this word fails as an upstream's rate limit would."""
        self.calls = 0
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def _embed_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            words = {w for t in texts for w in t.split()}
            time.sleep(max([d for w, d in self.delay_for.items() if w in words], default=0.01))
            if self.fail_on is not None and self.fail_on in words:
                raise UpstreamRateLimited("the upstream is rate limiting")
            return np.stack([word_vector(t, self.dim) for t in texts])
        finally:
            with self._lock:
                self.running -= 1


def word_vector(text: str, dim: int) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    for word in text.split():
        h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
        v[h % dim] += 1.0 if h & 1 << 20 else -1.0
    return v if v.any() else np.ones(dim, np.float32)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedEmbedder:
    embedder = ScriptedEmbedder()
    register_embedder(KIND, lambda settings, client: embedder)
    monkeypatch.setattr(ingest.pipeline, "EMBED_BATCH_CHUNKS", BATCH)
    return embedder


def corpus(folder: Path) -> Path:
    """Forty one-chunk documents; document n says `marker{n}` and words of its own."""
    path = folder / "corpus.jsonl"
    lines = [json.dumps({"_id": f"d{n:02d}", "text": f"marker{n} topic{n} shared words about item number {n}"})
             for n in range(DOCUMENTS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def open_service(tmp_path: Path, concurrency: int) -> Service:
    return Service(Settings(home=tmp_path / "home", embedder=KIND, embed_concurrency=concurrency))


def test_batches_commit_in_reading_order_whatever_order_their_calls_finish(tmp_path, scripted):
    # The first calls are the slowest: later batches come back first and must wait their turn.
    scripted.delay_for = {"marker0": 0.6, "marker4": 0.4, "marker8": 0.2}
    path = corpus(tmp_path)
    with open_service(tmp_path, 4) as service:
        collection = service.open_collection("c", create=True)
        summary = Pipeline(service.writer(collection)).ingest_paths([path])
        assert not summary.failed and summary.chunks == DOCUMENTS
        assert scripted.most_running == 4  # calls overlapped, and never more than the setting
        assert summary.added == [f"{path}#d{n:02d}" for n in range(DOCUMENTS)]
        docs = service.list_documents("c", limit=100)
        # Document ids are given at commit: ascending ids in file order mean commits in file order.
        assert [d.source for d in docs] == [f"{path}#d{n:02d}" for n in range(DOCUMENTS)]
        # Each chunk got its own vector, not a neighbour's from a call that finished out of turn.
        for n in (0, 3, 4, 17, 39):
            hit = service.search(collection, f"marker{n} topic{n} shared words about item number {n}",
                                 k=1, mode="dense")[0]
            assert hit.source == f"{path}#d{n:02d}"
            assert hit.score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(("setting", "parallel_calls", "expected"), [(1, None, 1), (3, None, 3), (4, 1, 1)])
def test_calls_in_flight_are_bounded_by_the_setting_and_the_embedder(tmp_path, scripted, setting, parallel_calls,
                                                                     expected):
    scripted.delay_for = {"shared": 0.05}
    scripted.parallel_calls = parallel_calls  # a local model says 1: one call already uses every core
    with open_service(tmp_path, setting) as service:
        collection = service.open_collection("c", create=True)
        summary = Pipeline(service.writer(collection)).ingest_paths([corpus(tmp_path)])
    assert summary.chunks == DOCUMENTS and scripted.calls == DOCUMENTS // BATCH
    assert scripted.most_running == expected


def test_a_failed_call_fails_only_its_documents_and_a_rerun_finishes_without_duplicates(tmp_path, scripted):
    scripted.fail_on = "marker17"  # the call carrying documents 16-19
    path = corpus(tmp_path)
    with open_service(tmp_path, 4) as service:
        collection = service.open_collection("c", create=True)
        summary = Pipeline(service.writer(collection)).ingest_paths([path])
        failed = [f"{path}#d{n:02d}" for n in range(16, 20)]
        assert [f.source for f in summary.failed] == failed
        assert all("rate limiting" in f.reason for f in summary.failed)
        assert len(summary.added) == DOCUMENTS - 4
        statuses = {d.source: d.status for d in service.list_documents("c", limit=100)}
        assert {s for s, st in statuses.items() if st == "failed"} == set(failed)
        assert service.search(collection, "marker20 topic20", k=1, mode="lexical")[0].source == f"{path}#d20"

        scripted.fail_on = None
        again = Pipeline(service.writer(collection)).ingest_paths([path])
        # The failed rows are there (status failed), so their second try replaces them.
        assert again.updated == failed and not again.added and not again.failed
        assert len(again.unchanged) == DOCUMENTS - 4
        third = Pipeline(service.writer(collection)).ingest_paths([path])
        assert not third.added and len(third.unchanged) == DOCUMENTS
        collection = service.get_collection("c", counts=True)
        assert (collection.documents, collection.chunks) == (DOCUMENTS, DOCUMENTS)
        assert {d.status for d in service.list_documents("c", limit=100)} == {"ready"}


def test_given_documents_stop_at_the_first_failed_call_after_committing_those_before(tmp_path, scripted):
    scripted.fail_on = "marker5"
    docs = [document_from_text(f"upload-{n}", f"marker{n} topic{n} text") for n in range(10)]
    with open_service(tmp_path, 4) as service:
        collection = service.open_collection("c", create=True)
        with pytest.raises(UpstreamRateLimited):
            Pipeline(service.writer(collection)).ingest_documents(docs)
        assert [d.source for d in service.list_documents("c")] == [f"upload-{n}" for n in range(4)]


def test_concurrent_requests_each_honour_retry_after(tmp_path, openai_server, monkeypatch):
    monkeypatch.setattr(ingest.pipeline, "EMBED_BATCH_CHUNKS", BATCH)
    openai_server.fail_next(429, times=2, retry_after_ms=400, path="/v1/embeddings")
    settings = Settings(home=tmp_path / "home", embedder="openai", openai_api_key="test-key",
                        openai_base_url=openai_server.url, embed_concurrency=4)
    with Service(settings) as service:
        collection = service.open_collection("remote", create=True)
        summary = Pipeline(service.writer(collection)).ingest_paths([corpus(tmp_path)])
        assert not summary.failed and len(summary.added) == DOCUMENTS
        assert service.get_collection("remote", counts=True).chunks == DOCUMENTS
    sent = openai_server.requests_to("/v1/embeddings")
    assert len(sent) == DOCUMENTS // BATCH + 2
    refused, answered = sent[:2], sent[2:]
    for failed in refused:  # the same request came again, no sooner than the server asked
        retry = next(r for r in answered if r.body == failed.body)
        assert retry.received_at - failed.received_at >= 0.4

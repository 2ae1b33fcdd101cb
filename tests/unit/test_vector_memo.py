"""The offline answerer's memory of unit vectors: what it returns is what the embedder computes,
each text is computed once, the least recently used go first, and embedders are kept apart."""

from __future__ import annotations

import numpy as np
from support.fake_embedder import FakeEmbedder

from rag.answer.vector_memo import VectorMemo


class Counting(FakeEmbedder):
    """Records every text it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def _embed_batch(self, texts: list[str], truncate: bool) -> np.ndarray:
        self.seen.extend(texts)
        return super()._embed_batch(texts, truncate)


class OtherModel(Counting):
    model_id = "fake-other"


def test_remembered_vectors_are_the_computed_ones_and_are_computed_once() -> None:
    embedder, memo = Counting(), VectorMemo()
    texts = ["the barn array", "the school roof", "the barn array"]
    first = memo.embed(embedder, texts)
    np.testing.assert_array_equal(first, FakeEmbedder().embed(texts, truncate=True))
    assert embedder.seen == ["the barn array", "the school roof"]
    embedder.seen.clear()
    again = memo.embed(embedder, ["the school roof", "a new sentence"])
    assert embedder.seen == ["a new sentence"]
    np.testing.assert_array_equal(again[0], first[1])


def test_the_least_recently_used_go_first() -> None:
    embedder, memo = Counting(), VectorMemo(entries=2)
    for text in ("alpha", "beta", "alpha", "gamma"):  # "beta" is the least recently used
        memo.embed(embedder, [text])
    embedder.seen.clear()
    memo.embed(embedder, ["alpha", "gamma", "beta"])
    assert embedder.seen == ["beta"] and len(memo) == 2


def test_embedders_are_kept_apart_and_zero_entries_keeps_nothing() -> None:
    memo = VectorMemo()
    memo.embed(Counting(), ["the barn array"])
    other = OtherModel()
    memo.embed(other, ["the barn array"])
    assert other.seen == ["the barn array"]
    nothing, embedder = VectorMemo(entries=0), Counting()
    nothing.embed(embedder, ["x"])
    nothing.embed(embedder, ["x"])
    assert embedder.seen == ["x", "x"] and len(nothing) == 0

"""A saved index is loaded by mapping its file (issue #9: ready within 10 s at 1M chunks), searched
in place, and read into memory at its first add: from the file it was mapped from, even after a
checkpoint has put another file at that path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.indexes.vector_index import VectorIndex


def unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def searches(index: VectorIndex, queries: np.ndarray) -> list[list[tuple[int, float]]]:
    allowed = np.arange(100, 140)
    return [index.search(q, 10) for q in queries] + [index.search(q, 5, allowed) for q in queries]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_mapped_index_searches_as_a_copied_one_and_grows_after_reading_itself_in(tmp_path: Path, kind) -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng, 600)
    saved = VectorIndex(16, stamp=7, kind=kind)
    saved.add(np.arange(1, 601), vectors)
    saved.remove([5, 6, 120])
    path = tmp_path / "collection-1.faiss"
    saved.save(path)
    queries = unit(rng, 8)

    mapped = VectorIndex.load(path)
    copied = VectorIndex.load(path, mapped=False)
    assert mapped.mapped and not copied.mapped
    assert (mapped.stamp, mapped.rows, mapped.dead, mapped.kind) == (7, 600, 3, kind)
    assert searches(mapped, queries) == searches(copied, queries) == searches(saved, queries)

    # A checkpoint replaces the file meanwhile: the mapped index still reads the one it mapped.
    other = VectorIndex(16, stamp=9, kind=kind)
    other.add(np.arange(1, 11), vectors[:10])
    other.save(path)
    extra = unit(rng, 2)
    mapped.add([601, 602], extra)
    copied.add([601, 602], extra)
    assert not mapped.mapped
    assert mapped.rows == 602 and mapped.search(extra[0], 1)[0][0] == 601
    assert searches(mapped, queries) == searches(copied, queries)
    np.testing.assert_array_equal(mapped.ids(), copied.ids())


def _mapped_fifty(folder: Path, *, seed: int) -> tuple[np.ndarray, VectorIndex]:
    """Fifty unit vectors (ids 1-50), saved as a flat index and loaded mapped."""
    vectors = unit(np.random.default_rng(seed), 50)
    saved = VectorIndex(16)
    saved.add(np.arange(1, 51), vectors)
    saved.save(folder / "i.faiss")
    return vectors, VectorIndex.load(folder / "i.faiss")


def test_a_repeated_add_leaves_the_index_mapped(tmp_path: Path) -> None:
    vectors, mapped = _mapped_fifty(tmp_path, seed=4)
    mapped.add([3], vectors[2:3])  # already held: nothing for FAISS to add
    assert mapped.mapped and mapped.rows == 50


def test_a_failed_read_into_memory_leaves_the_index_mapped_and_searchable(tmp_path: Path, monkeypatch) -> None:
    """FAISS aborts the process on an add to a mapped index: after a failed read, adds must keep
    failing before they reach it."""
    import faiss

    vectors, mapped = _mapped_fifty(tmp_path, seed=5)

    def unreadable(*args: object) -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(faiss, "read_index", unreadable)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="disk gone"):
            mapped.add([51], unit(np.random.default_rng(6), 1))
        assert mapped.mapped and mapped.rows == 50
    assert mapped.search(vectors[7], 1)[0][0] == 8

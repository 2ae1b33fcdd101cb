"""A filter's chunk ids turned into index rows and scored exactly (issue #9, filtered search).

A document's chunks have consecutive ids, so a filter's ids come in runs; `VectorIndex` maps a run
held whole to its rows with one binary search and scores the rows where FAISS keeps them. Runs the
index holds only in part (ids never added, rows deleted, rows added out of id order) must come out
as exactly what a scan of every row finds.
"""

from __future__ import annotations

import numpy as np
import pytest

from rag.indexes.vector_index import VectorIndex


def unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def scanned(held: dict[int, np.ndarray], query: np.ndarray, allowed: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Top-k by a scan of every held vector, ties by id (the index's rows are in id order here)."""
    scores = sorted((-float(held[i] @ query), i) for i in set(allowed.tolist()) if i in held)
    return [(i, -s) for s, i in scores[:k]]


def runs(rng: np.random.Generator, first: int, last: int, count: int) -> np.ndarray:
    """Ids of `count` 'documents' of 1 to 12 consecutive chunks between `first` and `last`."""
    starts = np.sort(rng.choice(np.arange(first, last, 12), count, replace=False))
    return np.concatenate([np.arange(s, s + rng.integers(1, 13)) for s in starts])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_runs_of_ids_score_as_a_scan_does_with_holes_deletes_and_strays(kind):
    rng = np.random.default_rng(5)
    ids = np.arange(1, 4001, dtype=np.int64)
    ids = ids[rng.random(len(ids)) > 0.05]  # ids the index never held break some runs
    vectors = unit(rng, len(ids))
    index = VectorIndex(16, kind=kind)
    index.add(ids, vectors)
    dead = rng.choice(ids, 150, replace=False)
    index.remove(dead)
    held = {int(i): v for i, v in zip(ids, vectors, strict=True) if i not in set(dead.tolist())}
    # Under 2% of the rows, so HNSW answers exactly too (a wider filter walks the graph).
    allowed = np.concatenate([runs(rng, 1, 4000, 8), [5000, 6000]])  # and ids past the last row
    assert len(allowed) < 0.02 * index.rows
    query = unit(rng, 1)[0]
    for k in (1, 10, 500):
        got = index.search(query, k, allowed)
        want = scanned(held, query, allowed, k)
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5, atol=1e-6)


def test_unsorted_repeated_ids_and_labels_out_of_order():
    rng = np.random.default_rng(6)
    vectors = unit(rng, 60)
    index = VectorIndex(16)
    index.add(np.arange(100, 140), vectors[:40])
    index.add(np.arange(10, 30), vectors[40:])  # added after higher ids: labels no longer increase
    held = {**{100 + n: vectors[n] for n in range(40)}, **{10 + n: vectors[40 + n] for n in range(20)}}
    allowed = np.array([120, 15, 16, 17, 121, 15, 139, 140, 9])
    query = unit(rng, 1)[0]
    got = index.search(query, 10, allowed)
    assert [i for i, _ in got] == [i for i, _ in scanned(held, query, allowed, 10)]


def test_rows_of_runs_maps_whole_and_broken_runs():
    index = VectorIndex(4)
    index.add(np.array([1, 2, 3, 5, 6, 7, 8, 20]), np.eye(4, dtype=np.float32)[np.arange(8) % 4])
    # 1-3 and 5-8 held whole; 10 never held; 20-21 broken (21 past the last row).
    got = index._rows_of_runs(np.array([1, 2, 3, 5, 6, 7, 8, 10, 20, 21]))
    assert got.tolist() == [0, 1, 2, 3, 4, 5, 6, -1, 7, -1]

"""Which query words pick the candidates of an exact top-k BM25 search, and when the top k is proven.

MaxScore's argument, used by the PostgreSQL lexical index: a word w adds at most
ub(w) = idf(w) * (k1 + 1) to a chunk's BM25 (its tf / (tf + k1 * norm) is below 1). Score only the
chunks holding one of the rarest words (few postings), but each of them over all the query's words;
a chunk holding none of those words scores at most the sum of ub over the other words. When the
k-th best candidate scores strictly more than that sum, no chunk left out can enter the top k, nor
tie with its last member (a tie would be ordered by id and might belong in it): the top k is exact.
Otherwise the next round picks candidates with more words: at least enough for the other words'
bounds to sum below the k-th score just found (MaxScore's essential words), and at least as many
as a posting budget grown fourfold allows; at worst all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Scores are float8 sums computed by PostgreSQL; a left-out chunk's computed score may exceed the
# exact bound by rounding (a few ulps), so the bound is widened by far more than that.
ROUNDING_MARGIN = 1e-9

# How much each round multiplies the posting budget by (when the k-th score does not already say
# how many more words are needed, it takes at least the grown budget's).
GROWTH = 4


def within_budget(df: Sequence[float], budget: float, used: int = 0) -> int:
    """How many of the words (ordered by df ascending) pick candidates within `budget` postings:
    at least one more than `used`, then the next rarest while their summed df stays within it."""
    if used >= len(df):
        return len(df)
    spent = math.fsum(df[:used + 1])
    used += 1
    while used < len(df) and spent + df[used] <= budget:
        spent += df[used]
        used += 1
    return used


def needed(upper: Sequence[float], kth: float) -> int:
    """The fewest words (ordered by df ascending, so by `upper` descending) whose candidates can
    prove a top k whose k-th score is at least `kth`: the other words' bounds must sum below it.
    A round's k-th score only grows with more candidates, so fewer words can never be enough."""
    for used in range(len(upper) + 1):
        if _beats(kth, math.fsum(upper[used:])):
            return used
    return len(upper)


def proven(scores: Sequence[float], k: int, left_out_bound: float) -> bool:
    """Whether the best k candidates' `scores` (descending) are the exact top k, when no chunk
    outside the candidates can score more than `left_out_bound`."""
    if len(scores) < k:
        return False  # a left-out chunk holding only the other words would fill a place
    return _beats(scores[k - 1], left_out_bound)


def _beats(score: float, bound: float) -> bool:
    return score > bound * (1 + ROUNDING_MARGIN) + ROUNDING_MARGIN

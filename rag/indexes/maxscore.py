"""Which query words pick the candidates of an exact top-k BM25 search, and when the top k is proven.

MaxScore's argument, used by the PostgreSQL lexical index: a word w adds at most
ub(w) = idf(w) * (k1 + 1) to a chunk's BM25 (its tf / (tf + k1 * norm) is below 1). Score only the
chunks holding one of the rarest words (few postings), but each of them over all the query's words;
a chunk holding none of those words scores at most the sum of ub over the other words. When the
k-th best candidate scores strictly more than that sum, no chunk left out can enter the top k, nor
tie with its last member (a tie would be ordered by id and might belong in it): the top k is exact.
Otherwise the next round picks candidates with more words, until at worst all of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

# Scores are float8 sums computed by PostgreSQL; a left-out chunk's computed score may exceed the
# exact bound by rounding (a few ulps), so the bound is widened by far more than that.
ROUNDING_MARGIN = 1e-9

# How many postings a round's first candidates may cost before the budget grows, and by how much
# each further round multiplies it.
GROWTH = 4


def rounds(df: Sequence[float], budget: float) -> Iterator[int]:
    """How many of the words (ordered by df ascending) pick the candidates in each round: the
    rarest words while their summed df stays within the budget (at least one more each round),
    the budget multiplied by GROWTH each round, ending with all of them."""
    used, spent = 0, 0.0
    while used < len(df):
        spent += df[used]
        used += 1
        while used < len(df) and spent + df[used] <= budget:
            spent += df[used]
            used += 1
        yield used
        budget *= GROWTH


def proven(scores: Sequence[float], k: int, left_out_bound: float) -> bool:
    """Whether the best k candidates' `scores` (descending) are the exact top k, when no chunk
    outside the candidates can score more than `left_out_bound`."""
    if len(scores) < k:
        return False  # a left-out chunk holding only the other words would fill a place
    return scores[k - 1] > left_out_bound * (1 + ROUNDING_MARGIN) + ROUNDING_MARGIN

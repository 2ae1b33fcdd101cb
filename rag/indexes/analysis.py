"""How text becomes search terms, the same for a chunk that is indexed and a query that looks for it.

Words are runs of letters and digits (Unicode-aware), lower-cased, folded to ASCII where they have
a plain form (diacritics removed, as SQLite FTS5's `remove_diacritics 2` did), stripped of the
stopwords below and stemmed with the Snowball English stemmer. The user's text is never parsed as a
query language: its words are looked up, nothing else, so operators in it are inert.
"""

from __future__ import annotations

from functools import cache

import tantivy

__all__ = ["ANALYZER_NAME", "STOPWORDS", "analyzer", "query_terms"]

ANALYZER_NAME = "rag_en"
"""The name the analyzer is registered under on every tantivy index (stored in its schema)."""

# Words too common to help BM25 rank: dropped from queries (as the FTS5 path did) and from the
# index alike, which keeps their posting lists, the longest of all, out of it.
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have in into is it its of on or such that the their "
    "then there these they this to was were which while will with what who whom how why when where "
    "does do did can could should would may might not no".split()
)

_LONGEST_WORD = 40  # longer "words" are base64, hashes or URLs: noise in an inverted index


@cache
def analyzer() -> tantivy.TextAnalyzer:
    """The one analyzer, built once (it is immutable and safe to share between threads)."""
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(_LONGEST_WORD))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .filter(tantivy.Filter.custom_stopword(sorted(STOPWORDS)))
            .filter(tantivy.Filter.stemmer("english"))
            .build())


def query_terms(query: str) -> list[str]:
    """The distinct search terms of a user's query, in the order they first appear."""
    return list(dict.fromkeys(analyzer().analyze(query)))

"""How text becomes search terms, the same for a chunk that is indexed and a query that looks for it.

Words are runs of letters and digits (Unicode-aware), lower-cased and folded to ASCII where they
have a plain form (diacritics removed), then reduced by the Porter stemmer: what the SQLite FTS5
path did (`porter unicode61 remove_diacritics 2`), so ranking quality holds. Porter, not tantivy's
built-in Snowball English: measured on SciFact's train queries (lexical nDCG@10), Porter 0.691,
Snowball 0.688. A query drops the stopwords below; a chunk keeps them, so that BM25's length
normalisation counts every word as it did (0.6915 against 0.6906 with stopwords left out of
chunks too). The user's text is never parsed as a query language: its words are looked up and
nothing else, so operators in it are inert.

The index stores each chunk's terms already analysed, separated by spaces, and tantivy only splits
them again (`analyzer()`); stemming runs here, in PyStemmer's C implementation of Porter's
algorithm, since tantivy ships Snowball stemmers only.
"""

from __future__ import annotations

import threading
from functools import cache

import Stemmer
import tantivy

__all__ = ["ANALYZER_NAME", "STOPWORDS", "analyzer", "document_terms", "query_terms"]

ANALYZER_NAME = "rag_terms"
"""The name the analyzer is registered under on every tantivy index (stored in its schema)."""

# Words too common to help BM25 rank, dropped from queries (as the FTS5 path did).
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have in into is it its of on or such that the their "
    "then there these they this to was were which while will with what who whom how why when where "
    "does do did can could should would may might not no".split()
)

_LONGEST_WORD = 40  # longer "words" are base64, hashes or URLs: noise in an inverted index

_stemmers = threading.local()  # a PyStemmer stemmer (and its cache) is not safe to share between threads


@cache
def _words() -> tantivy.TextAnalyzer:
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(_LONGEST_WORD))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .build())


def _stem(words: list[str]) -> list[str]:
    stemmer = getattr(_stemmers, "porter", None)
    if stemmer is None:
        stemmer = _stemmers.porter = Stemmer.Stemmer("porter")
    return stemmer.stemWords(words)


@cache
def analyzer() -> tantivy.TextAnalyzer:
    """What tantivy applies to the terms `document_terms` gives it: a split on spaces."""
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()


def document_terms(text: str) -> str:
    """A chunk's text as the index takes it: its stemmed words, stopwords included, by spaces."""
    return " ".join(_stem(_words().analyze(text)))


def query_terms(query: str) -> list[str]:
    """The distinct search terms of a user's query, in the order they first appear."""
    return list(dict.fromkeys(_stem([w for w in _words().analyze(query) if w not in STOPWORDS])))

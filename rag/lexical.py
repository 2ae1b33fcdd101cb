"""Turning a user's words into an SQLite FTS5 query (the index itself lives in the store).

Queries are bags of words matched with OR and ranked by BM25, as classic lexical retrieval does;
every term is quoted, so FTS5's operators (AND, NEAR, *, column filters) in user text are inert.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)

# Words too common to help BM25 rank, dropped to keep posting lists short.
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have in into is it its of on or such that the their "
    "then there these they this to was were which while will with what who whom how why when where "
    "does do did can could should would may might not no".split()
)


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression for `query`, or None when it has no searchable word."""
    terms: list[str] = []
    seen: set[str] = set()
    for word in _WORD.findall(query.lower()):
        if word in STOPWORDS or word in seen:
            continue
        seen.add(word)
        terms.append(f'"{word}"')
    return " OR ".join(terms) if terms else None

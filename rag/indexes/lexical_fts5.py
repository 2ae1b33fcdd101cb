"""The lexical index on SQLite FTS5, inside the store's own database.

The `chunks_fts` table (migration 0001) indexes chunk text with external content: the text is
stored once, in `chunks`, and triggers keep the index in the same transaction as the rows it
indexes. So this index is always current and has nothing to load, apply, save or forget; it only
searches.

Queries are bags of words matched with OR and ranked by BM25, as classic lexical retrieval does;
every term is quoted, so FTS5's operators (AND, NEAR, *, column filters) in user text are inert.
"""

from __future__ import annotations

import json
import re

import numpy as np
from sqlalchemy import func, select, text

from rag.records import ChunkChange, Collection
from rag.schema import ChunkRow
from rag.store import Store

__all__ = ["STOPWORDS", "Fts5Index", "match_expression"]

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


class Fts5Index:
    """The `rag.indexes.LexicalIndex` over the store's FTS5 table."""

    def __init__(self, store: Store):
        self._store = store

    def search(self, collection: Collection, query: str, k: int, allowed: np.ndarray | None = None, *,
               filter: dict[str, list] | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, BM25 score) for the words of `query`; higher is better."""
        match = match_expression(query)
        if match is None:
            return []
        if filter:
            by_filter = self._store.filtered_chunk_ids(collection.id, filter)
            allowed = by_filter if allowed is None else np.intersect1d(allowed, by_filter)
        sql = ("SELECT c.id, -bm25(chunks_fts) AS score FROM chunks_fts "
               "JOIN chunks c ON c.id = chunks_fts.rowid "
               "WHERE chunks_fts MATCH :q AND c.collection_id = :cid")
        params: dict[str, object] = {"q": match, "cid": collection.id, "k": k}
        if allowed is not None:
            if len(allowed) == 0:
                return []
            sql += " AND c.id IN (SELECT value FROM json_each(:allowed))"
            params["allowed"] = json.dumps(allowed.tolist())
        sql += " ORDER BY bm25(chunks_fts) LIMIT :k"
        with self._store.engine.connect() as conn:
            return [(int(i), float(sc)) for i, sc in conn.execute(text(sql), params)]

    def load(self, collection: Collection) -> int:
        """How many chunks the index holds for the collection (the triggers keep it current)."""
        with self._store.read() as s:
            return s.scalar(select(func.count()).select_from(ChunkRow)
                            .where(ChunkRow.collection_id == collection.id)) or 0

    def apply(self, collection: Collection, change: ChunkChange) -> None:
        """Nothing to do: the triggers indexed the change in the transaction that committed it."""

    def save(self, collection: Collection) -> None:
        """Nothing to do: the index is in the database, committed with the chunks."""

    def forget(self, collection_id: int) -> None:
        """Nothing to do: deleting a collection's chunks deleted their index entries."""

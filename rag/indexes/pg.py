"""Search inside PostgreSQL: pgvector HNSW for dense, full-text search ranked by BM25 for lexical.

Both are implementations of the index protocols (`rag.indexes.base`) whose index lives in the
database itself, maintained by PostgreSQL in the transaction that writes the chunks: a chunk is
searchable by every server the moment its write commits, and a server holds no per-collection
state (no files, no caches to invalidate), so any number of `rag serve` processes can stand in
front of one database. `apply`, `save` and `close` have nothing to do.

Dense: each collection has its own partial HNSW index over its chunks' vectors cast to
`halfvec(dim)` (`chunks_hnsw_<collection id>`): dimensions differ between collections and an HNSW
index needs one; half precision halves the index (and allows up to 4,000 dimensions, against 2,000
for `vector`). The top k by the half-precision inner product are re-scored with the full-precision
vectors, so scores are exact cosines (vectors are L2-normalised). A filter is part of the same
query, with pgvector's iterative scan (`hnsw.iterative_scan = relaxed_order`) going on through
the graph until k rows pass it; `hnsw.ef_search` comes from RAG_PG_EF_SEARCH (at least k).

Lexical: `chunks.terms` is a generated `tsvector` of the chunk text (Snowball English, stopwords
dropped) with a GIN index. PostgreSQL's own rankings (`ts_rank`, `ts_rank_cd`) know nothing of
how rare a word is, so the matching chunks are ranked by Okapi BM25 computed in the query: term
frequencies from the tsvector's positions, document frequencies counted through the GIN index
(remembered per change number, `_Statistics`), length from the chunk's token count (k1 = 1.2,
b = 0.75, tantivy's idf). The query's words are
ORed, as on the tantivy path; the user's text is only ever analysed, never parsed as a tsquery.
A common word matches most of a large collection, so not every matching chunk is scored: the
chunks holding the rarest words (POSTING_BUDGET postings) are, each over all the words, and
`maxscore` says when their top k is provably the whole collection's (or how many more words the
next round needs): the result is exactly the full scoring's, ties ordered by id as there.

Collection ids and dimensions are written into the SQL as integers (never bound): the planner
matches a partial index only when the predicate is a constant it can compare.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np
from sqlalchemy import Float, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.orm import Session

from rag.errors import CollectionNotFound
from rag.indexes import maxscore
from rag.indexes.base import Ranking
from rag.migrations_postgres import TEXT_SEARCH_CONFIG
from rag.records import ChunkChange, Collection
from rag.schema import vector_literal
from rag.store import Store

__all__ = ["BM25_B", "BM25_K1", "HNSW_EF_CONSTRUCTION", "HNSW_M", "PgDenseIndex", "PgLexicalIndex"]

HNSW_M = 16
"""Graph degree of each collection's HNSW index (pgvector's default)."""
HNSW_EF_CONSTRUCTION = 64
"""Candidate list while building it (pgvector's default)."""
BM25_K1 = 1.2
BM25_B = 0.75
# Postings (summed document frequencies) the rarest query words may cost when they pick a lexical
# search's first candidates: tens of thousands of chunks scored in well under a second.
POSTING_BUDGET = 20_000
_INDEX_LOCK = 7406003
"""Advisory lock class under which one process at a time creates or drops a collection's index."""


def _index_name(collection_id: int) -> str:
    return f"chunks_hnsw_{int(collection_id)}"


def _half(dim: int) -> str:
    return f"halfvec({int(dim)})"


class PgDenseIndex:
    """Dense search by pgvector, one partial HNSW index per collection."""

    def __init__(self, store: Store, *, ef_search: int):
        self._store = store
        self.ef_search = ef_search

    @property
    def loaded(self) -> int:
        return 0  # nothing is held in this process

    def load(self, collection: Collection) -> int:
        """Make sure the collection's HNSW index exists (built from its rows if it does not yet:
        a collection made by `rag import`, or after `reindex`); returns its vector count."""
        cid = int(collection.id)
        with self._store.read() as s:
            exists = s.execute(text("SELECT to_regclass(:n)"), {"n": _index_name(cid)}).scalar() is not None
            count = int(s.execute(text(f"SELECT count(*) FROM chunks WHERE collection_id = {cid}")).scalar() or 0)
        if exists:
            return count
        with self._store.write() as s:
            s.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": _INDEX_LOCK, "b": cid})
            s.execute(text(
                f"CREATE INDEX IF NOT EXISTS {_index_name(cid)} ON chunks USING hnsw "
                f"((vector::{_half(collection.embedder.dim)}) halfvec_ip_ops) "
                f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) WHERE collection_id = {cid}"))
            return int(s.execute(text(f"SELECT count(*) FROM chunks WHERE collection_id = {cid}")).scalar() or 0)

    def search(self, collection: Collection, vector: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> Ranking:
        if allowed is not None and len(allowed) == 0:
            return []
        cid, half = int(collection.id), _half(collection.embedder.dim)
        # Two parameters with one value: PostgreSQL gives a parameter one type, the first cast it meets.
        literal = vector_literal(vector)
        params: dict[str, object] = {"q": literal, "q_half": literal, "top": k}
        where = f"collection_id = {cid}"
        stmt_params = []
        if allowed is not None:
            where += " AND id = ANY(:allowed)"
            params["allowed"] = [int(i) for i in allowed]
            stmt_params.append(bindparam("allowed", type_=ARRAY(BIGINT)))
        # The k nearest by the index's half precision, then ordered by the exact cosine.
        sql = text(
            f"SELECT id, -(vector <#> CAST(:q AS vector)) AS score FROM ("
            f" SELECT id, vector FROM chunks WHERE {where}"
            f" ORDER BY (vector::{half}) <#> CAST(:q_half AS {half}) LIMIT :top) AS nearest "
            "ORDER BY score DESC, id").bindparams(*stmt_params)
        with self._store.read() as s:
            # SET LOCAL: these hold for this transaction only, then the pooled connection is clean.
            s.execute(text(f"SET LOCAL hnsw.ef_search = {max(int(self.ef_search), int(k))}"))
            s.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            rows = s.execute(sql, params).all()
        return [(int(i), float(score)) for i, score in rows]

    def vectors_of(self, collection: Collection, chunk_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._store.vectors_of(collection_id=collection.id, chunk_ids=[int(i) for i in chunk_ids])

    def apply(self, collection: Collection, change: ChunkChange, added_vectors: np.ndarray | None = None) -> None:
        pass  # PostgreSQL updated the index in the transaction that wrote the chunks

    def save(self, collection: Collection) -> None:
        pass

    def forget(self, collection_id: int) -> None:
        """Drop the collection's HNSW index (deleted, or to be rebuilt by the next `load`)."""
        with self._store.write() as s:
            s.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": _INDEX_LOCK, "b": int(collection_id)})
            s.execute(text(f"DROP INDEX IF EXISTS {_index_name(collection_id)}"))

    def saved_stamp(self, collection_id: int) -> int | None:
        return None  # nothing on disk outside the database, and no change log to trim on PostgreSQL

    def close(self) -> None:
        pass


class _Statistics:
    """What BM25 needs beyond the matching rows: a collection's chunk count and mean length, and
    each word's document frequency. Remembered per (collection, change number): a memo, not state,
    since every search reads the collection's change number first and a write moves it (about 35 ms
    for the first two and 5 to 25 ms per word on SciFact's 11,652 chunks, every query otherwise)."""

    def __init__(self, capacity: int = 50_000):
        self._capacity = capacity
        self._lock = threading.Lock()
        self._values: OrderedDict[tuple[int, int, str], float] = OrderedDict()

    def get(self, key: tuple[int, int, str]) -> float | None:
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key: tuple[int, int, str], value: float) -> None:
        with self._lock:
            self._values[key] = value
            while len(self._values) > self._capacity:
                self._values.popitem(last=False)


class PgLexicalIndex:
    """Lexical search by PostgreSQL full-text search, ranked by BM25 computed in the query."""

    def __init__(self, store: Store, *, k1: float = BM25_K1, b: float = BM25_B,
                 posting_budget: float = POSTING_BUDGET):
        self._store = store
        self.k1 = k1
        self.b = b
        self.posting_budget = posting_budget
        self._stats = _Statistics()
        # Words picking the candidates in each round of this process's latest search (diagnostics
        # and tests: shows the pruning happened; concurrent searches overwrite it).
        self.last_rounds: tuple[int, ...] = ()

    def search(self, collection: Collection, query: str, k: int, allowed: np.ndarray | None = None, *,
               filter: dict[str, list] | None = None) -> Ranking:
        if allowed is not None and len(allowed) == 0:
            return []
        cid = int(collection.id)
        with self._store.read() as s:
            words = list(s.execute(text(
                f"SELECT DISTINCT lexeme FROM unnest(to_tsvector('{TEXT_SEARCH_CONFIG}', :query))"),
                {"query": query}).scalars())
            if not words:
                return []
            change = s.execute(text(f"SELECT change_number FROM collections WHERE id = {cid}")).scalar()
            if change is None:
                raise CollectionNotFound(f"collection {cid} no longer exists")
            n, avgdl = self._sizes(s, cid, change)
            df = self._frequencies(s, cid, change, words)
            words.sort(key=lambda w: (df[w], w))  # rarest first: the order candidates are picked in
            idf = [math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5)) for w in words]
            params: dict[str, object] = {"words": words, "idf": idf, "top": k, "bm25_k1": self.k1,
                                         "bm25_b": self.b, "avgdl": avgdl}
            restrict = ""
            stmt_params = [bindparam("words", type_=ARRAY(Text)), bindparam("idf", type_=ARRAY(Float)),
                           bindparam("picking", type_=ARRAY(Text))]
            budget = self.posting_budget
            if filter:
                documents, filter_params = self._store.filter_documents_sql(cid, filter)
                restrict += f" AND c.document_id IN ({documents})"
                params.update(filter_params)
            if allowed is not None:
                restrict += " AND c.id = ANY(:allowed)"
                params["allowed"] = [int(i) for i in allowed]
                stmt_params.append(bindparam("allowed", type_=ARRAY(BIGINT)))
                if len(allowed) <= budget:
                    budget = math.inf  # the allowed ids already bound the work: one round, all words
            # Each matching chunk's query words only, with their counts: setweight marks them 'A' and
            # ts_filter keeps the 'A's (the rest of the tsvector is never unnested). The sum runs in
            # the tsvector's own (sorted) order, whatever the plan: a chunk's float score is the same
            # bits in every round. Candidates are the chunks holding one of the words `picking`;
            # each is scored over all the words.
            statement = text(f"""
                SELECT c.id, t.score
                FROM chunks c
                CROSS JOIN LATERAL (
                    SELECT sum((:idf)[array_position(:words, u.lexeme)] * cardinality(u.positions) * (:bm25_k1 + 1)
                               / (cardinality(u.positions)
                                  + :bm25_k1 * (1 - :bm25_b + :bm25_b * c.token_count / :avgdl)))::float8 AS score
                    FROM unnest(ts_filter(setweight(c.terms, 'A', :words), '{{a}}')) u) t
                WHERE c.collection_id = {cid}
                  AND c.terms @@ (SELECT string_agg(quote_literal(w), ' | ')::tsquery FROM unnest(:picking) w){restrict}
                ORDER BY t.score DESC, c.id LIMIT :top""").bindparams(*stmt_params)
            # The most each word can add to a chunk's score; never below 0 (a word's idf can be, when
            # its count and the collection's size were read at different moments), or the bound
            # would promise less than a chunk without that word can score.
            upper = [max(v, 0.0) * (self.k1 + 1) for v in idf]
            dfs = [df[w] for w in words]
            used, trace = maxscore.within_budget(dfs, budget), []
            while True:
                rows = s.execute(statement, {**params, "picking": words[:used]}).all()
                trace.append(used)
                if used == len(words) or maxscore.proven([r[1] for r in rows], k, math.fsum(upper[used:])):
                    break
                budget *= maxscore.GROWTH
                enough = maxscore.needed(upper, rows[k - 1][1]) if len(rows) >= k else 0
                used = max(maxscore.within_budget(dfs, budget, used), enough)
            self.last_rounds = tuple(trace)
        return [(int(i), float(score)) for i, score in rows]

    def _sizes(self, s: Session, cid: int, change: int) -> tuple[float, float]:
        """(chunk count, mean token count) of the collection at change number `change`."""
        n, avgdl = self._stats.get((cid, change, "\0n")), self._stats.get((cid, change, "\0avgdl"))
        if n is None or avgdl is None:
            n, avgdl = s.execute(text(f"SELECT count(*)::float8, coalesce(avg(token_count), 1)::float8 "
                                      f"FROM chunks WHERE collection_id = {cid}")).one()
            self._stats.put((cid, change, "\0n"), n)
            self._stats.put((cid, change, "\0avgdl"), avgdl)
        return n, max(avgdl, 1.0)

    def _frequencies(self, s: Session, cid: int, change: int, words: list[str]) -> dict[str, float]:
        """How many of the collection's chunks hold each word (counted through the GIN index)."""
        found = {w: self._stats.get((cid, change, w)) for w in words}
        missing = [w for w, v in found.items() if v is None]
        if missing:
            for word, df in s.execute(text(
                    f"SELECT w, (SELECT count(*)::float8 FROM chunks WHERE collection_id = {cid} "
                    "AND terms @@ quote_literal(w)::tsquery) FROM unnest(:words) w")
                    .bindparams(bindparam("words", type_=ARRAY(Text))), {"words": missing}):
                found[word] = df
                self._stats.put((cid, change, word), df)
        return {w: float(v or 0.0) for w, v in found.items()}

    def load(self, collection: Collection) -> int:
        with self._store.read() as s:
            return int(s.execute(text(f"SELECT count(*) FROM chunks WHERE collection_id = {int(collection.id)}"))
                       .scalar() or 0)

    def apply(self, collection: Collection, change: ChunkChange) -> None:
        pass  # the generated tsvector and its GIN index moved with the chunks' own write

    def save(self, collection: Collection) -> None:
        pass

    def forget(self, collection_id: int) -> None:
        pass

    def saved_stamp(self, collection_id: int) -> int | None:
        return None  # nothing on disk outside the database, and no change log to trim on PostgreSQL

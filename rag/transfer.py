"""Copy collections between databases (SQLite to PostgreSQL, or back) without re-embedding.

Rows are copied as they are: documents with their text, hashes, statuses and metadata, chunks with
their offsets and vectors (float32, bit for bit). Ids are the target's own (it may already hold
other collections); what is compared afterwards does not depend on them. Each collection is copied
in one transaction of the target, so a failure leaves it absent, never half there, and a name the
target already has is refused before anything is written.

Verification, per collection, on both sides: counts of documents and chunks, and a SHA-256 over
every document (source, content hash, status) and every chunk (its document's source, ordinal,
text and vector bytes), in source and ordinal order; and the exact dense top 10 of sampled queries
(chunk vectors of the collection) found by each engine itself: numpy over SQLite's vectors, a
sequential `ORDER BY vector <#> q` in PostgreSQL.

Reported beside, not verified: the hybrid overlap@10 of the same sampled chunks, searched through
each database's own indexes (dense with the chunk's vector, lexical with its first words, fused as
retrieval fuses them). It is not 1 between SQLite and PostgreSQL, and is not meant to be: the
approximate dense indexes (FAISS HNSW, pgvector HNSW in half precision) and the lexical analysers
(tantivy, PostgreSQL's Snowball stems and stopwords) differ; it says how much a user's hybrid
results move with the engine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import insert, select, text

from rag.errors import CollectionExists
from rag.indexes import DenseIndex, LexicalIndex
from rag.records import Collection
from rag.retrieval import HYBRID_DEPTH, fuse
from rag.schema import ChunkRow, CollectionRow, DocumentRow
from rag.store import Store, _index_metadata

__all__ = ["CollectionCopy", "SearchSide", "checksum", "copy_collection", "exact_top10_agreement", "hybrid_overlap"]

_BATCH = 2000
"""Rows read and written per statement."""
QUERY_WORDS = 8
"""Words of a sampled chunk's text that make its lexical query in the hybrid comparison: a
search-box query, not a whole passage."""


@dataclass(frozen=True)
class CollectionCopy:
    """One collection copied, and what both sides hold afterwards."""

    name: str
    documents: int
    chunks: int
    source_checksum: str
    target_checksum: str

    @property
    def verified(self) -> bool:
        return self.source_checksum == self.target_checksum

    def to_dict(self) -> dict:
        return {"name": self.name, "documents": self.documents, "chunks": self.chunks,
                "checksum": self.target_checksum, "verified": self.verified}


def _pages(store: Store, query_after, batch: int = _BATCH) -> Iterator[Sequence]:  # noqa: ANN001
    after = 0
    while True:
        with store.read() as s:
            rows = s.execute(query_after(after).limit(batch)).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def copy_collection(source: Store, target: Store, collection: Collection) -> CollectionCopy:
    """Copy one collection of `source` into `target` (which must not have its name)."""
    cid = collection.id
    doc_columns = [DocumentRow.id, DocumentRow.source, DocumentRow.content_hash, DocumentRow.title,
                   DocumentRow.text, DocumentRow.status, DocumentRow.error, DocumentRow.metadata_json,
                   DocumentRow.created_at, DocumentRow.updated_at]
    chunk_columns = [ChunkRow.id, ChunkRow.document_id, ChunkRow.ordinal, ChunkRow.text, ChunkRow.token_count,
                     ChunkRow.start_char, ChunkRow.end_char, ChunkRow.page, ChunkRow.section, ChunkRow.vector]
    with target.write() as t:
        if t.scalar(select(CollectionRow.id).where(CollectionRow.name == collection.name)) is not None:
            raise CollectionExists(f"the target already has a collection named {collection.name!r}")
        row = CollectionRow(name=collection.name, embedder_kind=collection.embedder.kind,
                            embedder_model=collection.embedder.model_id, dim=collection.embedder.dim,
                            chunk_size=collection.chunk_size, chunk_overlap=collection.chunk_overlap,
                            change_number=collection.change_number, changes_from=collection.change_number,
                            created_at=collection.created_at)
        t.add(row)
        t.flush()
        new_cid = row.id
        documents: dict[int, int] = {}
        for rows in _pages(source, lambda after: select(*doc_columns).where(
                DocumentRow.collection_id == cid, DocumentRow.id > after).order_by(DocumentRow.id)):
            values = [{"collection_id": new_cid, "source": r.source, "content_hash": r.content_hash,
                       "title": r.title, "text": r.text, "status": r.status, "error": r.error, "owner": None,
                       "metadata_json": r.metadata_json, "created_at": r.created_at, "updated_at": r.updated_at}
                      for r in rows]
            ids = t.scalars(insert(DocumentRow).returning(DocumentRow.id, sort_by_parameter_order=True), values)
            for r, new_id in zip(rows, ids, strict=True):
                documents[r.id] = new_id
                _index_metadata(t, new_cid, new_id, r.metadata_json, replace=False)
        chunks = 0
        for rows in _pages(source, lambda after: select(*chunk_columns).where(
                ChunkRow.collection_id == cid, ChunkRow.id > after).order_by(ChunkRow.id)):
            t.execute(insert(ChunkRow), [
                {"document_id": documents[r.document_id], "collection_id": new_cid, "ordinal": r.ordinal,
                 "text": r.text, "token_count": r.token_count, "start_char": r.start_char, "end_char": r.end_char,
                 "page": r.page, "section": r.section, "vector": r.vector} for r in rows])
            chunks += len(rows)
    if target.on_postgres:
        # Fresh statistics now: until autovacuum comes by, the planner would guess at the new rows
        # (measured: a first server's hybrid searches 3x slower right after a copy).
        with target.write() as t:
            t.execute(text("ANALYZE collections, documents, chunks, document_metadata"))
    copied = target.get_collection(collection.name)
    return CollectionCopy(name=collection.name, documents=len(documents), chunks=chunks,
                          source_checksum=checksum(source, collection), target_checksum=checksum(target, copied))


def checksum(store: Store, collection: Collection) -> str:
    """SHA-256 of a collection's documents and chunks (texts, vectors), independent of ids."""
    digest = hashlib.sha256()
    with store.read() as s:
        docs = s.execute(select(DocumentRow.id, DocumentRow.source, DocumentRow.content_hash, DocumentRow.status)
                         .where(DocumentRow.collection_id == collection.id)).all()
    by_source = sorted(docs, key=lambda r: r.source.encode())
    for start in range(0, len(by_source), _BATCH):
        part = by_source[start:start + _BATCH]
        with store.read() as s:
            rows = s.execute(select(ChunkRow.document_id, ChunkRow.ordinal, ChunkRow.text, ChunkRow.vector)
                             .where(ChunkRow.document_id.in_([d.id for d in part]))).all()
        chunks: dict[int, list] = {}
        for r in rows:
            chunks.setdefault(r.document_id, []).append(r)
        for d in part:
            digest.update(json.dumps([d.source, d.content_hash, d.status]).encode())
            for c in sorted(chunks.get(d.id, ()), key=lambda r: r.ordinal):
                digest.update(json.dumps([c.ordinal, c.text]).encode())
                digest.update(c.vector)
    return digest.hexdigest()


def _exact_top(store: Store, collection: Collection, queries: np.ndarray, k: int) -> list[list[tuple[str, int]]]:
    """Each query's exact top k chunks by inner product, as (source, ordinal): ids differ between
    databases, a chunk's place in its document does not."""
    from rag.schema import vector_literal

    with store.read() as s:
        names = dict(s.execute(select(ChunkRow.id, DocumentRow.source).join(DocumentRow)
                               .where(ChunkRow.collection_id == collection.id)).all())
        ordinals = dict(s.execute(select(ChunkRow.id, ChunkRow.ordinal)
                                  .where(ChunkRow.collection_id == collection.id)).all())
    tops: list[list[int]] = []
    if store.on_postgres:
        with store.read() as s:
            for q in queries:
                ids = s.execute(text(f"SELECT id FROM chunks WHERE collection_id = {int(collection.id)} "
                                     "ORDER BY vector <#> CAST(:q AS vector), id LIMIT :k"),
                                {"q": vector_literal(q), "k": k}).scalars().all()
                tops.append(list(ids))
    else:
        chunk_ids, vectors, _ = store.vectors(collection.id)
        scores = queries @ vectors.T
        tops = [chunk_ids[np.lexsort((chunk_ids, -row))[:k]].tolist() for row in scores]
    return [[(names[i], ordinals[i]) for i in top] for top in tops]


def _sample(store: Store, collection: Collection, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunk ids, vectors) of `queries` chunks picked at random (all of them, in a smaller
    collection), in id order: the same picks for the same seed, so both checks ask the same."""
    ids, vectors, _ = store.vectors(collection.id)
    picks = np.sort(np.random.default_rng(seed).choice(len(vectors), size=min(queries, len(vectors)), replace=False))
    return ids[picks], vectors[picks]


def exact_top10_agreement(source: Store, target: Store, name: str, *, queries: int = 100, seed: int = 0
                          ) -> tuple[int, int]:
    """(identical, asked): of `queries` chunk vectors sampled as queries (all of them, in a smaller
    collection), how many get the same exact top 10 from both databases."""
    a, b = source.get_collection(name), target.get_collection(name)
    _, sample = _sample(source, a, queries, seed)
    if len(sample) == 0:
        return 0, 0
    same = sum(x == y for x, y in zip(_exact_top(source, a, sample, 10), _exact_top(target, b, sample, 10),
                                      strict=True))
    return same, len(sample)


@dataclass(frozen=True)
class SearchSide:
    """A database and the two indexes that search it (a service's own, or ones made for the check)."""

    store: Store
    dense: DenseIndex
    lexical: LexicalIndex


def _hybrid_top10(side: SearchSide, collection: Collection, vectors: np.ndarray, texts: list[str]
                  ) -> list[set[tuple[str, int]]]:
    side.dense.load(collection)
    side.lexical.load(collection)
    tops = []
    for vector, query in zip(vectors, texts, strict=True):
        dense = side.dense.search(collection, vector, HYBRID_DEPTH)
        lexical = side.lexical.search(collection, query, HYBRID_DEPTH) if query else []
        tops.append([c for c, *_ in fuse(dense, lexical)[:10]])
    keys = _chunk_keys(side.store, [c for top in tops for c in top])
    return [{keys[c] for c in top} for top in tops]


def _chunk_keys(store: Store, chunk_ids: list[int]) -> dict[int, tuple[str, int]]:
    """Each chunk as (its document's source, its ordinal): the same chunk in either database."""
    keys: dict[int, tuple[str, int]] = {}
    unique = sorted(set(chunk_ids))
    with store.read() as s:
        for start in range(0, len(unique), _BATCH):
            keys.update((r.id, (r.source, r.ordinal)) for r in s.execute(
                select(ChunkRow.id, DocumentRow.source, ChunkRow.ordinal).join(DocumentRow)
                .where(ChunkRow.id.in_(unique[start:start + _BATCH]))))
    return keys


def hybrid_overlap(source: SearchSide, target: SearchSide, name: str, *, queries: int = 100, seed: int = 0
                   ) -> float | None:
    """Mean overlap@10 (shared chunks / 10) of the hybrid top 10 each database's indexes give for
    the sampled chunks (those of `exact_top10_agreement`): the dense half searches with the chunk's
    vector, the lexical half with its first `QUERY_WORDS` words. None for an empty collection."""
    a, b = source.store.get_collection(name), target.store.get_collection(name)
    ids, sample = _sample(source.store, a, queries, seed)
    if len(sample) == 0:
        return None
    chunks = source.store.chunks(ids.tolist())
    texts = [" ".join(chunks[int(i)].text.split()[:QUERY_WORDS]) for i in ids]
    overlaps = [len(x & y) / max(len(x), len(y), 1) for x, y in
                zip(_hybrid_top10(source, a, sample, texts), _hybrid_top10(target, b, sample, texts), strict=True)]
    return float(np.mean(overlaps))

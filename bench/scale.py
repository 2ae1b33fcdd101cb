"""Every figure of the scale issue at one collection size, in one run, against whatever indexes the
service has: it writes and searches only through `Service` and `rag serve`.

    python -m bench scale --size 100k|1m [--home DIR] [--queries N] [--step-seconds S] [--steps search,http,growth]

1. The synthetic collection (`bench.synthetic`, cached) is written into a real data folder through
   the store's normal write path (`Service.writer(...).put_document`, one transaction a document,
   every index following as in production): chunks/s, the embedding excluded (vectors are given).
   With `--home` a folder already written at this size is reused and the write is skipped.
2. In process, SciFact train queries with k = 10: p50/p99 of lexical, dense and hybrid search (the
   query embedding excluded: the `bench` embedder looks the query's real MiniLM vector up; the
   model's own time for a query is reported apart), hybrid search filtered at ~1% and ~50%
   selectivity, dense recall@10 against exact search (numpy over all vectors), hybrid overlap@10
   against the exact path (the service's lexical list fused with exact dense, as retrieval fuses).
3. `rag serve` on the folder: ready time (until `/health` answers 200 and a first search
   succeeds) and peak RSS; one-document upload (`?wait=true`, the bench embedder hashing) and the
   delete of one document; 8 concurrent clients searching (hybrid): throughput and p99.
4. Growth: 3k and 30k SciFact-like documents (1.17 chunks each) over HTTP: lexical and hybrid p50
   and upload time, and their ratio (30k / 3k).

An in-run reference (single-threaded flat FAISS search over 10k vectors) and the load average are
printed at the start and the end: compare runs through them. Every step is bounded in queries and
seconds (`--step-seconds`), so a slow implementation is sampled less rather than hanging the run.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import resource
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench import lookup_embedder
from bench.scifact_source import SciFact, load_scifact
from bench.server_process import ServerProcess
from bench.synthetic import SIZES, SyntheticSet, build_or_load
from bench.timing import Budget, Latencies, load, timed, timed_concurrently
from rag.config import Settings
from rag.records import ChunkDraft, Collection
from rag.retrieval import HYBRID_DEPTH, fuse
from rag.service import Service

__all__ = ["main"]

COLLECTION = "scale"
SEPARATOR = "\n\n"
MANIFEST = "bench-scale.json"


def log(message: str) -> None:
    print(message, flush=True)


# -- writing ----------------------------------------------------------------------------------------

def document_parts(synth: SyntheticSet, texts: list[str], rows: range) -> tuple[str, list[ChunkDraft]]:
    """The document's text (chunks joined by a blank line) and its chunks with their offsets."""
    chunks, at = [], 0
    for row, text in zip(rows, texts, strict=True):
        chunks.append(ChunkDraft(text=text, token_count=synth.chunk_tokens(row), start_char=at,
                                 end_char=at + len(text)))
        at += len(text) + len(SEPARATOR)
    return SEPARATOR.join(texts), chunks


@dataclass
class WriteFigures:
    chunks: int = 0
    documents: int = 0
    put_s: float = 0.0
    save_s: float = 0.0
    reused: bool = False
    batched: bool = True

    def summary(self) -> dict:
        if self.reused:
            return {"reused": True}
        return {"chunks": self.chunks, "documents": self.documents, "batched": self.batched,
                "put_s": round(self.put_s, 1), "save_s": round(self.save_s, 1),
                "chunks_per_s": round(self.chunks / self.put_s, 1),
                "chunks_per_s_with_save": round(self.chunks / (self.put_s + self.save_s), 1)}


WRITE_BATCH_CHUNKS = 256
"""Chunks per write transaction, as the ingest pipeline batches them (`ingest.pipeline.EMBED_BATCH_CHUNKS`)."""


def write(service: Service, collection: Collection, synth: SyntheticSet, documents: range,
          source_prefix: str) -> tuple[WriteFigures, np.ndarray]:
    """Write the documents through the collection's writer, in batches of about 256 chunks (one
    transaction each, as `rag ingest` commits them) where the writer takes batches, else one
    document at a time. The time in the writer and the final index save are measured; the
    bench's own text assembly is not."""
    writer = service.writer(collection)
    writer.open_index()
    batched = hasattr(writer, "put_documents")  # main before the batched write path: one at a time
    if batched:
        from rag.records import DocumentDraft
    figures = WriteFigures(batched=batched)
    doc_ids: list[int] = []
    step = max(1, len(documents) // 10)
    drafts: list[dict] = []
    chunks_in_batch = 0

    def put() -> None:
        nonlocal drafts, chunks_in_batch
        t = time.perf_counter()
        if batched:
            doc_ids.extend(writer.put_documents([DocumentDraft(**d) for d in drafts]))
        else:
            doc_ids.extend(writer.put_document(**d) for d in drafts)
        figures.put_s += time.perf_counter() - t
        drafts, chunks_in_batch = [], 0

    for n, d in enumerate(documents):
        rows = synth.rows_of(d)
        text, chunks = document_parts(synth, [synth.chunk_text(r) for r in rows], rows)
        drafts.append({"source": f"{source_prefix}/{d}", "content_hash": hashlib.sha256(text.encode()).hexdigest(),
                       "title": f"Synthetic document {d}", "text": text, "metadata": synth.metadata(d),
                       "chunks": chunks, "vectors": np.asarray(synth.vectors[rows.start:rows.stop])})
        chunks_in_batch += len(chunks)
        figures.chunks += len(chunks)
        figures.documents += 1
        if chunks_in_batch >= WRITE_BATCH_CHUNKS:
            put()
        if (n + 1) % step == 0:
            log(f"  {n + 1:>9,} documents, {figures.chunks:>9,} chunks: "
                f"{figures.chunks / max(figures.put_s, 1e-9):8.0f} chunks/s so far  ({load()})")
    if drafts:
        put()
    t = time.perf_counter()
    writer.save_index()
    figures.save_s = time.perf_counter() - t
    return figures, np.asarray(doc_ids, dtype=np.int64)


def open_or_write(home: Path, synth: SyntheticSet, seed: int) -> tuple[Service, Collection, WriteFigures, np.ndarray]:
    manifest = home / MANIFEST
    if manifest.exists():
        info = json.loads(manifest.read_text())
        if info.get("size") == synth.size and info.get("seed") == seed:
            service = Service(Settings(home=home))
            log(f"reusing {home} (written before at this size; delete it to time the write again)")
            return (service, service.get_collection(COLLECTION), WriteFigures(reused=True),
                    np.load(home / "bench-doc-ids.npy"))
        raise SystemExit(f"{home} holds a different benchmark collection; choose another --home")
    service = Service(Settings(home=home))
    collection = service.create_collection(COLLECTION, embedder=lookup_embedder.KIND)
    log(f"writing {synth.size:,} chunks ({synth.documents:,} documents) into {home} ...")
    figures, doc_ids = write(service, collection, synth, range(synth.documents), "synthetic")
    np.save(home / "bench-doc-ids.npy", doc_ids)
    manifest.write_text(json.dumps({"size": synth.size, "seed": seed, "collection": COLLECTION}))
    return service, service.get_collection(COLLECTION), figures, doc_ids


# -- hits back to rows of the synthetic set ---------------------------------------------------------

class RowMap:
    """Which synthetic row a hit is: by its document and its chunk's start offset (chunk ids are
    the store's business; these two the bench wrote itself)."""

    def __init__(self, synth: SyntheticSet, doc_ids: np.ndarray):
        self.synth = synth
        self.doc_of = {int(i): d for d, i in enumerate(doc_ids.tolist())}
        self._starts: dict[int, dict[int, int]] = {}

    def row(self, document_id: int, start_char: int) -> int:
        """The row, or -1 for a chunk the bench did not write (an upload left by an earlier run)."""
        d = self.doc_of.get(document_id)
        if d is None:
            return -1
        if d not in self._starts:
            starts, at = {}, 0
            for row in self.synth.rows_of(d):
                starts[at] = row
                at += len(self.synth.chunk_text(row)) + len(SEPARATOR)
            self._starts[d] = starts
        return self._starts[d].get(start_char, -1)


def exact_dense(vectors: np.ndarray, queries: np.ndarray, k: int, block: int = 50_000
                ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k rows and scores of each query over all vectors (inner product), block by block
    so a memory-mapped million-row matrix is never copied whole."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    best_rows = np.empty((len(q), 0), dtype=np.int64)
    best_scores = np.empty((len(q), 0), dtype=np.float32)
    for start in range(0, len(vectors), block):
        scores = q @ np.asarray(vectors[start:start + block]).T
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_rows = np.concatenate([best_rows, rows], axis=1)
        keep = np.argpartition(-all_scores, min(k, all_scores.shape[1] - 1), axis=1)[:, :k]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_rows = np.take_along_axis(all_rows, keep, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_rows, order, axis=1), np.take_along_axis(best_scores, order, axis=1)


# -- the in-run reference -------------------------------------------------------------------------

def reference_ms(synth: SyntheticSet, queries: np.ndarray, n: int = 10_000) -> float:
    """p50 of a single-threaded exact FAISS search over `n` vectors: what the CPU gives right now."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index = faiss.IndexFlatIP(synth.vectors.shape[1])
        index.add(np.ascontiguousarray(synth.vectors[:n]))
        index.search(queries[:1], 10)
        got = timed(lambda q: index.search(q.reshape(1, -1), 10), list(queries[:200]), Budget(200, 10))
    finally:
        faiss.omp_set_num_threads(before)
    return got.p50


# -- the measurements -----------------------------------------------------------------------------

@dataclass
class Figures:
    size: int
    results: dict = field(default_factory=dict)

    def put(self, name: str, value: object) -> None:
        self.results[name] = value


def in_process(service: Service, collection: Collection, synth: SyntheticSet, scifact: SciFact,
               rows: RowMap, figures: Figures, budget: Budget, recall_queries: int) -> None:
    queries = scifact.query_texts
    for mode in ("lexical", "dense", "hybrid"):
        service.search(collection, queries[0], k=10, mode=mode)  # warm
        got = timed(lambda q, m=mode: service.search(collection, q, k=10, mode=m), queries, budget)
        figures.put(f"search_{mode}", got.summary())
        log(f"  {mode:8s} p50 {got.p50:9.1f} ms  p99 {got.p99:9.1f} ms  ({len(got.ms)} queries; {load()})")

    local = service.embedder("local")
    got = timed(lambda q: local.embed_one(q), queries, Budget(budget.items, 30))
    figures.put("query_embedding_local", got.summary())
    log(f"  query embedding (local MiniLM, apart) p50 {got.p50:.1f} ms  p99 {got.p99:.1f} ms")

    docs = synth.documents
    chunks_per_doc = np.diff(synth.doc_offsets)
    for label, flt, chosen in (("1%", {"shard": "s42"}, synth.shard == 42),
                               ("50%", {"half": "even"}, synth.half == 0)):
        selectivity = float(chunks_per_doc[chosen].sum()) / synth.size
        got = timed(lambda q, f=flt: service.search(collection, q, k=10, filter=f), queries, budget)
        figures.put(f"filtered_{label}", {**got.summary(), "selectivity": round(selectivity, 4)})
        log(f"  hybrid filtered {label:>3s} (actual {selectivity:.2%} of chunks, {int(chosen.sum()):,} of {docs:,} "
            f"documents): p50 {got.p50:8.1f} ms  p99 {got.p99:8.1f} ms  ({len(got.ms)} queries)")

    # Quality against exact search, on the first queries (bounded in time like the rest).
    n = min(recall_queries, len(queries))
    t0 = time.perf_counter()
    exact_rows, exact_scores = exact_dense(synth.vectors, scifact.query_vectors[:n], max(HYBRID_DEPTH, 10))
    log(f"  exact dense top-{max(HYBRID_DEPTH, 10)} of {n} queries by numpy: {time.perf_counter() - t0:.1f} s")
    recalls, overlaps = [], []
    deadline = time.perf_counter() + max(budget.seconds, 60)
    for i in range(n):
        if i >= 3 and time.perf_counter() > deadline:
            break
        q = queries[i]
        dense = [rows.row(h.document_id, h.start_char) for h in service.search(collection, q, k=10, mode="dense")]
        recalls.append(len(set(dense) & set(exact_rows[i, :10].tolist())) / 10)
        lexical = [(rows.row(h.document_id, h.start_char), h.score)
                   for h in service.search(collection, q, k=HYBRID_DEPTH, mode="lexical")]
        exact_hybrid = [r for r, *_ in fuse(list(zip(exact_rows[i].tolist(), exact_scores[i].tolist(), strict=True)),
                                            lexical)[:10]]
        hybrid = [rows.row(h.document_id, h.start_char) for h in service.search(collection, q, k=10, mode="hybrid")]
        overlaps.append(len(set(hybrid) & set(exact_hybrid)) / 10)
    figures.put("dense_recall_at_10", {"n": len(recalls), "mean": round(float(np.mean(recalls)), 4)})
    figures.put("hybrid_overlap_at_10", {"n": len(overlaps), "mean": round(float(np.mean(overlaps)), 4)})
    log(f"  dense recall@10 vs exact {np.mean(recalls):.3f}   hybrid overlap@10 vs exact path "
        f"{np.mean(overlaps):.3f}  ({len(recalls)} queries)")


def upload_body(synth: SyntheticSet, rng: np.random.Generator) -> dict:
    """A fresh three-chunk document (~450 tokens) no earlier upload sent."""
    texts = [synth.chunk_text(int(r)) for r in rng.integers(0, synth.size, 3)]
    return {"documents": [{"text": SEPARATOR.join(texts), "title": "Uploaded by the benchmark",
                           "source": f"bench-upload-{uuid.uuid4().hex}", "metadata": {"shard": "upload"}}]}


def upload_and_delete(http: httpx.Client, collection: str, synth: SyntheticSet, budget: Budget
                      ) -> tuple[Latencies, Latencies]:
    """Upload fresh one-document bodies with `?wait=true` (201 once searchable), then delete each:
    the milliseconds of each call. At most `budget.items` uploads, fewer once `budget.seconds` are
    spent (an implementation that saves a whole index per write takes a minute each at 1M)."""
    rng = np.random.default_rng(7)
    uploads, deletes, ids = [], [], []
    t0 = time.perf_counter()
    while len(uploads) < budget.items and (len(uploads) < budget.minimum or time.perf_counter() - t0 < budget.seconds):
        body = upload_body(synth, rng)
        t = time.perf_counter()
        r = http.post(f"/collections/{collection}/documents", params={"wait": "true"}, json=body)
        uploads.append((time.perf_counter() - t) * 1000)
        if r.status_code != 201:
            raise RuntimeError(f"upload answered {r.status_code}: {r.text[:300]}")
        ids.append(r.json()["data"][0]["id"])
    upload_wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    for doc_id in ids:
        t = time.perf_counter()
        r = http.delete(f"/collections/{collection}/documents/{doc_id}")
        deletes.append((time.perf_counter() - t) * 1000)
        if r.status_code != 204:
            raise RuntimeError(f"delete answered {r.status_code}: {r.text[:300]}")
    return Latencies(uploads, upload_wall), Latencies(deletes, time.perf_counter() - t0)


def over_http(home: Path, table: Path, synth: SyntheticSet, scifact: SciFact, figures: Figures, budget: Budget,
              clients: int, ready_timeout_s: float) -> None:
    raw_mb = synth.size * synth.vectors.shape[1] * 4 / 2**20
    with ServerProcess(home, table) as server:
        ready = server.wait_ready(COLLECTION, scifact.query_texts[0], timeout_s=ready_timeout_s)
        rss_ready = server.peak_rss_mb()
        log(f"  ready (health 200 and a first search) {ready:.1f} s; peak RSS {rss_ready:,.0f} MB "
            f"({rss_ready / raw_mb:.2f}x the raw vectors, {raw_mb:,.0f} MB)  ({load()})")
        with httpx.Client(base_url=server.base, timeout=600,
                          limits=httpx.Limits(max_connections=clients)) as http:
            uploads, deletes = upload_and_delete(http, COLLECTION, synth, Budget(5, budget.seconds, minimum=1))
            log(f"  one-document upload (?wait=true, 3 chunks; {len(uploads.ms)} of them): p50 {uploads.p50:.0f} ms, "
                f"max {max(uploads.ms):.0f} ms; delete of one document: p50 {deletes.p50:.0f} ms, "
                f"max {max(deletes.ms):.0f} ms")

            def search(q: str) -> None:
                http.post(f"/collections/{COLLECTION}/search", json={"query": q, "k": 10}).raise_for_status()

            got = timed_concurrently(search, scifact.query_texts, budget, clients)
            log(f"  {clients} concurrent clients, hybrid over HTTP: {got.per_second:.1f} searches/s, "
                f"p50 {got.p50:.0f} ms, p99 {got.p99:.0f} ms ({len(got.ms)} searches; {load()})")
        rss_serving = server.peak_rss_mb()
        log(f"  peak RSS while serving {rss_serving:,.0f} MB ({rss_serving / raw_mb:.2f}x the raw vectors)")
    figures.put("http", {"ready_s": round(ready, 2), "peak_rss_ready_mb": round(rss_ready),
                         "peak_rss_serving_mb": round(rss_serving), "raw_vectors_mb": round(raw_mb),
                         "upload": uploads.summary() | {"max_ms": round(max(uploads.ms), 1)},
                         "delete": deletes.summary() | {"max_ms": round(max(deletes.ms), 1)},
                         f"search_{clients}_clients": got.summary()})


def growth(table: Path, synth: SyntheticSet, scifact: SciFact, figures: Figures, budget: Budget) -> None:
    """3k and 30k SciFact-like documents (every sixth has two chunks), each in its own collection
    of one data folder, searched and written to over HTTP."""
    home = Path(tempfile.mkdtemp(prefix="rag-bench-growth-"))
    sizes = (3_000, 30_000)
    try:
        with Service(Settings(home=home)) as service:
            for n in sizes:
                collection = service.create_collection(f"growth-{n}", embedder=lookup_embedder.KIND)
                layout = _scifact_like(synth, n)
                got, _ = write(service, collection, layout, range(n), f"growth-{n}")
                log(f"  wrote {n:,} documents ({got.chunks:,} chunks): {got.chunks / got.put_s:.0f} chunks/s")
        with ServerProcess(home, table) as server:
            server.wait_ready(f"growth-{sizes[0]}", scifact.query_texts[0], timeout_s=300)
            with httpx.Client(base_url=server.base, timeout=300) as http:
                out: dict[int, dict[str, float]] = {n: {} for n in sizes}
                for mode in ("lexical", "hybrid"):
                    # The sizes take turns query by query: a shared machine's load then weighs on
                    # both alike, where timing one size after the other compares two moments.
                    def search(item: tuple[int, str], m: str = mode) -> None:
                        n, q = item
                        http.post(f"/collections/growth-{n}/search", json={"query": q, "k": 10, "mode": m}
                                  ).raise_for_status()
                    for n in sizes:
                        search((n, scifact.query_texts[0]))  # warm
                    turns = [(n, q) for q in scifact.query_texts for n in sizes]
                    got = timed(search, turns, Budget(2 * budget.items, 2 * budget.seconds))
                    for i, n in enumerate(sizes):
                        out[n][mode] = Latencies(got.ms[i::len(sizes)], got.wall_s).p50
                for n in sizes:
                    row = out[n]
                    row["upload"] = upload_and_delete(http, f"growth-{n}", synth, Budget(5, 60, minimum=1))[0].p50
                    log(f"  {n:>6,} documents over HTTP: lexical p50 {row['lexical']:.1f} ms, hybrid p50 "
                        f"{row['hybrid']:.1f} ms, upload p50 {row['upload']:.0f} ms  ({load()})")
        small, large = out[sizes[0]], out[sizes[1]]
        ratios = {k: round(large[k] / small[k], 2) for k in small}
        log(f"  growth 3k -> 30k documents: lexical x{ratios['lexical']}, hybrid x{ratios['hybrid']}, "
            f"upload x{ratios['upload']} (target <= 2)")
        figures.put("growth_3k_30k", {"3k": _rounded(small), "30k": _rounded(large), "ratio": ratios})
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _scifact_like(synth: SyntheticSet, documents: int) -> SyntheticSet:
    """The set's rows laid out as `documents` documents of one chunk, every sixth of two."""
    sizes = np.where(np.arange(documents) % 6 == 0, 2, 1)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    metadata = np.arange(documents)
    return SyntheticSet(**{**synth.__dict__, "doc_offsets": offsets, "shard": (metadata % 100).astype(np.int8),
                           "half": (metadata % 2).astype(np.int8)})


def _rounded(row: dict) -> dict:
    return {k: round(v, 2) for k, v in row.items()}


# -- the entry ------------------------------------------------------------------------------------

STEPS = ("search", "http", "growth")
DEFAULTS = {  # (queries per step, seconds per step, recall queries, ready timeout)
    "10k": (200, 30, 100, 300),
    "100k": (200, 60, 100, 600),
    "1m": (100, 90, 50, 1800),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=list(SIZES), default="100k")
    parser.add_argument("--home", type=Path, default=None,
                        help="data folder (reused when already written at this size; default: a new temp one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=None, help="queries per timed step")
    parser.add_argument("--step-seconds", type=float, default=None, help="time bound of each timed step")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"which of {', '.join(STEPS)} to run (the write comes with search and http)")
    parser.add_argument("--keep", action="store_true", help="keep the temp data folder")
    args = parser.parse_args(argv)
    items, seconds, recall_queries, ready_timeout = DEFAULTS[args.size]
    steps = {s.strip() for s in args.steps.split(",") if s.strip()}
    if steps - set(STEPS):
        parser.error(f"unknown steps {', '.join(sorted(steps - set(STEPS)))}; choose from {', '.join(STEPS)}")
    budget = Budget(args.queries or items, args.step_seconds or seconds)

    started = time.perf_counter()
    log(f"== scale {args.size} ==  ({load()})")
    scifact = load_scifact(log=log)
    synth = build_or_load(SIZES[args.size], seed=args.seed, log=log)
    log(f"synthetic set: {synth.size:,} chunks in {synth.documents:,} documents from {len(scifact.chunk_texts):,} "
        f"SciFact chunks; noise {synth.noise:.3f}, mean cosine to the source {synth.mean_cosine:.3f} (<= 0.9)")
    figures = Figures(synth.size)
    figures.put("synthetic", {"documents": synth.documents, "noise": round(synth.noise, 4),
                              "mean_cosine_to_source": round(synth.mean_cosine, 4)})
    ref = reference_ms(synth, scifact.query_vectors)
    figures.put("reference_start", {"flat_10k_1thread_p50_ms": round(ref, 3), "load": load()})
    log(f"in-run reference: flat search over 10k vectors, one thread, p50 {ref:.3f} ms  ({load()})")

    table = Path(tempfile.mkdtemp(prefix="rag-bench-table-")) / "queries.npz"
    lookup_embedder.save_table(table, scifact.query_texts, scifact.query_vectors)
    lookup_embedder.register(lookup_embedder.load_table(table))
    temp_home = args.home is None
    home = args.home or Path(tempfile.mkdtemp(prefix=f"rag-bench-scale-{args.size}-"))
    try:
        if steps & {"search", "http"}:
            service, collection, written, doc_ids = open_or_write(home, synth, args.seed)
            figures.put("write", written.summary())
            if not written.reused:
                how = "batched transactions" if written.batched else "one document a transaction"
                log(f"write ({how}): {written.chunks:,} chunks in {written.put_s:.1f} s = "
                    f"{written.chunks / written.put_s:,.0f} chunks/s (embedding excluded), then the index save "
                    f"{written.save_s:.1f} s  ({load()})")
            if not written.reused:
                # The bulk write leaves the indexes to be finished in the background (the lexical
                # commit; the switch from flat to HNSW past the exact limit). A search measured
                # now would time that work: a fresh service finishes it first, as a restart would.
                service.close()
                service = Service(Settings(home=home))
                collection = service.get_collection(COLLECTION)
            t = time.perf_counter()
            service.warm_up()
            built = time.perf_counter() - t
            figures.put("indexes_ready_s", round(built, 1))
            log(f"indexes ready (loaded{'' if written.reused else ', and built after the bulk write'}): "
                f"{built:.1f} s  ({load()})")
            with service:
                if "search" in steps:
                    log("in process, k=10:")
                    in_process(service, collection, synth, scifact, RowMap(synth, doc_ids), figures, budget,
                               recall_queries)
            del service, collection  # its indexes too: the server gets the memory
            gc.collect()
        if "http" in steps:
            log("over HTTP (rag serve):")
            over_http(home, table, synth, scifact, figures, budget, args.clients, ready_timeout)
        if "growth" in steps and synth.size < 40_000:
            log("growth: skipped (it draws 35k chunks from the set; use --size 100k or more)")
        elif "growth" in steps:
            log("growth over HTTP:")
            growth(table, synth, scifact, figures, Budget(min(budget.items, 100), min(budget.seconds, 30)))
    finally:
        if temp_home and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(table.parent, ignore_errors=True)
    ref = reference_ms(synth, scifact.query_vectors)
    figures.put("reference_end", {"flat_10k_1thread_p50_ms": round(ref, 3), "load": load()})
    figures.put("bench_peak_rss_mb", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    figures.put("seconds", round(time.perf_counter() - started))
    log(f"in-run reference at the end: {ref:.3f} ms  ({load()}); whole run {time.perf_counter() - started:.0f} s")
    print(json.dumps({"scale": args.size, **figures.results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

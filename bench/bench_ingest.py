"""The whole ingest pipeline against the raw embedder on the same chunks, in one run; then search
latency per mode at this size.

    python -m bench.bench_ingest [--docs 5183] [--queries 300] [--home DIR]

1. Ingest SciFact's corpus into a fresh collection (`rag ingest`'s pipeline: parse, chunk, embed,
   store, index): wall time, and how much of it was the embedder.
2. Embed the very chunks the pipeline stored, with the same embedder and nothing else: the
   reference. Everything that is not embedding costs (pipeline − reference) / reference.
3. Peak resident memory of this process.
4. Search latency per mode (dense, lexical, hybrid) over SciFact's train queries, k = 10: p50, p99.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_embedder import scifact_dir  # noqa: E402
from ingest.pipeline import Pipeline  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.retrieval import MODES  # noqa: E402
from rag.service import Service  # noqa: E402
from rag.store import Store  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=0, help="first N SciFact documents (0: all 5,183)")
    parser.add_argument("--queries", type=int, default=300, help="train queries timed per mode")
    parser.add_argument("--home", type=Path, default=None, help="data folder to build in (default: a temp one)")
    args = parser.parse_args(argv)

    source = scifact_dir()
    home = args.home or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    corpus = source / "corpus.jsonl"
    if args.docs:
        corpus = home / "corpus.jsonl"
        home.mkdir(parents=True, exist_ok=True)
        with open(source / "corpus.jsonl") as src, open(corpus, "w") as dst:
            dst.writelines(itertools.islice(src, args.docs))

    service = Service(Settings(home=home))
    collection = service.open_collection("scifact", create=True)
    embedder = service.embedder_for(collection)
    embedder.embed(["warm up the model before timing"])

    t0 = time.perf_counter()
    summary = Pipeline(service.writer(collection)).ingest_paths([corpus])
    pipeline_s = time.perf_counter() - t0
    if summary.failed:
        print(f"failures: {summary.failed[:3]}", file=sys.stderr)
        return 1

    store = Store(service.settings.database_path)  # the reference reads the very chunks ingested
    ids, _, _ = store.vectors(collection.id)
    texts = [c.text for c in store.chunks(ids.tolist()).values()]
    store.close()
    t0 = time.perf_counter()
    embedder.embed(texts)
    reference_s = time.perf_counter() - t0
    overhead = (pipeline_s - reference_s) / reference_s
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"ingest: {len(summary.added)} documents, {summary.chunks} chunks, {summary.tokens:,} tokens")
    print(f"  whole pipeline      {pipeline_s:8.1f} s  ({summary.chunks / pipeline_s:6.1f} chunks/s,"
          f" of which embedding {summary.embed_seconds:.1f} s)")
    print(f"  raw embedder alone  {reference_s:8.1f} s  ({len(texts) / reference_s:6.1f} chunks/s, same chunks)")
    print(f"  not embedding (parse, chunk, store, index): {overhead:+.1%} of the embedding time (goal <= 10%)")
    print(f"  peak memory {peak_mb:,.0f} MB")

    queries = [json.loads(line)["text"] for line in open(source / "queries.jsonl")][: args.queries]
    results = {"documents": len(summary.added), "chunks": summary.chunks, "pipeline_s": round(pipeline_s, 2),
               "embed_reference_s": round(reference_s, 2), "overhead": round(overhead, 4),
               "peak_mb": round(peak_mb), "search": {}}
    print(f"search latency, {len(queries)} train queries, k=10, {summary.chunks} chunks:")
    for mode in MODES:
        service.search(collection, queries[0], k=10, mode=mode)  # warm
        times = []
        for q in queries:
            t = time.perf_counter()
            service.search(collection, q, k=10, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
        p50, p99 = percentile(times, 50), percentile(times, 99)
        results["search"][mode] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2)}
        print(f"  {mode:8s} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    print(json.dumps(results))
    service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

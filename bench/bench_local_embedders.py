"""The two local embedders side by side, in one run: float32 (`local`) and int8 (`local-int8`).

    python -m bench.bench_local_embedders [--home DIR] [--sentences 1000] [--queries 300] [--no-quality]

1. Throughput: the same 50-word sentences (bench_embedder's, seed 0) and short 8-word ones through
   each, batches of 32, alternating runs so a shared machine's load falls on both alike (best of 3).
2. Query latency: one question at a time, as search embeds it (p50).
3. Agreement: the mean and lowest cosine between the two models' vectors for the same text.
4. Quality: nDCG@10, Recall@100 and MRR@10 on SciFact's train split (as `rag eval --split train`),
   dense and hybrid, for a collection built by each embedder in `--home`: `scifact` (float32, as
   bench_ingest leaves it) and `scifact-int8`, ingested here when missing or incomplete.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_embedder import matmul_gflops, scifact_dir, sentences  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.embeddings.local import LocalEmbedder, LocalInt8Embedder  # noqa: E402

COLLECTIONS = {"local": "scifact", "local-int8": "scifact-int8"}


def best_rate(embedder: LocalEmbedder, texts: list[str]) -> float:
    start = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - start)


def quality(home: Path, kind: str, modes: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """SciFact train-split metrics of the collection `kind` built, ingesting what is missing."""
    from ingest.pipeline import Pipeline
    from rag.evaluation import evaluate, load_qrels, load_queries
    from rag.service import Service

    source = scifact_dir()
    with Service(Settings(home=home, embedder=kind)) as service:
        collection = service.open_collection(COLLECTIONS[kind], create=True, embedder=kind)
        started = time.perf_counter()
        summary = Pipeline(service.writer(collection)).ingest_paths([source / "corpus.jsonl"])
        if summary.added or summary.updated:
            print(f"  ingested {len(summary.added) + len(summary.updated)} documents with {kind} "
                  f"in {time.perf_counter() - started:.0f} s", flush=True)
        queries = load_queries(source / "queries.jsonl")
        qrels = {q: j for q, j in load_qrels(source / "qrels" / "train.tsv").items() if q in queries}
        out = {}
        for mode in modes:
            runs = {qid: [str(h.metadata.get("_id", h.source.rsplit("#", 1)[-1]))
                          for h in service.best_chunk_per_document(collection, queries[qid], documents=100,
                                                                   mode=mode)]
                    for qid in qrels}
            out[mode] = evaluate(runs, qrels)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="data folder (default RAG_HOME)")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300, help="single questions timed one at a time")
    parser.add_argument("--no-quality", action="store_true", help="skip the SciFact quality runs")
    args = parser.parse_args(argv)

    home = args.home or Settings.from_env().home
    cache = home / "models"
    models = {"local": LocalEmbedder(cache), "local-int8": LocalInt8Embedder(cache)}
    print(f"machine     float32 GEMM {matmul_gflops():.0f} GFLOP/s")
    for kind, model in models.items():
        print(f"{kind:11} {model.model_path.name} ({model.model_path.stat().st_size / 1e6:.0f} MB)")

    long_texts = sentences(args.sentences, 50, seed=0)
    short_texts = sentences(args.sentences, 8, seed=1)
    for model in models.values():
        model.embed(long_texts[:64])  # warm-up
    rates: dict[str, dict[str, float]] = {kind: {"long": 0.0, "short": 0.0} for kind in models}
    for _ in range(3):
        for kind, model in models.items():
            rates[kind]["long"] = max(rates[kind]["long"], best_rate(model, long_texts))
            rates[kind]["short"] = max(rates[kind]["short"], best_rate(model, short_texts))
    questions = [" ".join(t.split()[:10]) + "?" for t in sentences(args.queries, 10, seed=2)]
    latency = {}
    for kind, model in models.items():
        times = []
        for q in questions:
            start = time.perf_counter()
            model.embed_one(q)
            times.append((time.perf_counter() - start) * 1000)
        latency[kind] = float(np.percentile(times, 50))
    f32, q8 = (models[k].embed(long_texts[:500]) for k in ("local", "local-int8"))
    cosines = np.sum(f32 * q8, axis=1)

    print(f"\nthroughput (best of 3, batches of 32)  {'local':>10} {'local-int8':>11} {'ratio':>7}")
    for name, label in (("long", "50-word sentences/s"), ("short", "8-word sentences/s")):
        a, b = rates["local"][name], rates["local-int8"][name]
        print(f"  {label:36} {a:10.1f} {b:11.1f} {b / a:6.2f}×")
    a, b = latency["local"], latency["local-int8"]
    print(f"  {'one query, p50 ms':36} {a:10.2f} {b:11.2f} {a / b:6.2f}× faster")
    print(f"agreement: cosine between the two models' vectors, mean {cosines.mean():.4f}, lowest {cosines.min():.4f}")

    if not args.no_quality:
        print("\nSciFact train split (809 queries), nDCG@10 / Recall@100 / MRR@10:", flush=True)
        for kind in models:
            for mode, m in quality(home, kind, ("dense", "hybrid")).items():
                print(f"  {kind:11} {mode:7} {m['ndcg@10']:.4f} / {m['recall@100']:.4f} / {m['mrr@10']:.4f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

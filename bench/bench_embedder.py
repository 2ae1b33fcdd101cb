"""Throughput of the local embedder (onnxruntime) next to its numpy reference, in one run.

    python -m bench.bench_embedder [--sentences 1000] [--numpy-sentences 200] [--scifact-docs 1000]

1. Sentences of 50 words drawn (seeded) from the 100 commonest English words, embedded in batches
   of 32: sentences/s for ONNX and for the numpy reference (on a subset: it is several times slower).
2. Short sentences (8 words) through ONNX, for comparison with figures quoted for short sentences.
3. SciFact abstracts (`title + " " + text`, truncated at 256 word pieces): word pieces/s.

The machine may be shared: a float32 matrix product is timed first, so figures from different runs
can be compared against what the CPU delivered at the time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.config import Settings  # noqa: E402
from rag.embeddings.local import LocalEmbedder  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The 100 commonest English words by the Oxford English Corpus ranking, as listed in Wikipedia's
# "Most common words in English" (all single word pieces for this model's vocabulary).
TOP_100 = (
    "the be to of and a in that have I it for not on with he as you do at this but his by from "
    "they we say her she or an will my one all would there their what so up out if about who get "
    "which go me when make can like time no just him know take people into year your good some "
    "could them see other than then now look only come its over think also back after use two how "
    "our work first well way even new want because any these give day most us"
).split()
assert len(TOP_100) == 100


def sentences(count: int, words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(TOP_100) for _ in range(words)) for _ in range(count)]


def scifact_dir() -> Path:
    """RAG_SCIFACT_DIR, else ../shared/data/scifact beside the project."""
    override = os.environ.get("RAG_SCIFACT_DIR", "").strip()
    return Path(override) if override else PROJECT_ROOT.parent / "shared" / "data" / "scifact"


def matmul_gflops(seconds: float = 1.0) -> float:
    """float32 GEMM speed right now, shaped like the model's feed-forward layer."""
    a = np.random.default_rng(0).random((1664, 384), dtype=np.float32)
    b = np.random.default_rng(1).random((384, 1536), dtype=np.float32)
    a @ b
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return runs * 2 * a.shape[0] * a.shape[1] * b.shape[1] / (time.perf_counter() - start) / 1e9


def timed(fn, *args, **kwargs):  # noqa: ANN001, ANN201
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=1000, help="50-word sentences for ONNX")
    parser.add_argument("--numpy-sentences", type=int, default=200, help="subset for the numpy reference")
    parser.add_argument("--scifact-docs", type=int, default=1000, help="first N SciFact documents (0: skip)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="built-model folder (default RAG_HOME/models)")
    args = parser.parse_args(argv)

    cache_dir = args.cache_dir or Settings.from_env().model_cache_dir
    embedder, build_s = timed(LocalEmbedder, cache_dir=cache_dir)
    print(f"model       {embedder.model_path} (loaded in {build_s:.1f} s)")
    print(f"machine     {len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"float32 GEMM {matmul_gflops():.0f} GFLOP/s, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")

    long_texts = sentences(args.sentences, 50, seed=0)
    pieces = embedder.count_tokens(long_texts)
    print(f"\n{len(long_texts)} sentences of 50 words from the 100 commonest English words "
          f"(seed 0, {np.mean(pieces):.0f} word pieces each), batches of {embedder.batch_size}")
    embedder.embed(long_texts[:64])  # warm-up: first runs allocate buffers
    onnx_vectors, onnx_s = timed(embedder.embed, long_texts)
    onnx_rate = len(long_texts) / onnx_s
    print(f"  onnxruntime  {onnx_rate:7.1f} sentences/s  ({len(long_texts)} sentences in {onnx_s:.2f} s)")

    subset = long_texts[: args.numpy_sentences]
    embedder.reference_embed(subset[:32])
    numpy_vectors, numpy_s = timed(embedder.reference_embed, subset)
    numpy_rate = len(subset) / numpy_s
    agreement = float(np.min(np.sum(onnx_vectors[: len(subset)] * numpy_vectors, axis=1)))
    print(f"  numpy        {numpy_rate:7.1f} sentences/s  (measured on the first {len(subset)} "
          f"sentences only, in {numpy_s:.2f} s)")
    print(f"  onnx/numpy   {onnx_rate / numpy_rate:7.1f}×, lowest cosine between the two: {agreement:.7f}")

    short_texts = sentences(args.sentences, 8, seed=1)
    embedder.embed(short_texts[:64])
    _, short_s = timed(embedder.embed, short_texts)
    print(f"\n{len(short_texts)} short sentences (8 words, "
          f"{np.mean(embedder.count_tokens(short_texts)):.0f} word pieces each)")
    print(f"  onnxruntime  {len(short_texts) / short_s:7.1f} sentences/s")

    if args.scifact_docs:
        corpus = scifact_dir() / "corpus.jsonl"
        if not corpus.is_file():
            print(f"\nSciFact skipped: {corpus} not found (set RAG_SCIFACT_DIR)")
            return 0
        docs: list[str] = []
        with corpus.open(encoding="utf-8") as f:
            for line in f:
                if len(docs) >= args.scifact_docs:
                    break
                row = json.loads(line)
                text = f"{row.get('title', '')} {row.get('text', '')}".strip()
                if text:
                    docs.append(text)
        counts = embedder.count_tokens(docs)
        read = sum(min(c, embedder.max_input_tokens) for c in counts)
        truncated = sum(c > embedder.max_input_tokens for c in counts)
        _, sf_s = timed(embedder.embed, docs, truncate=True)
        print(f"\nSciFact: first {len(docs)} documents of {corpus} (title + text, truncate=True; "
              f"{truncated} truncated at {embedder.max_input_tokens})")
        print(f"  onnxruntime  {read / sf_s:7.0f} word pieces/s  ({read} word pieces read, "
              f"{len(docs) / sf_s:.1f} documents/s, {sf_s:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

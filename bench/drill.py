"""`python -m bench drill` (`make drill`): the reliability drills, as one repeatable command.

    python -m bench drill                   # every drill, full size; prints the table
    python -m bench drill --small           # the quick version `make test` runs (tests/e2e/test_drills.py)
    python -m bench drill ingest-kill --trials 40

The drills (each a real `rag` process on loopback, with the `bench` embedder so no model is loaded):

- `ingest-kill`: `rag ingest` killed with SIGKILL at random moments, then run again; each time the
  store must be consistent (SQLite integrity and foreign keys; tantivy documents = FAISS vectors =
  chunks) and the resumed collection must search exactly as a clean run's does.
- `serve-kill`: `rag serve` killed with SIGKILL while uploads are queued, then restarted: no
  accepted document may vanish or stay queued, the store stays consistent, and what failed can be
  uploaded again.
- `mixed-load`: 8 clients search while a CLI ingest and HTTP uploads write: every answer 200.
- `slow-upstream`: 60 asks held by an upstream that accepts connections and never answers, while
  `/health` is timed: every probe 200 within 100 ms (p50, p99 and max printed).
- `schemathesis`: generated requests for every documented operation (passthrough left out: it
  relays an upstream) with a bounded number of examples each; 5xx answers and answers that break
  the OpenAPI document are counted.

It prints a table: drill, trials, failures, and a note with the figures. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["DRILLS", "Result", "main", "run_drills"]

PROJECT = Path(__file__).resolve().parents[1]
COLLECTION = "drill"
HEALTH_LIMIT_S = 0.1
SETTLE_LIMIT_S = 120.0
"""How long queued uploads of a killed server may take to end ready or failed after the restart."""


@dataclass(frozen=True)
class Result:
    """One drill's outcome: a row of the table."""

    drill: str
    trials: int
    failures: int
    note: str = ""


@dataclass(frozen=True)
class Size:
    """How big each drill runs (`--small` for the test suite)."""

    kills: int
    documents: int
    serve_kills: int
    searches_per_client: int
    health_probes: int
    examples: int


FULL = Size(kills=20, documents=100, serve_kills=3, searches_per_client=250, health_probes=500, examples=5)
SMALL = Size(kills=3, documents=60, serve_kills=1, searches_per_client=25, health_probes=100, examples=2)


# -- processes and homes --------------------------------------------------------------------------

def rag_env(home: Path, **extra: str) -> dict[str, str]:
    """A `rag` subprocess's environment: this one's without the service's settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update(RAG_HOME=str(home), HF_HUB_OFFLINE="1", DO_NOT_TRACK="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])), **extra)
    return env


def rag(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.rag_cli", *args]


def ingest(home: Path, corpus: Path) -> subprocess.Popen:
    return subprocess.Popen(rag("ingest", str(corpus), "--collection", COLLECTION), cwd=PROJECT, env=rag_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`rag serve` (with the bench embedder) on a free loopback port."""

    def __init__(self, home: Path, log: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(rag("serve", "--port", str(self.port)), cwd=PROJECT,
                                        env=rag_env(home, **env), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"rag serve exited with {self.process.returncode} (see {log})")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rag serve did not answer /health (see {log})")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs."""
        self.process.kill()
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _in_process():  # noqa: ANN202
    """Service and Settings, with the bench embedder known to this process."""
    from bench.lookup_embedder import register
    from rag.config import Settings
    from rag.service import Service

    register({})
    return Service, Settings


def prepare_home(home: Path) -> None:
    """A data folder with the empty collection `drill`, bound to the bench embedder."""
    from bench.lookup_embedder import KIND

    Service, Settings = _in_process()
    service = Service(Settings(home=home))
    try:
        service.create_collection(COLLECTION, embedder=KIND)
    finally:
        service.close()


WORDS = ("amber basalt cedar delta ember fjord garnet harbor indigo juniper kelp lagoon marble nectar onyx pewter "
         "quartz river saffron tundra umber violet willow xenon yarrow zephyr anchor beacon canyon dune estuary "
         "falcon glacier heron island jetty kestrel lantern meadow nebula orchard prairie quarry reef summit "
         "thistle upland valley wharf yonder zenith turbine ledger quorum kiln granary hangar orchestra").split()
QUERIES = ("amber lagoon harbor", "glacier turbine summit", "quorum ledger", "kiln granary meadow",
           "violet reef estuary", "falcon canyon", "nebula orchard prairie", "cedar basalt fjord")


def write_corpus(folder: Path, documents: int, seed: int) -> Path:
    """`documents` text files of a few paragraphs of the vocabulary's words (deterministic by `seed`)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(documents):
        paragraphs = []
        for _ in range(rng.randint(2, 6)):
            sentences = [" ".join(rng.choices(WORDS, k=rng.randint(6, 14))).capitalize() + "."
                         for _ in range(rng.randint(3, 8))]
            paragraphs.append(" ".join(sentences))
        (folder / f"doc-{seed}-{n:04d}.txt").write_text(f"Note {n} of set {seed}\n\n" + "\n\n".join(paragraphs) + "\n")
    return folder


def snapshot(home: Path) -> list[list[tuple[str, int, int, float]]]:
    """What the collection's hybrid search answers for QUERIES: (source, span, score) per hit."""
    Service, Settings = _in_process()
    service = Service(Settings(home=home))
    try:
        return [[(Path(h.source).name, h.start_char, h.end_char, round(h.score, 4))
                 for h in service.search(COLLECTION, q, k=10, mode="hybrid")] for q in QUERIES]
    finally:
        service.close()


def integrity(home: Path) -> list[str]:
    """What is wrong with the data folder: SQLite integrity and foreign keys, and for each
    collection tantivy documents = FAISS vectors = stored chunks. Empty when all is well."""
    problems = []
    with sqlite3.connect(home / "rag.sqlite3") as db:
        checked = db.execute("PRAGMA integrity_check").fetchone()[0]
        if checked != "ok":
            problems.append(f"sqlite integrity: {checked}")
        if db.execute("PRAGMA foreign_key_check").fetchall():
            problems.append("sqlite foreign keys broken")
    Service, Settings = _in_process()
    service = Service(Settings(home=home))
    try:
        for collection in service.list_collections():
            chunks = service.get_collection(collection.name, counts=True).chunks
            # The indexes themselves: a drill checks what no front end may touch.
            dense = service._dense.load(collection)
            lexical = service._lexical.load(collection)
            if not dense == lexical == chunks:
                problems.append(f"{collection.name}: {chunks} chunks, {dense} FAISS vectors, "
                                f"{lexical} tantivy documents")
    finally:
        service.close()
    return problems


# -- the drills -----------------------------------------------------------------------------------

@dataclass
class Workspace:
    """The drills' shared folders: a corpus, and a home with it ingested cleanly (the reference)."""

    root: Path
    size: Size
    rng: random.Random
    log: Callable[[str], None]

    def __post_init__(self) -> None:
        self.corpus = write_corpus(self.root / "corpus", self.size.documents, seed=1)
        self.template = self.root / "template"
        prepare_home(self.template)
        self.clean = self.root / "clean"
        shutil.copytree(self.template, self.clean)
        started = time.perf_counter()
        run = ingest(self.clean, self.corpus)
        _, err = run.communicate()
        self.clean_s = time.perf_counter() - started
        if run.returncode != 0:
            raise RuntimeError(f"the clean ingest failed: {err.decode(errors='replace')[-2000:]}")
        self.reference = snapshot(self.clean)
        problems = integrity(self.clean)
        if problems:
            raise RuntimeError(f"the clean ingest left an inconsistent store: {problems}")

    def home(self, name: str, *, seeded: bool = True) -> Path:
        home = self.root / name
        shutil.copytree(self.clean if seeded else self.template, home)
        return home


def drill_ingest_kill(ws: Workspace) -> Result:
    failures, mid_run = 0, 0
    for trial in range(ws.size.kills):
        # A random moment of the run; should the run end first (the machine got faster), again on
        # a fresh folder, sooner.
        moment = ws.rng.uniform(0.05, 0.9) * ws.clean_s
        for attempt in range(4):
            home = ws.home(f"ingest-kill-{trial}-{attempt}", seeded=False)
            run = ingest(home, ws.corpus)
            try:
                run.wait(timeout=moment)
            except subprocess.TimeoutExpired:
                run.kill()  # SIGKILL
                run.wait()
                mid_run += 1
                break
            if attempt < 3:  # the last one stays: its resume has nothing left to do
                shutil.rmtree(home)
            moment /= 2
        resumed = ingest(home, ws.corpus)
        _, err = resumed.communicate()
        problems = integrity(home)
        if resumed.returncode != 0:
            problems.append(f"the resumed ingest exited {resumed.returncode}: {err.decode(errors='replace')[-500:]}")
        elif snapshot(home) != ws.reference:
            problems.append("searches after the resumed ingest differ from the clean run's")
        if problems:
            failures += 1
            ws.log(f"  ingest-kill trial {trial}: {problems}")
        shutil.rmtree(home)
    return Result("kill -9 rag ingest, resume", ws.size.kills, failures,
                  f"{mid_run} killed mid-run; clean ingest of {ws.size.documents} files {ws.clean_s:.1f} s")


def _documents(http: httpx.Client) -> dict[int, str]:
    rows = http.get(f"/collections/{COLLECTION}/documents", params={"limit": 1000}).json()["data"]
    return {row["id"]: row["status"] for row in rows}


def drill_serve_kill(ws: Workspace) -> Result:
    failures, settle = 0, []
    for trial in range(ws.size.serve_kills):
        home = ws.home(f"serve-kill-{trial}")
        problems: list[str] = []
        server = Server(home, ws.root / f"serve-kill-{trial}.log")
        accepted: list[int] = []
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for batch in range(5):
                docs = [{"text": f"Queued note {trial}-{batch}-{i}. " + " ".join(ws.rng.choices(WORDS, k=400)),
                         "source": f"queued-{trial}-{batch}-{i}.txt"} for i in range(10)]
                response = http.post(f"/collections/{COLLECTION}/documents", json={"documents": docs})
                if response.status_code != 202:
                    problems.append(f"upload answered {response.status_code}")
                accepted += [d["id"] for d in response.json().get("data", [])]
        server.kill()
        restarted_at = time.monotonic()
        server = Server(home, ws.root / f"serve-kill-{trial}.log")
        try:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                while True:
                    statuses = _documents(http)
                    pending = [i for i in accepted if statuses.get(i) in ("queued", "processing")]
                    if not pending or time.monotonic() - restarted_at > SETTLE_LIMIT_S:
                        break
                    time.sleep(0.5)
                settle.append(time.monotonic() - restarted_at)
                missing = [i for i in accepted if i not in statuses]
                if missing:
                    problems.append(f"{len(missing)} accepted documents vanished")
                if pending:
                    problems.append(f"{len(pending)} documents still queued {SETTLE_LIMIT_S:.0f} s after the restart")
                failed = [i for i in accepted if statuses.get(i) == "failed"]
                # What failed can be sent again, and is then ready.
                if failed:
                    again = [{"text": f"Queued note again {i}. " + " ".join(WORDS[:50]), "source": f"again-{i}.txt"}
                             for i in failed[:5]]
                    response = http.post(f"/collections/{COLLECTION}/documents", params={"wait": "true"},
                                         json={"documents": again})
                    if response.status_code != 201:
                        problems.append(f"re-upload after the restart answered {response.status_code}")
        finally:
            server.stop()
        problems += integrity(home)
        if problems:
            failures += 1
            ws.log(f"  serve-kill trial {trial}: {problems}")
        shutil.rmtree(home)
    return Result("kill -9 rag serve, uploads queued", ws.size.serve_kills, failures,
                  f"queued uploads settled {max(settle):.1f} s after the restart (worst)" if settle else "")


def drill_mixed_load(ws: Workspace) -> Result:
    home = ws.home("mixed-load")
    extra = write_corpus(ws.root / "corpus-extra", max(20, ws.size.documents // 4), seed=2)
    server = Server(home, ws.root / "mixed-load.log")
    statuses: list[int] = []
    locked = 0
    lock = threading.Lock()

    def client(n: int) -> None:
        nonlocal locked
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(ws.size.searches_per_client):
                response = http.post(f"/collections/{COLLECTION}/search",
                                     json={"query": QUERIES[(n + i) % len(QUERIES)], "k": 10})
                with lock:
                    statuses.append(response.status_code)
                    locked += "database is locked" in response.text

    def uploads() -> None:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for batch in range(10):
                docs = [{"text": " ".join(ws.rng.choices(WORDS, k=300)), "source": f"load-{batch}-{i}.txt"}
                        for i in range(5)]
                response = http.post(f"/collections/{COLLECTION}/documents", json={"documents": docs},
                                     params={"wait": "true"})
                with lock:
                    statuses.append(response.status_code if response.status_code != 201 else 200)

    try:
        writer = ingest(home, extra)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        threads.append(threading.Thread(target=uploads))
        for t in threads:
            t.start()
        _, err = writer.communicate()
        for t in threads:
            t.join()
    finally:
        server.stop()
    bad = sum(1 for s in statuses if s != 200) + locked + (writer.returncode != 0)
    if writer.returncode != 0:
        ws.log(f"  mixed-load: the CLI ingest exited {writer.returncode}: {err.decode(errors='replace')[-500:]}")
    problems = integrity(home)
    if problems:
        ws.log(f"  mixed-load: {problems}")
    shutil.rmtree(home)
    return Result("8 clients search, CLI ingest + uploads", len(statuses) + 1, bad + len(problems),
                  f"{len(statuses) - 10} searches, 10 uploads, 1 CLI ingest; {locked} 'database is locked'")


class HangingUpstream:
    """A TCP server on loopback that accepts every connection and never answers."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self._sock.close()
        for conn in self.connections:
            conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def drill_slow_upstream(ws: Workspace, asks: int = 60) -> Result:
    home = ws.home("slow-upstream")
    upstream = HangingUpstream()
    server = Server(home, ws.root / "slow-upstream.log", OPENAI_API_KEY="sk-drill", OPENAI_BASE_URL=upstream.url,
                    RAG_OPENAI_TIMEOUT_S="120")
    answers: list[int] = []

    async def ask_all() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=180,
                                     limits=httpx.Limits(max_connections=asks + 10)) as http:
            async def one(i: int) -> None:
                try:
                    answers.append((await http.post(f"/collections/{COLLECTION}/ask",
                                                    json={"question": QUERIES[i % len(QUERIES)]})).status_code)
                except httpx.HTTPError:
                    answers.append(0)

            await asyncio.gather(*(one(i) for i in range(asks)))

    thread = threading.Thread(target=asyncio.run, args=(ask_all(),), daemon=True)
    thread.start()
    timings: list[float] = []
    bad = 0
    try:
        deadline = time.monotonic() + 30
        while len(upstream.connections) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the rest of the asks arrive, and wait or are turned away
        held = len(upstream.connections)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for _ in range(ws.size.health_probes):
                started = time.perf_counter()
                try:
                    ok = http.get("/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                timings.append(elapsed)
                bad += (not ok) or elapsed > HEALTH_LIMIT_S
                time.sleep(0.01)
        refused = answers.count(503)
    finally:
        server.kill()  # the held asks end with the server
        upstream.close()
        thread.join(timeout=30)
        shutil.rmtree(home)
    ms = [t * 1000 for t in timings]
    return Result(f"/health during {asks} asks on a hanging upstream", len(timings), bad,
                  f"/health p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
                  f"max {max(ms):.1f} ms; {held} asks held upstream, {refused} turned away (503)")


def drill_schemathesis(ws: Workspace) -> Result:
    home = ws.home("schemathesis")
    server = Server(home, ws.root / "schemathesis.log")
    report = ws.root / "schemathesis-junit.xml"
    command = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{server.url}/schema/openapi.json",
               "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
               "response_schema_conformance",
               "--max-examples", str(ws.size.examples), "--phases", "examples,coverage,fuzzing",
               "--exclude-tag", "passthrough", "--workers", "1", "--seed", "11", "--no-shrink",
               "--request-timeout", "60", "--report", "junit", "--report-junit-path", str(report)]
    try:
        run = subprocess.run(command, cwd=ws.root, capture_output=True, text=True, timeout=1800)
    finally:
        server.stop()
    if not report.exists():
        raise RuntimeError(f"schemathesis wrote no report:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    cases = ET.parse(report).getroot().iter("testcase")
    operations, server_errors, violations = 0, 0, 0
    for case in cases:
        operations += 1
        for failure in [*case.iter("failure"), *case.iter("error")]:
            text = (failure.get("message") or "") + (failure.text or "")
            ws.log(f"  schemathesis {case.get('name')}: {text.strip()[:400]}")
            if "Server error" in text or " 5" in text[:40]:
                server_errors += 1
            else:
                violations += 1
    integrity_problems = integrity(home)
    shutil.rmtree(home)
    return Result("schemathesis, every documented operation", operations,
                  server_errors + violations + len(integrity_problems),
                  f"operations: {server_errors} with 5xx, {violations} with schema violations; "
                  f"{ws.size.examples} examples an operation and phase")


DRILLS: dict[str, Callable[[Workspace], Result]] = {
    "ingest-kill": drill_ingest_kill,
    "serve-kill": drill_serve_kill,
    "mixed-load": drill_mixed_load,
    "slow-upstream": drill_slow_upstream,
    "schemathesis": drill_schemathesis,
}


def run_drills(names: list[str], size: Size, *, root: Path | None = None, seed: int = 0,
               log: Callable[[str], None] = print) -> list[Result]:
    """Run the drills `names` in a fresh folder (under `root`); their results, in order."""
    root = Path(tempfile.mkdtemp(prefix="rag-drill-", dir=root))
    ws = Workspace(root, size, random.Random(seed), log)
    results = []
    for name in names:
        log(f"== {name} ==")
        results.append(DRILLS[name](ws))
        log(f"   {results[-1].trials} trials, {results[-1].failures} failures; {results[-1].note}")
    shutil.rmtree(root, ignore_errors=True)
    return results


def table(results: list[Result]) -> str:
    rows = [("drill", "trials", "failures", "figures")] + [
        (r.drill, str(r.trials), str(r.failures), r.note) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench drill", description=__doc__.split("\n\n")[0])
    parser.add_argument("drills", nargs="*", help=f"which drills, of {', '.join(DRILLS)} (default: all)")
    parser.add_argument("--small", action="store_true", help="the quick version the test suite runs")
    parser.add_argument("--trials", type=int, help="kill -9 moments for ingest-kill (default 20; small 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = [name for name in args.drills if name not in DRILLS]
    if unknown:
        parser.error(f"unknown drill {unknown[0]!r}; choose among {', '.join(DRILLS)}")
    size = SMALL if args.small else FULL
    if args.trials:
        size = Size(**{**size.__dict__, "kills": args.trials})
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs", flush=True)
    results = run_drills(args.drills or list(DRILLS), size, seed=args.seed,
                         log=lambda line: print(line, flush=True))
    print()
    print(table(results))
    return 1 if any(r.failures for r in results) else 0

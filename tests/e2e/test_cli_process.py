"""The `rag` command line as real processes: killed mid-ingest and run again, and started cold."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError
from support.cli import consistent, run

from rag.config import Settings


def _documents_committed() -> int:
    """Documents the database holds now (0 while it is still being made)."""
    from sqlalchemy import create_engine, text

    settings = Settings.from_env()
    if not settings.on_postgres and not settings.database_path.exists():
        return 0
    engine = create_engine(settings.database, connect_args={} if settings.on_postgres else {"timeout": 1})
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM documents")).scalar() or 0
    except OperationalError:
        return 0  # no table yet, or SQLite busy
    except ProgrammingError:
        return 0  # PostgreSQL: no table yet
    finally:
        engine.dispose()


@pytest.mark.slow
def test_kill_9_midway_then_rerun_completes_without_duplicates(tmp_path: Path, backend):
    corpus = tmp_path / "many.jsonl"
    sentences = ["Rivers carry silt to the delta.", "Glaciers carve valleys over centuries.",
                 "Wind shapes dunes in the desert.", "Waves wear down the cliffs each winter."]
    with open(corpus, "w") as f:
        for i in range(1500):
            f.write(json.dumps({"_id": str(i), "title": f"Note {i}",
                                "text": " ".join(sentences[(i + j) % 4] for j in range(6)) + f" Number {i}."}) + "\n")
    env = {**os.environ, "RAG_HOME": os.environ["RAG_HOME"]}  # with RAG_DATABASE_URL on PostgreSQL
    cmd = [sys.executable, "-m", "ingest.cli", "ingest", str(corpus), "-c", "geo"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        committed = _documents_committed()
        if committed >= 300:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 300 <= committed < 1500
    # The index on disk (if any) is stale; the store is fine. Run again: it finishes the job.
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    docs, chunks = consistent("geo")
    assert docs == 1500 and chunks >= 1500


def test_help_lists_every_command():
    text = run("--help").stdout
    for command in ("ingest", "search", "ask", "similarity", "serve", "collections", "documents", "eval", "reindex"):
        assert command in text
    assert subprocess.run([sys.executable, "-m", "ingest.cli", "--help"], capture_output=True).returncode == 0

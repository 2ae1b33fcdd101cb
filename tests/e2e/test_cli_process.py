"""The `rag` command line as real processes: killed mid-ingest and run again, and started cold."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import consistent, run


@pytest.mark.slow
def test_kill_9_midway_then_rerun_completes_without_duplicates(tmp_path: Path):
    corpus = tmp_path / "many.jsonl"
    sentences = ["Rivers carry silt to the delta.", "Glaciers carve valleys over centuries.",
                 "Wind shapes dunes in the desert.", "Waves wear down the cliffs each winter."]
    with open(corpus, "w") as f:
        for i in range(1500):
            f.write(json.dumps({"_id": str(i), "title": f"Note {i}",
                                "text": " ".join(sentences[(i + j) % 4] for j in range(6)) + f" Number {i}."}) + "\n")
    env = {**os.environ, "RAG_HOME": os.environ["RAG_HOME"]}
    cmd = [sys.executable, "-m", "ingest.cli", "ingest", str(corpus), "-c", "geo"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = Path(os.environ["RAG_HOME"]) / "rag.sqlite3"
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as conn:
                    committed = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            except sqlite3.OperationalError:
                committed = 0
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

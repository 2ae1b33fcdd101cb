"""Ctrl-C during `rag ingest`: a real process, a real SIGINT, a rerun that resumes."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from support.cli import consistent, ingest_json
from support.paths import ROOT
from support.serve import rag_command, subprocess_env

RECORDS = 700


def committed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM documents WHERE status = 'ready'").fetchone()[0]
    except sqlite3.OperationalError:  # not made yet
        return 0


def test_ctrl_c_says_what_was_committed_exits_130_and_a_rerun_resumes(tmp_path: Path, rag_env: Path):
    corpus = tmp_path / "notes.jsonl"
    words = ["Rivers carry silt to the delta.", "Glaciers carve valleys over centuries.",
             "Wind shapes dunes in the desert.", "Waves wear down the cliffs each winter."]
    with open(corpus, "w") as f:
        for i in range(RECORDS):
            f.write(json.dumps({"_id": str(i), "text": " ".join(words[(i + j) % 4] for j in range(8)) + f" {i}."})
                    + "\n")
    # Ctrl-C as a terminal delivers it: a suite started in the background of a non-interactive
    # shell (as `make test &` is) runs with SIGINT ignored, which its children would inherit.
    process = subprocess.Popen(rag_command("ingest", str(corpus), "-c", "geo"), cwd=ROOT, env=subprocess_env(rag_env),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    db = rag_env / "rag.sqlite3"
    deadline = time.monotonic() + 180
    while committed(db) < 100 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the ingest finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    said = re.search(r"interrupted after \d+s: ([\d,]+) documents committed", stderr)
    assert said, stderr
    assert "Run the same command again to resume" in stderr
    kept = int(said.group(1).replace(",", ""))
    assert 100 <= kept < RECORDS and committed(db) == kept

    rerun = ingest_json(str(corpus), "-c", "geo")
    assert (rerun["unchanged"], rerun["added"], rerun["failed"]) == (kept, RECORDS - kept, [])
    assert consistent("geo") == (RECORDS, RECORDS)

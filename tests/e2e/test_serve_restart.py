"""kill -9 of `rag serve` with uploads queued, then a restart: the new server takes the dead
server's queued uploads over at once (the dead server's lock file is free), not a minute later when
its heartbeat would have gone stale, and finishes every one from its stored text: none is lost,
none is left `queued`."""

from __future__ import annotations

import shutil
import signal
import time

import httpx
import pytest
from support.serve import ServeProcess

pytestmark = pytest.mark.slow

NOTES = 60
SETTLED_WITHIN_S = 45.0
"""Under RAG_WORKER_STALE_S (60 s): settled sooner, the takeover came from the free lock."""


def notes_of(url: str) -> dict[str, dict]:
    rows = httpx.get(f"{url}/collections/wren/documents?limit=1000", timeout=30).json()["data"]
    return {d["source"]: d for d in rows if d["source"].startswith("note-")}


def test_queued_uploads_of_a_killed_server_are_taken_over_at_the_next_start(seeded_home, tmp_path) -> None:
    home = tmp_path / "home"
    shutil.copytree(seeded_home, home)
    first = ServeProcess(home, tmp_path / "first.log").wait_ready()
    try:
        docs = [{"source": f"note-{i}", "text": f"Note {i} about the panels on roof {i}. " * 40} for i in range(NOTES)]
        r = httpx.post(f"{first.url}/collections/wren/documents", json={"documents": docs}, timeout=60)
        assert r.status_code == 202, r.text
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        first.stop()
    second = ServeProcess(home, tmp_path / "second.log", RAG_WORKER_STALE_S="60").wait_ready()
    try:
        started = time.monotonic()
        notes = notes_of(second.url)
        while {d["status"] for d in notes.values()} != {"ready"} and time.monotonic() - started < SETTLED_WITHIN_S:
            time.sleep(0.25)
            notes = notes_of(second.url)
        assert len(notes) == NOTES
        assert {d["status"] for d in notes.values()} == {"ready"}, {s: d["status"] for s, d in notes.items()}
        assert httpx.get(f"{second.url}/collections/wren", timeout=30).json()["documents"] == 17 + NOTES
        hits = httpx.post(f"{second.url}/collections/wren/search", timeout=30,
                          json={"query": "Note 59 about the panels on roof 59", "k": 3, "mode": "lexical"}).json()["hits"]
        assert hits[0]["source"] == "note-59"
    finally:
        second.stop()

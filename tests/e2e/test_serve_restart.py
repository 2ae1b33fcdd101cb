"""kill -9 of `rag serve` with uploads queued, then a restart: the dead server's queued uploads are
failed when the new server starts (its lock file is free), not a minute later when its heartbeat
would have gone stale; none is left `queued`."""

from __future__ import annotations

import shutil
import signal

import httpx
import pytest
from support.serve import ServeProcess

pytestmark = pytest.mark.slow


def test_queued_uploads_of_a_killed_server_are_failed_at_the_next_start(seeded_home, tmp_path) -> None:
    home = tmp_path / "home"
    shutil.copytree(seeded_home, home)
    first = ServeProcess(home, tmp_path / "first.log").wait_ready()
    try:
        docs = [{"source": f"note-{i}", "text": f"Note {i} about the panels on roof {i}. " * 40} for i in range(60)]
        r = httpx.post(f"{first.url}/collections/wren/documents", json={"documents": docs}, timeout=60)
        assert r.status_code == 202, r.text
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        first.stop()
    second = ServeProcess(home, tmp_path / "second.log").wait_ready()
    try:
        rows = httpx.get(f"{second.url}/collections/wren/documents?limit=1000", timeout=10).json()["data"]
        notes = {d["source"]: d for d in rows if d["source"].startswith("note-")}
        assert len(notes) == 60
        statuses = {d["status"] for d in notes.values()}
        assert "queued" not in statuses and "processing" not in statuses, statuses
        failed = [d for d in notes.values() if d["status"] == "failed"]
        assert failed and all("upload the document again" in d["error"] for d in failed)
    finally:
        second.stop()

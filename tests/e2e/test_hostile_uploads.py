"""Hostile uploads against a real `rag serve`: the server's own memory stays where it was.

A DOCX of a few hundred kilobytes can hold 150 MB of XML; parsed inside the server it grew the
process by gigabytes it never gave back. Parsing happens in parser processes now, so the server
holds only the upload, and the answer names the limit that stopped it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from support.hostile_files import docx_bomb
from support.serve import ServeProcess

pytestmark = pytest.mark.slow


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(seeded_home, tmp_path_factory):
    home = tmp_path_factory.mktemp("hostile") / "home"
    shutil.copytree(seeded_home, home)
    # The unzipped-size check is lifted so the XML reaches a parser, and the parser's limits are
    # what stops it; the time limit keeps the test short.
    running = ServeProcess(home, tmp_path_factory.mktemp("hostile-log") / "serve.log",
                           RAG_MAX_UNZIPPED_MB="4096", RAG_PARSE_MEMORY_MB="1024", RAG_PARSE_TIMEOUT_S="20")
    try:
        yield running.wait_ready()
    finally:
        running.stop()


def test_a_docx_holding_150_mb_of_xml_leaves_the_server_memory_as_it_was(server) -> None:
    bomb = docx_bomb(150)
    assert len(bomb) < 2_000_000
    upload = lambda name, data: httpx.post(  # noqa: E731
        f"{server.url}/collections/wren/documents", files=[("files", (name, data))], timeout=120)
    # A first, ordinary upload starts the parser processes and settles the server's memory.
    assert upload("bees.md", b"# Bees\n\nBees dance to say where the flowers are.\n").status_code == 202
    before = _rss_mb(server.process.pid)
    r = upload("bomb.docx", bomb)
    after = _rss_mb(server.process.pid)
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "files_rejected" and error["files"][0]["code"] == "parse_limit_exceeded"
    assert "RAG_PARSE_MEMORY_MB" in error["message"] or "RAG_PARSE_TIMEOUT_S" in error["message"]
    assert after - before < 100, f"the server grew from {before:.0f} MB to {after:.0f} MB"
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200


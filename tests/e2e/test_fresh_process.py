"""Offline from the very first import: a new interpreter, with every socket refused and no cache
of its own, tokenizes and partitions at once (no download, no telemetry, no wait on a dropped
connection)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.paths import ROOT


def test_exact_ids_in_a_fresh_process_without_any_network(tmp_path: Path):
    """A new interpreter with every socket refused and no tiktoken cache of its own; building the
    encodings neither sets an environment variable nor writes to tiktoken's download cache."""
    script = (
        "import os, socket\n"
        "def refuse(*a, **k): raise OSError('network disabled for this test')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "before = dict(os.environ)\n"
        "import rag.tokens\n"
        "print(rag.tokens.get_encoding('cl100k_base').encode('hello world'),"
        " rag.tokens.get_encoding('o200k_base').encode('hello world'),"
        " rag.tokens.encoding_for_model('gpt-4o').name, dict(os.environ) == before)\n"
    )
    # No TIKTOKEN_CACHE_DIR inherited; TMPDIR moves tiktoken's default cache where we can see it.
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[15339, 1917] [24912, 2375] o200k_base True"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_first_partition_in_a_fresh_process_is_offline_and_quick(tmp_path: Path) -> None:
    """In a new interpreter with every socket blocked, importing and partitioning md and html
    finishes in seconds: no download, no telemetry, no wait on a dropped connection."""
    script = textwrap.dedent(
        """
        import socket, sys, time

        def refuse(*args, **kwargs):
            raise OSError("network blocked by test")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.getaddrinfo = refuse
        start = time.perf_counter()
        from ingest.loaders import load_bytes
        load_bytes("a.md", b"# Title\\n\\nSome text that is prose.\\n")
        load_bytes("a.html", b"<h1>Title</h1><p>Some prose.</p>")
        print(round(time.perf_counter() - start, 2))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90, env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) < 30

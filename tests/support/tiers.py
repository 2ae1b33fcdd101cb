"""What each tier of the suite may use, enforced rather than only asked for.

unit (tests/unit): no real model, no Python subprocess, no server; runs in seconds. One exception:
the suites that run on both databases (the `backend` fixture) reach the suite's own PostgreSQL,
started once per session on a Unix socket (libpq's connection is not Python's socket).
integration (tests/integration): the real model and real components in-process, servers on
threads (the OpenAI test server, the echo upstream, the app on uvicorn).
e2e (tests/e2e): real `rag` processes (serve, ingest, a fresh interpreter).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from ingest.parse_pool import ParserPool
from rag.embeddings.local import LocalEmbedder

TIERS = ("unit", "integration", "e2e")
"""The folders under tests/ that hold tests, fastest first."""


def tier_rank(path: Path, tests_root: Path) -> int:
    """Where a test file's tier comes in a run: unit first, e2e last, anything else after."""
    parts = path.relative_to(tests_root).parts
    return TIERS.index(parts[0]) if len(parts) > 1 and parts[0] in TIERS else len(TIERS)


class TierViolation(AssertionError):
    """A unit test reached for something the unit tier leaves to the slower tiers."""


def _refuse(what: str, instead: str) -> Callable[..., NoReturn]:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise TierViolation(f"a unit test {what}; {instead}")
    return refuse


def guard_unit_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse, for one test, the local model, starting Python, and any connection (loopback too)."""
    no_model = _refuse("loaded the local model",
                       "embed with the fake embedder (Settings(embedder='fake'), the fake_home fixture) "
                       "or move the test to tests/integration")
    monkeypatch.setattr(LocalEmbedder, "__init__", no_model)
    monkeypatch.setattr(LocalEmbedder, "shared", classmethod(no_model))

    class NoPythonPopen(subprocess.Popen):
        # Libraries may shell out to system tools (ldconfig, say); starting Python is ours.
        def __init__(self, args, *rest, **kwargs):  # noqa: ANN001
            program = args if isinstance(args, str | bytes) else next(iter(args), "")
            if str(program) == sys.executable:
                raise TierViolation("a unit test started a Python process; move it to tests/e2e")
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", NoPythonPopen)
    # Uploads and ingests parse in parser processes; here, in the test's own (unbounded).
    monkeypatch.setattr(ParserPool, "in_process", True)
    # Litestar's TestClient calls the app in-process: nothing in this tier needs a socket.
    no_socket = _refuse("opened a connection", "call the app through Litestar's TestClient, or move "
                        "a test that needs a real server to tests/integration")
    monkeypatch.setattr(socket.socket, "connect", no_socket)
    monkeypatch.setattr(socket.socket, "connect_ex", no_socket)

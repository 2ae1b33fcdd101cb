"""The unit tier's own rules (tests/unit/conftest.py) hold: no model, no Python process, no socket."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from support.paths import ROOT
from support.tiers import TIERS, TierViolation, tier_rank

from rag.config import Settings
from rag.embeddings.local import LocalEmbedder
from rag.service import Service


def test_the_local_model_is_refused(tmp_path) -> None:
    with pytest.raises(TierViolation, match="tests/integration"):
        LocalEmbedder(cache_dir=tmp_path)
    with pytest.raises(TierViolation, match="fake embedder"), Service(Settings(home=tmp_path)) as service:
        service.create_collection("needs-the-model")  # the default embedder is the local model


def test_a_python_process_is_refused_but_other_programs_run() -> None:
    with pytest.raises(TierViolation, match="tests/e2e"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert subprocess.run(["true"], check=True).returncode == 0


def test_a_connection_is_refused_even_on_loopback() -> None:
    with socket.socket() as s, pytest.raises(TierViolation, match="TestClient"):
        s.connect(("127.0.0.1", 9))


def test_every_test_file_is_in_a_tier() -> None:
    """A test file beside the tiers would run in `make test` but never in `make test-fast`."""
    tests = ROOT / "tests"
    outside = [str(p.relative_to(tests)) for p in tests.rglob("test_*.py") if tier_rank(p, tests) == len(TIERS)]
    assert outside == [], f"move these into tests/unit, tests/integration or tests/e2e: {outside}"

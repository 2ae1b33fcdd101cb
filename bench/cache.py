"""Where the benchmarks keep what is expensive to make (embedded SciFact, synthetic collections).

Never inside the repository: RAG_BENCH_CACHE if set, else $XDG_CACHE_HOME/rag-bench, else
~/.cache/rag-bench. Deleting the folder only costs a rebuild.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    override = os.environ.get("RAG_BENCH_CACHE", "").strip()
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rag-bench"

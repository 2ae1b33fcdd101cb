"""A price table written for a test: made-up prices, cited as such."""

from __future__ import annotations

import json
from pathlib import Path

ROW = {"model": "gpt-5.4-mini", "input": 2.0, "output": 8.0, "cached_input": 0.5,
       "source": "tests/support/prices.py (made-up prices for the tests)", "read": "2026-11-26"}
"""One priced model, per million tokens."""


def table_file(folder: Path, *rows: dict) -> Path:
    """A price table holding `rows`, written to `folder`/prices.json."""
    path = folder / "prices.json"
    path.write_text(json.dumps({"currency": "USD", "per_tokens": 1_000_000, "models": list(rows)}))
    return path

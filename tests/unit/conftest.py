"""The unit tier: no real model, no Python subprocess, no server (see support.tiers)."""

from __future__ import annotations

import pytest
from support.tiers import guard_unit_tier


@pytest.fixture(autouse=True)
def unit_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of the slow things is refused, with a message naming the tier the test belongs in."""
    guard_unit_tier(monkeypatch)

"""The reliability drills (bench/drill.py), small: each must end with no failure.

`python -m bench drill` runs them at full size (20 kills, 500 health probes, ...); here each runs
at the size `--small` gives, on one shared workspace (a corpus and its clean ingest), so `make test`
keeps every drill working and every fault it looks for absent.
"""

from __future__ import annotations

import random

import pytest

from bench.drill import DRILLS, SMALL, Workspace, table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("drill"), SMALL, random.Random(0), print)


@pytest.mark.parametrize("name", list(DRILLS))
def test_drill_finds_nothing(workspace, name, capsys):
    result = DRILLS[name](workspace)
    with capsys.disabled():
        print("\n" + table([result]))
    assert result.trials > 0
    assert result.failures == 0, result

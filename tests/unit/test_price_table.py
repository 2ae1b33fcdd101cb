"""The price table kept as data: every row cites where its price was published and when it was
read; a cost counts answer and rewrite tokens at their rates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.prices import ROW, table_file

from rag.config import Settings
from rag.errors import ConfigError
from rag.pricing import DEFAULT_PRICE_TABLE, PriceTable

CHAT_MODEL = ROW["model"]


def test_the_shipped_table_loads_and_cites_every_row() -> None:
    table = PriceTable.load()
    shipped = json.loads(DEFAULT_PRICE_TABLE.read_text())
    assert shipped["currency"] == "USD" and shipped["per_tokens"] == 1_000_000
    assert len(table.prices) == len(shipped["models"])
    for price in table.prices.values():
        assert price.source.strip() and len(price.read) == 10


@pytest.mark.parametrize(("change", "message"), [
    ({"source": ""}, "must cite where it was published"),
    ({"read": None}, "must say when it was read"),
    ({"read": "last week"}, "must say when it was read"),
    ({"input": -1}, "input must be a price"),
    ({"output": "4.50"}, "output must be a price"),
])
def test_a_row_without_its_source_or_a_real_price_is_refused(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PriceTable.load(table_file(tmp_path, {**ROW, **change}))


def test_cost_counts_answer_and_rewrite_tokens_at_their_rates(tmp_path: Path) -> None:
    table = PriceTable.load(table_file(tmp_path, ROW))
    usage = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
             "prompt_tokens_details": {"cached_tokens": 400},
             "rewrite": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}
    expected = ((600 + 100) * 2.0 + 400 * 0.5 + (200 + 10) * 8.0) / 1e6
    assert table.cost(CHAT_MODEL, usage) == pytest.approx(expected, abs=1e-12)
    assert table.cost(f"{CHAT_MODEL}-2026-03-17", usage) == table.cost(CHAT_MODEL, usage)  # a dated snapshot
    assert table.cost("another-model", usage) is None
    assert table.cost(CHAT_MODEL, {"prompt_tokens": 1000}) is None  # no completion count: no guess


def test_settings_name_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_PRICE_TABLE", str(tmp_path / "mine.json"))
    assert Settings.from_env().price_table == tmp_path / "mine.json"
    monkeypatch.delenv("RAG_PRICE_TABLE")
    assert Settings.from_env().price_table is None

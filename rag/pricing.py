"""What an answer cost: token counts priced from a table kept as data, each price citing its source.

The table (`rag/data/prices.json`, or the file RAG_PRICE_TABLE names) lists models with their price
per million input tokens, per million output tokens and, optionally, per million cached input
tokens. A row must name the page the price was published on and the day it was read there: a price
nobody can check is worse than none, so a row without them is refused at start-up. A model with no
row has no cost (`None`, sent as null), never a guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from rag.errors import ConfigError

__all__ = ["DEFAULT_PRICE_TABLE", "Price", "PriceTable"]

DEFAULT_PRICE_TABLE = Path(__file__).resolve().parent / "data" / "prices.json"
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Price:
    model: str
    input: float
    """US dollars per million input (prompt) tokens."""
    output: float
    """US dollars per million output (completion) tokens."""
    source: str
    """Where the price was published."""
    read: str
    """The day it was read there (YYYY-MM-DD)."""
    cached_input: float | None = None
    """US dollars per million cached input tokens, when the provider prices them apart."""


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, Price]

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        """The table in `path` (default: the shipped one); a malformed table is a `ConfigError`."""
        path = path or DEFAULT_PRICE_TABLE
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"price table {path}: {e}") from None
        rows = data.get("models") if isinstance(data, dict) else None
        if not isinstance(rows, list) or data.get("currency", "USD") != "USD" or \
                data.get("per_tokens", 1_000_000) != 1_000_000:
            raise ConfigError(f"price table {path}: expected {{\"currency\": \"USD\", \"per_tokens\": 1000000, "
                              f"\"models\": [...]}}")
        prices = {}
        for n, row in enumerate(rows, start=1):
            price = _row(row, f"price table {path}, row {n}")
            prices[price.model] = price
        return cls(prices)

    def price_for(self, model: str) -> Price | None:
        """The price of `model`, or of the model it is a dated snapshot of (`gpt-x-2026-03-17`)."""
        return self.prices.get(model) or self.prices.get(_DATED.sub("", model))

    def cost(self, model: str, usage: dict[str, Any]) -> float | None:
        """US dollars for the tokens in `usage` (the answer's and its `rewrite`'s), None when the
        model has no price or the usage lacks a count."""
        price = self.price_for(model)
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if price is None or not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        rewrite = usage.get("rewrite") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        cached_rate = price.input if price.cached_input is None else price.cached_input
        dollars = ((prompt - cached + rewrite.get("prompt_tokens", 0)) * price.input + cached * cached_rate
                   + (completion + rewrite.get("completion_tokens", 0)) * price.output) / 1_000_000
        return round(dollars, 10)


def _row(row: Any, where: str) -> Price:
    if not isinstance(row, dict):
        raise ConfigError(f"{where} is not an object")

    def rate(name: str, required: bool = True) -> float | None:
        value = row.get(name)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{where}: {name} must be a price in dollars per million tokens, got {value!r}")
        return float(value)

    model, source, read = row.get("model"), row.get("source"), row.get("read")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"{where}: model must be a model name")
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where} ({model}): a price must cite where it was published (source)")
    try:
        date.fromisoformat(read) if isinstance(read, str) else None
    except ValueError:
        read = None
    if not isinstance(read, str) or not read:
        raise ConfigError(f"{where} ({model}): a price must say when it was read (read: YYYY-MM-DD)")
    input_rate, output_rate = rate("input"), rate("output")
    assert input_rate is not None and output_rate is not None
    return Price(model, input_rate, output_rate, source.strip(), read, rate("cached_input", required=False))

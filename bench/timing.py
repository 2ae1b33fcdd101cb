"""Timing helpers shared by the scale benchmarks: bounded loops, percentiles, the machine's load."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

__all__ = ["Budget", "Latencies", "load", "timed", "timed_concurrently"]

T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """At most `items` calls and about `seconds` of wall time (whichever comes first), but at least
    `minimum` calls: a slow implementation is sampled less, never left to hang the run."""

    items: int
    seconds: float
    minimum: int = 3


@dataclass(frozen=True)
class Latencies:
    ms: list[float]
    wall_s: float

    @property
    def p50(self) -> float:
        return float(np.percentile(self.ms, 50)) if self.ms else float("nan")

    @property
    def p99(self) -> float:
        return float(np.percentile(self.ms, 99)) if self.ms else float("nan")

    @property
    def per_second(self) -> float:
        return len(self.ms) / self.wall_s if self.wall_s else float("nan")

    def summary(self) -> dict:
        return {"n": len(self.ms), "p50_ms": round(self.p50, 2), "p99_ms": round(self.p99, 2),
                "per_s": round(self.per_second, 1)}


def load() -> str:
    """The 1, 5 and 15 minute load averages, to print beside every timing (shared machine)."""
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def timed(fn: Callable[[T], object], items: Sequence[T], budget: Budget) -> Latencies:
    """Milliseconds of fn(item) for items in turn, within the budget."""
    out: list[float] = []
    start = time.perf_counter()
    for item in items[: budget.items]:
        if len(out) >= budget.minimum and time.perf_counter() - start > budget.seconds:
            break
        t = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t) * 1000)
    return Latencies(out, time.perf_counter() - start)


def timed_concurrently(fn: Callable[[T], object], items: Iterable[T], budget: Budget, clients: int) -> Latencies:
    """Milliseconds of fn(item) with `clients` callers at once, within the budget (callers stop
    taking new items once the time is spent)."""
    items = list(items)[: budget.items]
    start = time.perf_counter()

    def one(item: T) -> float | None:
        if time.perf_counter() - start > budget.seconds:
            return None
        t = time.perf_counter()
        fn(item)
        return (time.perf_counter() - t) * 1000

    with ThreadPoolExecutor(max_workers=clients) as pool:
        got = [ms for ms in pool.map(one, items) if ms is not None]
    return Latencies(got, time.perf_counter() - start)

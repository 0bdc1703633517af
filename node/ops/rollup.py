"""Minute rollups of the node's per-second metrics, for the analytics store's `metrics` table
(trends over days, and the history the predictive scaling policy learns from)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .sampler import Sample

SECONDS_PER_MINUTE = 60


def measures(sample: Sample) -> dict[tuple[str, str], float]:
    """The numbers of a sample worth keeping per minute: (metric, market or "") -> value."""
    values: dict[tuple[str, str], float | None] = {
        ("orders_per_s", ""): sample["orders_per_s"],
        ("trades_per_s", ""): sample["trades_per_s"],
        ("ack_p99_ms", ""): sample["ack_ms"]["p99"],
        ("commit_p99_ms", ""): sample["commit_ms"]["p99"],
        ("matching_busy", ""): sample["matching_busy"],
        ("backlog", ""): sample["backlog"],
        ("analytics_lag_s", ""): sample["analytics_lag_s"],
        ("lmdb_used_bytes", ""): sample["lmdb_used_bytes"],
        ("duckdb_bytes", ""): sample["duckdb_bytes"],
        ("process_cpu_percent", ""): sample["process"]["cpu_percent"],
        ("rss_bytes", ""): sample["process"]["rss_bytes"],
        ("memory_percent", ""): sample["host"]["memory_percent"],
        ("disk_free_bytes", ""): sample["host"]["disk_free_bytes"],
    }
    for market, figures in sample["markets"].items():
        values["orders_per_s", market] = figures["orders_per_s"]
        values["trades_per_s", market] = figures["trades_per_s"]
        values["volume_per_s", market] = float(figures["volume_per_s"])
    return {key: float(value) for key, value in values.items() if value is not None}


class MinuteRollup:
    """Collects samples; at each new minute, posts the one before as rows of (minute start in
    epoch seconds, metric, market, mean, max, samples)."""

    def __init__(self, post: Callable[..., None]) -> None:
        self.post = post
        self.minute: int | None = None
        self.sums: dict[tuple[str, str], list[float]] = {}

    def add(self, sample: Sample) -> None:
        minute = int(sample["time"]) // SECONDS_PER_MINUTE * SECONDS_PER_MINUTE
        if self.minute is not None and minute != self.minute:
            self.post("rollup", rows=self.rows())
            self.sums = {}
        self.minute = minute
        for key, value in measures(sample).items():
            figures = self.sums.setdefault(key, [0.0, value, 0])
            figures[0] += value
            figures[1] = max(figures[1], value)
            figures[2] += 1

    def rows(self) -> list[list[Any]]:
        return [
            [self.minute, metric, market, total / count, largest, count]
            for (metric, market), (total, largest, count) in sorted(self.sums.items())
        ]

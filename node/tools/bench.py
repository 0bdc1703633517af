"""The engine benchmark: a seeded realistic flow through the engine in memory, then durably.

The commands are generated before the clock starts and arrive already decoded, as they reach the
engine in the node's hot loop; validation (decimal text to ticks and lots), matching and event
creation are all timed. The durable run adds what the node adds per batch: journal encoding, the
state-hash update and one synced LMDB write transaction.
"""

from __future__ import annotations

import platform
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from ..core.engine import Engine
from ..core.markets import MarketSpec
from ..home.config import StoreConfig, default_markets
from ..store.durable import DurableEngine
from ..store.lmdb_store import Store
from .flow import generate_flow


def run_engine_bench(
    ops: int,
    seed: int,
    batch_size: int = StoreConfig().batch_size,
    markets: list[MarketSpec] | None = None,
    sync: str = "full",
    scratch_parent: Path | None = None,
) -> dict:
    """Run the flow in memory, then durably in a scratch store under `scratch_parent` (the
    system's temporary folder by default: pass a home's folder to measure that disk)."""
    markets = markets or default_markets()
    commands = list(generate_flow(ops, seed=seed, markets=markets))
    batches = [commands[start : start + batch_size] for start in range(0, ops, batch_size)]

    engine = Engine(markets)
    out: list = []
    started = time.perf_counter()
    for batch in batches:
        engine.process_batch(batch, out)
        engine.take_changes()
        out.clear()
    memory_seconds = time.perf_counter() - started
    resting = sum(len(book.orders) for book in engine.books.values())
    kinds = _event_kinds(markets, batches)

    with tempfile.TemporaryDirectory(prefix="mnode-bench-", dir=scratch_parent) as folder:
        store = Store(Path(folder) / "data", map_size=64 << 20, sync=sync)
        try:
            durable = DurableEngine(store)
            durable.configure(markets)
            commit_seconds = []
            started = time.perf_counter()
            for batch in batches:
                batch_started = time.perf_counter()
                durable.submit(batch)
                commit_seconds.append(time.perf_counter() - batch_started)
            durable_seconds = time.perf_counter() - started
        finally:
            store.close()
    commit_seconds.sort()
    return {
        "ops": ops,
        "seed": seed,
        "batch_size": batch_size,
        "sync": sync,
        "markets": [market.symbol for market in markets],
        "ops_per_s": round(ops / memory_seconds),
        "durable_ops_per_s": round(ops / durable_seconds),
        "batch_ms_p50": round(_percentile(commit_seconds, 0.50) * 1000, 3),
        "batch_ms_p99": round(_percentile(commit_seconds, 0.99) * 1000, 3),
        "events": kinds.total(),
        "trades": kinds["trade"],
        "rejected": kinds["rejected"],
        "resting_orders_at_end": resting,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _event_kinds(markets: list[MarketSpec], batches: list[list]) -> Counter[str]:
    """What the flow produced, counted in an untimed run of its own."""
    engine = Engine(markets)
    kinds: Counter[str] = Counter()
    out: list = []
    for batch in batches:
        engine.process_batch(batch, out)
        kinds.update(type(event).__struct_config__.tag for event in out)
        out.clear()
    return kinds


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def run_analytics_bench(ops: int, seed: int, batch_size: int = StoreConfig().batch_size) -> dict:
    """Journal a flow durably, then time the follower turning it into DuckDB rows."""
    from ..analytics.duckdb_store import AnalyticsStore
    from ..analytics.follower import JournalFollower

    markets = default_markets()
    commands = list(generate_flow(ops, seed=seed, markets=markets))
    with tempfile.TemporaryDirectory(prefix="mnode-bench-") as folder:
        store = Store(Path(folder) / "data", map_size=64 << 20, sync="none")
        try:
            durable = DurableEngine(store)
            durable.configure(markets)
            for start in range(0, ops, batch_size):
                durable.submit(commands[start : start + batch_size])
            analytics = AnalyticsStore(Path(folder) / "analytics.duckdb")
            try:
                started = time.perf_counter()
                events = JournalFollower(store, analytics).sync()
                seconds = time.perf_counter() - started
            finally:
                analytics.close()
        finally:
            store.close()
    return {
        "ops": ops,
        "seed": seed,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds),
        "commands_per_s": round(ops / seconds),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }

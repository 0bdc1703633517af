"""The engine benchmark: a seeded realistic flow through the engine in memory, then durably.

The commands are generated before the clock starts and arrive already decoded, as they reach the
engine in the node's hot loop; validation (decimal text to ticks and lots), matching and event
creation are all timed. The durable run adds what the node adds per batch: journal encoding, the
state-hash update and one synced LMDB write transaction. Each core asked for runs the same flow,
the cores taking turns round after round so that other work on the machine falls on both alike.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ..core.compiled import core_forced
from ..core.engine import Engine, PythonEngine
from ..core.markets import MarketSpec
from ..home.config import StoreConfig, default_markets
from ..store.durable import DurableEngine
from ..store.lmdb_store import Store
from .flow import generate_flow

BOTH_CORES = ("compiled", "python")
"""What `--core both` runs: the compiled core first, as the node would choose it."""


def run_engine_bench(
    ops: int,
    seed: int,
    batch_size: int = StoreConfig().batch_size,
    markets: list[MarketSpec] | None = None,
    sync: str = "full",
    scratch_parent: Path | None = None,
    cores: Sequence[str | None] = (None,),
    rounds: int = 1,
) -> dict:
    """Run the flow on each of `cores` (None: the one the node would choose; "auto", "compiled",
    "python") in memory, then durably in a scratch store under `scratch_parent` (the system's
    temporary folder by default: pass a home's folder to measure that disk), `rounds` times in
    turn. The top-level figures are the first core's (medians over the rounds); `cores` has
    each core's, `runs` every run."""
    markets = markets or default_markets()
    commands = list(generate_flow(ops, seed=seed, markets=markets))
    batches = [commands[start : start + batch_size] for start in range(0, ops, batch_size)]
    kinds = _event_kinds(markets, batches)
    runs = []
    for _ in range(rounds):
        for setting in cores:
            with core_forced(setting) as choice:
                run = {"core": choice.core, "core_reason": choice.reason}
                run.update(_memory_run(markets, batches))
                run.update(_durable_run(markets, batches, sync, scratch_parent))
            runs.append(run)
    by_core = {run["core"]: _medians([r for r in runs if r["core"] == run["core"]]) for run in runs}
    first = next(iter(by_core.values()))
    report = {
        "ops": ops,
        "seed": seed,
        "batch_size": batch_size,
        "sync": sync,
        "markets": [market.symbol for market in markets],
        **first,
        "events": kinds.total(),
        "trades": kinds["trade"],
        "rejected": kinds["rejected"],
        "cores": by_core,
        "runs": runs,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if {"compiled", "python"} <= by_core.keys():
        compiled, python = by_core["compiled"], by_core["python"]
        report["speedup"] = {
            "in_memory": round(compiled["ops_per_s"] / python["ops_per_s"], 2),
            "durable": round(compiled["durable_ops_per_s"] / python["durable_ops_per_s"], 2),
        }
    return report


def _memory_run(markets: list[MarketSpec], batches: list[list]) -> dict:
    """The in-memory rate by the clock, and by the process's CPU time: on a shared machine the
    second leaves out the time other work held the cores."""
    engine = Engine(markets)
    out: list = []
    ops = sum(len(batch) for batch in batches)
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch in batches:
        engine.process_batch(batch, out)
        engine.take_changes()
        out.clear()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    resting = sum(len(book.orders) for book in engine.books.values())
    return {
        "ops_per_s": round(ops / seconds),
        "ops_per_cpu_s": round(ops / cpu_seconds),
        "resting_orders_at_end": resting,
    }


def _durable_run(
    markets: list[MarketSpec], batches: list[list], sync: str, scratch_parent: Path | None
) -> dict:
    ops = sum(len(batch) for batch in batches)
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
            seconds = time.perf_counter() - started
        finally:
            store.close()
    commit_seconds.sort()
    return {
        "durable_ops_per_s": round(ops / seconds),
        "batch_ms_p50": round(_percentile(commit_seconds, 0.50) * 1000, 3),
        "batch_ms_p99": round(_percentile(commit_seconds, 0.99) * 1000, 3),
    }


def _medians(runs: list[dict]) -> dict:
    """One core's figures over its rounds: the median of each, its reason and resting count."""
    figures = ("ops_per_s", "ops_per_cpu_s", "durable_ops_per_s", "batch_ms_p50", "batch_ms_p99")
    medians = {key: statistics.median(run[key] for run in runs) for key in figures}
    return {
        "core": runs[0]["core"],
        "core_reason": runs[0]["core_reason"],
        **{
            key: round(value, 3) if key.startswith("batch") else round(value)
            for key, value in medians.items()
        },
        "resting_orders_at_end": runs[0]["resting_orders_at_end"],
    }


def _event_kinds(markets: list[MarketSpec], batches: list[list]) -> Counter[str]:
    """What the flow produced, counted in an untimed run of the reference engine."""
    engine = PythonEngine(markets)
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

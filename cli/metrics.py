"""`mnode metrics`: the running node's measurements of itself."""

from __future__ import annotations

from typing import Any

import typer

from .common import HomeOption, JsonOption, print_json, require_home
from .node import admin_call


def metrics_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """The node's latest per-second sample (rates, latency, resources) and its counters; with
    --json, also the last hour's samples."""
    node_home = require_home(home)
    metrics = admin_call(node_home, "metrics")
    if json:
        print_json(metrics)
        return
    lines = [
        f"since the start: {metrics['commands']:,} commands in {metrics['batches']:,} batches, "
        f"{sum(metrics['trades'].values()):,} trades, "
        f"{sum(metrics['rejects'].values()):,} rejects"
    ]
    latest = metrics.get("latest")
    if latest is None:
        lines.append(f"sampling: {metrics.get('sampling', 'no sample yet')}")
    else:
        lines += _sample_lines(latest)
    typer.echo("\n".join(lines))


def _sample_lines(sample: dict[str, Any]) -> list[str]:
    ack, process, host = sample["ack_ms"], sample["process"], sample["host"]
    lag = sample["analytics_lag_s"]
    lines = [
        f"last second: {sample['orders_per_s']:,.0f} orders/s, "
        f"{sample['trades_per_s']:,.0f} trades/s; ack p50 {ack['p50']} ms, p99 {ack['p99']} ms",
        f"  matching thread busy {sample['matching_busy']:.0%}, batches cut at their budget "
        f"{sample['backlog']:.0%}, analytics lag {'off' if lag is None else f'{lag} s'}",
        f"  LMDB {_bytes(sample['lmdb_used_bytes'])} of {_bytes(sample['lmdb_map_bytes'])} map, "
        f"DuckDB {_bytes(sample['duckdb_bytes'])}",
        f"  process CPU {process['cpu_percent']}% (matching "
        f"{process['threads_cpu_percent'].get('matching', 0)}%), "
        f"RSS {_bytes(process['rss_bytes'])}, {process['open_files']} open files",
        f"  host CPU {' '.join(f'{c:.0f}%' for c in host['cpu_percent'])}, memory "
        f"{host['memory_percent']}% used, disk {_bytes(host['disk_free_bytes'])} free",
    ]
    for market, figures in sample["markets"].items():
        lines.append(
            f"  {market:<12} {figures['orders_per_s']:>10,.0f} orders/s "
            f"{figures['trades_per_s']:>8,.0f} trades/s  volume {figures['volume_per_s']}/s"
        )
    return lines


def _bytes(count: float | None) -> str:
    if count is None:
        return "n/a"
    if count < 1024:
        return f"{count:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        count /= 1024
        if count < 1024 or unit == "TiB":
            break
    return f"{count:.1f} {unit}"

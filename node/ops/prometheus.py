"""The node's metrics as a Prometheus text endpoint (`[metrics] prometheus = "HOST:PORT"`),
since operators already run Prometheus and Grafana.

A custom collector reads, at each scrape, the loop's counters and the sampler's latest sample;
nothing is computed on the matching thread for it. Latency histograms are exported with fixed
bucket boundaries, read from the log-bucketed histograms since the start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .metrics import Histogram, bucket_upper
from .sampler import MetricsSampler

LATENCY_BOUNDS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


def seconds_buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """Cumulative counts at LATENCY_BOUNDS_S (and +Inf) of a histogram of microseconds."""
    buckets = []
    for bound in LATENCY_BOUNDS_S:
        limit = bound * 1_000_000
        below = sum(c for index, c in enumerate(histogram.counts) if bucket_upper(index) <= limit)
        buckets.append((repr(bound), below))
    buckets.append(("+Inf", histogram.count))
    return buckets


class NodeCollector:
    """Yields the node's metric families at each scrape."""

    def __init__(self, sampler: MetricsSampler) -> None:
        self.sampler = sampler

    def collect(self) -> Iterator[Metric]:
        loop = self.sampler.loop
        yield _counter("marketnode_commands", "Commands received", loop.commands)
        yield _counter("marketnode_messages", "Peer messages served", loop.messages)
        yield _counter("marketnode_batches", "Batches committed", loop.batches)
        trades = CounterMetricFamily("marketnode_trades", "Trades by market", labels=["market"])
        for market, count in sorted(loop.trades.items()):
            trades.add_metric([market], count)
        yield trades
        rejects = CounterMetricFamily("marketnode_rejects", "Rejects by reason", labels=["reason"])
        for reason, count in sorted(loop.rejects.items()):
            rejects.add_metric([reason], count)
        yield rejects
        for key, name, text in (
            ("ack", "marketnode_ack_latency_seconds", "Receipt to reply, after the commit"),
            ("commit", "marketnode_commit_seconds", "One batch's LMDB write transaction"),
        ):
            histogram = self.sampler.totals[key]
            yield HistogramMetricFamily(
                name, text, buckets=seconds_buckets(histogram), sum_value=histogram.total / 1e6
            )
        latest = self.sampler.history[-1] if self.sampler.history else None
        if latest is not None:
            yield from _gauges(latest)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=value)


def _gauges(sample: dict[str, Any]) -> Iterator[Metric]:
    plain = {
        "marketnode_orders_per_second": ("Commands per second", sample["orders_per_s"]),
        "marketnode_matching_busy_ratio": (
            "Share of time the matching thread serves batches",
            sample["matching_busy"],
        ),
        "marketnode_backlog_ratio": ("Share of batches cut at their budget", sample["backlog"]),
        "marketnode_analytics_lag_seconds": ("Analytics store behind", sample["analytics_lag_s"]),
        "marketnode_lmdb_used_bytes": ("LMDB pages in use", sample["lmdb_used_bytes"]),
        "marketnode_lmdb_map_bytes": ("LMDB map size", sample["lmdb_map_bytes"]),
        "marketnode_duckdb_bytes": ("Analytics file size", sample["duckdb_bytes"]),
        "marketnode_process_cpu_percent": ("Node process CPU", sample["process"]["cpu_percent"]),
        "marketnode_process_rss_bytes": ("Node process RSS", sample["process"]["rss_bytes"]),
        "marketnode_disk_free_bytes": ("Free disk of the home", sample["host"]["disk_free_bytes"]),
    }
    for name, (text, value) in plain.items():
        if value is not None:
            yield GaugeMetricFamily(name, text, value=value)
    per_market = GaugeMetricFamily(
        "marketnode_market_trades_per_second", "Trades per second by market", labels=["market"]
    )
    for market, figures in sample["markets"].items():
        per_market.add_metric([market], figures["trades_per_s"])
    yield per_market


def serve_prometheus(address: str, sampler: MetricsSampler) -> Any:
    """Start the endpoint on HOST:PORT in a thread of its own; returns the HTTP server."""
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry()
    registry.register(NodeCollector(sampler))
    server, _thread = start_http_server(int(port), addr=host, registry=registry)
    return server

"""The node measuring itself, off the matching thread: the metrics sampler (a sample a second),
its minute rollups for the analytics store, the scaling advice computed from the samples, and
the optional Prometheus endpoint. Started after the sockets, stopped before them; what the
sampler's thread has to send goes through the loop's inbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import zmq

from ..core.book import OrderBook
from ..home.config import NodeConfig
from ..home.layout import Home
from ..ops.metrics import LoopMetrics
from ..ops.prometheus import serve_prometheus
from ..ops.rollup import MinuteRollup
from ..ops.sampler import MetricsSampler
from ..ops.scaling import (
    HISTORY_QUERY,
    Scaler,
    ScalingListener,
    minutes_from_rollups,
    policy_settings,
)
from .analytics_link import AnalyticsLink
from .errors import NodeError
from .marketdata import MarketDataPublisher
from .sockets import INBOX

SAMPLER_STOP_S = 5.0

log = logging.getLogger("marketnode.node")


@dataclass
class Instruments:
    """What `[metrics]` and `[scaling]` turned on (None: off)."""

    sampler: MetricsSampler | None = None
    scaler: Scaler | None = None
    scaling_listener: ScalingListener | None = None
    prometheus: Any = None
    """The Prometheus HTTP server."""

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            if self.sampler.is_alive():
                self.sampler.join(timeout=SAMPLER_STOP_S)
        if self.prometheus is not None:
            self.prometheus.shutdown()
            self.prometheus.server_close()
            self.prometheus = None


def start_instruments(
    home: Home,
    config: NodeConfig,
    metrics: LoopMetrics,
    *,
    books: Callable[[], dict[str, OrderBook]],
    lmdb_env: Any,
    analytics: AnalyticsLink,
    matching_thread: Callable[[], int | None],
    context: zmq.Context,
    endpoints: dict[str, str],
    waiting: Callable[[], int | None] | None = None,
) -> Instruments:
    """Start the sampler and what listens to it; the Prometheus address goes into
    `endpoints`; `waiting` counts the commands received and not yet read (the offered load's
    part the node has not served). Raises NodeError (nothing left running) if Prometheus cannot
    serve."""
    instruments = Instruments()
    if not config.metrics.enabled:
        return instruments
    sampler = instruments.sampler = MetricsSampler(
        metrics,
        books=books,
        home=home.path,
        lmdb_env=lmdb_env,
        duckdb_file=home.path / config.analytics.file if config.analytics.enabled else None,
        analytics_lag=lambda: analytics.lag,
        analytics_pid=lambda: analytics.pid,
        matching_thread=matching_thread,
        waiting=waiting,
        interval_s=config.metrics.interval_ms / 1000,
        inbox=(context, INBOX),
    )
    if config.analytics.enabled:
        sampler.listeners.append(MinuteRollup(sampler.post).add)
    if config.scaling.enabled:
        settings = policy_settings(config.scaling, str(home.config_path))
        scaler = instruments.scaler = Scaler(settings, config.scaling.stabilization_s)
        listener = instruments.scaling_listener = ScalingListener(
            scaler, sampler.history, sampler.post, config.scaling.interval_s
        )
        sampler.listeners.append(listener)

        def seed(rows: list) -> None:
            minutes = minutes_from_rollups(rows)
            listener.seed(minutes)
            log.info("scaling history: %d minutes from earlier runs", len(minutes))

        analytics.ask_history(HISTORY_QUERY, seed)
    if config.metrics.prometheus:
        try:
            instruments.prometheus = serve_prometheus(config.metrics.prometheus, sampler)
        except OSError as error:
            detail = f"cannot serve Prometheus on {config.metrics.prometheus}: {error.strerror}"
            raise NodeError(detail) from None
        host, port = instruments.prometheus.server_address[:2]
        endpoints["prometheus"] = f"http://{host}:{port}/metrics"
    sampler.start()
    return instruments


def relay_inbox(
    inbox: zmq.Socket, market_data: MarketDataPublisher, analytics: AnalyticsLink
) -> None:
    """Send what the sampler's thread handed the loop (only the loop may use the sockets):
    market-data messages (scaling advice) and minute rollups for the analytics store."""
    while True:
        try:
            message = msgspec.msgpack.decode(inbox.recv(zmq.NOBLOCK), type=dict)
        except zmq.Again:
            return
        if message["kind"] == "publish":
            market_data.send(message["topic"], message["payload"])
        elif message["kind"] == "rollup":
            analytics.store_rollup(message["rows"])

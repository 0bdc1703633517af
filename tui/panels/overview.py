"""Overview: how fast the node goes (orders/s and trades/s over time), acknowledgement
latency, rejects by reason, analytics lag, the node's identity, endpoints and peers."""

from __future__ import annotations

import statistics

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from ..chart import Chart, Plot
from ..messages import MetricsFetched, PeersFetched, StatusFetched
from .base import Panel, fill_table, selected_key


class OverviewPanel(Panel):
    def compose(self) -> ComposeResult:
        with Horizontal(classes="charts"):
            yield Chart(Plot("orders/s"), id="orders-chart")
            yield Chart(Plot("trades/s"), style="cyan", id="trades-chart")
        yield Static("waiting for the node…", id="overview-text", classes="label")
        yield Static("", id="identity-text", classes="label")
        yield DataTable(id="peers-table", cursor_type="row")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.peers: dict[str, dict] = {}

    def selected_peer(self) -> dict | None:
        """The peer under the cursor, as the node last described it."""
        return self.peers.get(selected_key(self.query_one("#peers-table", DataTable)) or "")

    def on_mount(self) -> None:
        self.query_one("#peers-table", DataTable).add_columns(
            "peer", "acts for", "connected", "disabled"
        )

    def show_metrics(self, fetched: MetricsFetched) -> None:
        data = fetched.metrics
        history = data["history"]
        column_s = _sampling_interval(history)
        self.query_one("#orders-chart", Chart).show(
            Plot("orders/s", tuple(s["orders_per_s"] for s in history), column_s=column_s)
        )
        self.query_one("#trades-chart", Chart).show(
            Plot("trades/s", tuple(s["trades_per_s"] for s in history), column_s=column_s)
        )
        latest = data.get("latest")
        if latest is None:
            self.query_one("#overview-text", Static).update(Text(data["sampling"]))
            return
        ack, lag = latest["ack_ms"], latest["analytics_lag_s"]
        rejects = ", ".join(f"{k} {v:.0f}/s" for k, v in latest["rejects_per_s"].items() if v)
        self.query_one("#overview-text", Static).update(
            Text(
                f"ack latency p50 {ack['p50']} ms, p99 {ack['p99']} ms; matching "
                f"{latest['matching_busy']:.0%} busy, {latest['backlog']:.0%} of its batches full\n"
                f"rejects: {rejects or 'none'}\n"
                f"analytics lag: {'off' if lag is None else f'{lag} s'}\n"
                f"since the start: {data['commands']:,} commands, "
                f"{sum(data['trades'].values()):,} trades"
            )
        )

    def show_status(self, fetched: StatusFetched) -> None:
        status = fetched.status
        endpoints = status["endpoints"]
        self.query_one("#identity-text", Static).update(
            Text(
                f"{status['name']} (pid {status['pid']}, marketnode {status['version']}), up "
                f"{_duration(status['uptime_s'])}, seq {status['seq']:,}, state hash "
                f"{status['state_hash']}\norders {endpoints['orders']}  market data "
                f"{endpoints['market_data']}  admin {endpoints['admin']}"
            )
        )

    def show_peers(self, fetched: PeersFetched) -> None:
        peers = fetched.peers
        self.peers = {peer["name"]: peer for peer in peers}
        fill_table(
            self.query_one("#peers-table", DataTable),
            [
                (peer["name"], (
                    peer["name"],
                    "any owner (relayer)" if peer["relayer"] else ", ".join(peer["owners"]),
                    "yes" if peer["seen"] else "", "yes" if peer["disabled"] else "",
                ))
                for peer in peers
            ],
        )  # fmt: skip


def _sampling_interval(history: list[dict]) -> float:
    """The sampler's period (a column of the charts), from the intervals it measured: their
    median to two figures, so a late second does not read as a new period."""
    if not history:
        return 1.0
    return float(f"{statistics.median(s['interval_s'] for s in history):.2g}")


def _duration(seconds: float) -> str:
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}h{minute:02d}m{second:02d}s" if hours else f"{minute}m{second:02d}s"

"""The operator dashboard: a running node's throughput, books, integrity alerts, scaling advice
and resources, live.

Each data source has its own thread worker that asks the node's admin socket (a connection of
its own: ZeroMQ sockets belong to one thread), posts what it got as a message, and re-arms
itself with `set_timer`; message handlers only render. When the node does not answer, the
dashboard says so, keeps the last data greyed, and goes on asking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Sparkline, Static, TabbedContent, TabPane

from marketnode.node.client import AdminClient, ClientError, NodeAddress
from marketnode.node.keys import KeyPair

log = logging.getLogger(__name__)
PANELS = (
    ("1", "overview", "Overview"),
    ("2", "markets", "Markets"),
    ("3", "book", "Book"),
    ("4", "integrity", "Integrity"),
    ("5", "scaling", "Scaling"),
    ("6", "resources", "Resources"),
)
REFRESH_STEPS_S = (0.25, 0.5, 1.0, 2.0, 5.0)
SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "dim"}


@dataclass
class Source:
    """One admin request the dashboard repeats, and how its answer is shown."""

    name: str
    cmd: str
    arguments: dict[str, Any]


class Fetched(Message):
    def __init__(self, source: str, data: Any) -> None:
        super().__init__()
        self.source = source
        self.data = data


class Unreachable(Message):
    def __init__(self, source: str, why: str) -> None:
        super().__init__()
        self.source = source
        self.why = why


class PanelCommands(Provider):
    """The command palette: the same table as the key bindings."""

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        app = self.app
        for binding in app.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            score = matcher.match(binding.description)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(binding.description),
                    lambda action=binding.action: app.run_action(action),
                    help=f"key {binding.key}",
                )


class Dashboard(App):
    """`mnode dashboard`: read-only; it asks the node, never changes it."""

    TITLE = "marketnode"
    CSS = """
    .stale { color: $text-disabled; }
    #banner { height: 1; background: $error; color: $text; display: none; }
    #banner.shown { display: block; }
    Sparkline { height: 4; margin: 0 1; }
    .label { margin: 0 1; }
    """
    COMMANDS = App.COMMANDS | {PanelCommands}
    BINDINGS: ClassVar[list[Binding]] = [
        *(Binding(key, f"show('{panel}')", title) for key, panel, title in PANELS),
        Binding("p", "pause", "Pause / resume"),
        Binding("plus,=", "faster", "Refresh faster"),
        Binding("minus", "slower", "Refresh slower"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        locate: Callable[[], NodeAddress],
        key: KeyPair | None,
        refresh_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.locate = locate
        """Where the node is: asked again at every fetch, so a node restarted on other ports
        (or on a home whose node.json changed) is found again."""
        self.key = key
        self.refresh_s = refresh_s
        self.paused = False
        self.connected: bool | None = None
        self.selected_market: str | None = None
        self.sources = {
            "metrics": Source("metrics", "metrics", {}),
            "status": Source("status", "status", {}),
            "markets": Source("markets", "markets", {}),
            "scale": Source("scale", "scale", {}),
            "alerts": Source("alerts", "sql", {"query": (
                "SELECT id, strftime(time, '%H:%M:%S') AS time, severity, detector, market, "
                "wallets, len(trades) AS trades, evidence FROM alerts "
                "ORDER BY time DESC, id LIMIT 200")}),
        }  # fmt: skip
        self.history: list[dict] = []
        self._identity = ""
        self._latest_markets: dict = {}
        self._alerts: dict = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("disconnected, retrying", id="banner")
        with TabbedContent(initial="overview"):
            with TabPane("1 Overview", id="overview"):
                yield Static("orders/s", classes="label")
                yield Sparkline([], id="orders-spark")
                yield Static("trades/s", classes="label")
                yield Sparkline([], id="trades-spark")
                yield Static("", id="overview-text", classes="label")
            with TabPane("2 Markets", id="markets"):
                yield DataTable(id="markets-table", cursor_type="row")
            with TabPane("3 Book", id="book"):
                yield Static("", id="book-title", classes="label")
                yield DataTable(id="book-table")
            with TabPane("4 Integrity", id="integrity"):
                yield DataTable(id="alerts-table", cursor_type="row")
                yield Static("", id="alert-evidence", classes="label")
            with TabPane("5 Scaling", id="scaling"):
                yield DataTable(id="scale-table")
            with TabPane("6 Resources", id="resources"):
                yield Static("", id="resources-text", classes="label")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#markets-table", DataTable).add_columns(
            "market", "bid", "ask", "spread", "orders/s", "trades/s", "resting", "halted"
        )
        self.query_one("#book-table", DataTable).add_columns(
            "bid qty", "bid", "ask", "ask qty", "depth"
        )
        self.query_one("#alerts-table", DataTable).add_columns(
            "time", "severity", "detector", "market", "wallets", "trades"
        )
        self.query_one("#scale-table", DataTable).add_columns(
            "action", "resource", "change", "policy", "confidence", "reason"
        )
        for source in self.sources.values():
            self.fetch(source)

    # -- data: one thread worker per source, re-armed with set_timer --------------------------

    @work(thread=True, exit_on_error=False)
    def fetch(self, source: Source) -> None:
        arguments = dict(source.arguments)
        if source.name == "metrics" and self.history:
            arguments["since"] = self.history[-1]["time"]
        try:
            with AdminClient(self.locate(), self.key, timeout_s=2.0) as client:
                data = client.call(source.cmd, **arguments)
                if source.name == "markets" and data:
                    market = self.selected_market or data[0]["market"]
                    data = {"markets": data, "book": client.call("book", market=market, depth=12)}
            self.post_message(Fetched(source.name, data))
        except ClientError as error:
            self.post_message(Unreachable(source.name, str(error)))
        self.call_from_thread(self.set_timer, self.refresh_s, lambda: self._again(source))

    def _again(self, source: Source) -> None:
        if self.paused:
            self.set_timer(self.refresh_s, lambda: self._again(source))
        else:
            self.fetch(source)

    # -- rendering ----------------------------------------------------------------------------

    def on_unreachable(self, message: Unreachable) -> None:
        if self.connected is not False:
            self.connected = False
            self._render_safely(self._show_connected, False)

    def on_fetched(self, message: Fetched) -> None:
        if self.connected is not True:
            self.connected = True
            self._render_safely(self._show_connected, True)
        self._render_safely(getattr(self, f"_show_{message.source}"), message.data)

    def _render_safely(self, show: Callable[[Any], None], data: Any) -> None:
        """A worker's answer may land while the app closes and its panels are gone: then it is
        dropped, never a traceback."""
        try:
            show(data)
        except NoMatches:
            log.debug("panels gone (closing): an answer from the node dropped")

    def _show_connected(self, connected: bool) -> None:
        self.query_one("#banner").set_class(not connected, "shown")
        for pane in self.query(TabPane):
            pane.set_class(not connected, "stale")

    def _show_metrics(self, data: dict) -> None:
        self.history = (self.history + data.get("history", []))[-3600:]
        recent = self.history[-120:]
        self.query_one("#orders-spark", Sparkline).data = [s["orders_per_s"] for s in recent]
        self.query_one("#trades-spark", Sparkline).data = [s["trades_per_s"] for s in recent]
        latest = data.get("latest")
        if latest is None:
            return
        ack, lag = latest["ack_ms"], latest["analytics_lag_s"]
        rejects = ", ".join(f"{k} {v:.0f}/s" for k, v in latest["rejects_per_s"].items() if v)
        self.query_one("#overview-text", Static).update(
            f"{latest['orders_per_s']:,.0f} orders/s, {latest['trades_per_s']:,.0f} trades/s; "
            f"ack p50 {ack['p50']} ms, p99 {ack['p99']} ms; matching "
            f"{latest['matching_busy']:.0%} busy\n"
            f"rejects: {rejects or 'none'}; analytics lag "
            f"{'off' if lag is None else f'{lag} s'}\n"
            f"since the start: {data['commands']:,} commands, "
            f"{sum(data['trades'].values()):,} trades" + self._identity
        )
        process, host = latest["process"], latest["host"]
        size = latest["duckdb_bytes"]
        duckdb = "off" if size is None else f"{size / 2**20:.1f} MiB"
        threads = ", ".join(f"{k} {v}%" for k, v in process["threads_cpu_percent"].items())
        self.query_one("#resources-text", Static).update(
            f"CPU per core: {'  '.join(f'{c:.0f}%' for c in host['cpu_percent'])}\n"
            f"node process {process['cpu_percent']}% ({threads}); analytics process "
            f"{process['analytics_cpu_percent']}%\n"
            f"memory: node {process['rss_bytes'] / 2**20:.0f} MiB, host "
            f"{host['memory_percent']}% used\n"
            f"disk: {host['disk_free_bytes'] / 2**30:.1f} GiB free\n"
            f"LMDB {latest['lmdb_used_bytes'] / 2**20:.1f} of "
            f"{latest['lmdb_map_bytes'] / 2**20:.0f} MiB map; DuckDB {duckdb}"
        )
        self._latest_markets = latest["markets"]

    def _show_status(self, status: dict) -> None:
        endpoints = status["endpoints"]
        self._identity = (
            f"\n{status['name']} (pid {status['pid']}, marketnode {status['version']}), up "
            f"{status['uptime_s']:.0f} s; orders {endpoints['orders']}, market data "
            f"{endpoints['market_data']}, admin {endpoints['admin']}"
        )
        self.sub_title = f"{status['name']} seq {status['seq']}"

    def _show_markets(self, data: Any) -> None:
        if not data:
            return
        table = self.query_one("#markets-table", DataTable)
        rows = {row["market"]: row for row in data["markets"]}
        table.clear()
        for market in sorted(rows):  # stable order: rows never jump between refreshes
            row = rows[market]
            bid, ask = row["best_bid"], row["best_ask"]
            spread = f"{float(ask) - float(bid):.6g}" if bid and ask else ""
            rates = self._latest_markets.get(market, {})
            table.add_row(
                market, bid or "", ask or "", spread,
                f"{rates.get('orders_per_s', 0):,.0f}", f"{rates.get('trades_per_s', 0):,.0f}",
                str(row["resting_orders"]), "yes" if row["halted"] else "", key=market,
            )  # fmt: skip
        self._show_book(data["book"])

    def _show_book(self, book: dict) -> None:
        self.query_one("#book-title", Static).update(f"{book['market']} (md seq {book['md_seq']})")
        table = self.query_one("#book-table", DataTable)
        table.clear()
        bids, asks = book["bids"], book["asks"]
        deepest = max([float(level["qty"]) for level in bids + asks] or [1.0])
        for index in range(max(len(bids), len(asks))):
            bid = bids[index] if index < len(bids) else None
            ask = asks[index] if index < len(asks) else None
            size = max(float(bid["qty"]) if bid else 0, float(ask["qty"]) if ask else 0)
            table.add_row(
                bid["qty"] if bid else "", bid["price"] if bid else "",
                ask["price"] if ask else "", ask["qty"] if ask else "",
                "█" * max(1, round(12 * size / deepest)),
            )  # fmt: skip

    def _show_alerts(self, result: dict) -> None:
        table = self.query_one("#alerts-table", DataTable)
        table.clear()
        self._alerts = {}
        for row in result["rows"]:
            alert = dict(zip(result["columns"], row, strict=True))
            self._alerts[alert["id"]] = alert
            style = SEVERITY_STYLE.get(alert["severity"], "")
            table.add_row(
                alert["time"], f"[{style}]{alert['severity']}[/]", alert["detector"],
                alert["market"], ", ".join(alert["wallets"])[:60], str(alert["trades"]),
                key=alert["id"],
            )  # fmt: skip

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "alerts-table":
            alert = self._alerts.get(event.row_key.value)
            if alert is not None:
                self.query_one("#alert-evidence", Static).update(
                    f"{alert['detector']} on {alert['market']}: wallets "
                    f"{', '.join(alert['wallets'])}\nevidence: {alert['evidence']}"
                )
        elif event.data_table.id == "markets-table":
            self.selected_market = event.row_key.value

    def _show_scale(self, result: dict) -> None:
        table = self.query_one("#scale-table", DataTable)
        table.clear()
        for item in result["recommendations"]:
            change = (
                f"{item['current']:g} -> {item['desired']:g}"
                if item["current"] is not None and item["desired"] is not None
                else ""
            )
            table.add_row(
                item["action"], item["resource"], change, item["policy"],
                f"{item['confidence']:.2f}", item["reason"],
            )  # fmt: skip

    # -- actions ------------------------------------------------------------------------------

    def action_show(self, panel: str) -> None:
        self.query_one(TabbedContent).active = panel

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.notify("paused" if self.paused else "resumed")

    def action_faster(self) -> None:
        self._step(-1)

    def action_slower(self) -> None:
        self._step(1)

    def _step(self, direction: int) -> None:
        steps = REFRESH_STEPS_S
        position = min(range(len(steps)), key=lambda i: abs(steps[i] - self.refresh_s))
        self.refresh_s = steps[max(0, min(len(steps) - 1, position + direction))]
        self.notify(f"refresh every {self.refresh_s:g} s")

    def action_help(self) -> None:
        self.notify(
            "\n".join(f"{b.key}: {b.description}" for b in self.BINDINGS if isinstance(b, Binding)),
            title="keys",
            timeout=8,
        )

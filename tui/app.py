"""The operator dashboard: a running node's throughput, books, integrity alerts, scaling advice
and resources, live.

Each data source (an admin request, or the market-data subscription of the trade tape) has a
thread worker of its own that asks the node, posts the answer as a message and re-arms itself
with `set_timer`; the message handlers only render. When the node does not answer, a banner
says so, the last data stays on screen greyed, and the workers go on asking.

`Dashboard` only reads. `AdminDashboard` (`mnode dashboard --admin`) adds the keys that change
the node: halt or resume a market, disable or enable a peer, label an alert; each asks first.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import msgspec
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from marketnode.node.client.clients import ClientError, NodeAddress
from marketnode.node.core.markets import ConfigError
from marketnode.node.home.keys import KeyFileError, KeyPair

from .links import ANALYTICS_TIMEOUT_S, REQUEST_TIMEOUT_S, NodeLinks
from .messages import ActionDone, Fetched, Refused, Unreachable
from .panels import PANELS
from .panels.base import Panel
from .panels.integrity import ALERTS_QUERY, IntegrityPanel
from .panels.markets import DAY_STATS_QUERY, MarketsPanel
from .panels.overview import OverviewPanel
from .screens import TRADES_SHOWN, ConfirmScreen, EvidenceScreen, HelpScreen

log = logging.getLogger(__name__)
REFRESH_STEPS_S = (0.25, 0.5, 1.0, 2.0, 5.0)
BOOK_DEPTH = 15
SECONDS_KEPT = 300
ANALYTICS_SLOW = (
    f"the analytics process did not answer within {ANALYTICS_TIMEOUT_S:g} s (scanning or "
    "catching up); the last answer is shown"
)
EVIDENCE_TRADES_QUERY = f"""
SELECT seq, strftime(time, '%Y-%m-%d %H:%M:%S') AS time, seller, buyer, price, qty FROM trades
WHERE seq IN (SELECT unnest(trades) FROM alerts WHERE id = ?) ORDER BY seq LIMIT {TRADES_SHOWN}
"""


@dataclass(frozen=True)
class Key:
    """One row of the key table: the bindings, the help screen and the command palette."""

    keys: str
    action: str
    description: str
    panel: str | None = None
    """The panel the key works in (None: everywhere)."""

    def binding(self) -> Binding:
        return Binding(self.keys, self.action, self.description)

    @property
    def shown_keys(self) -> str:
        names = {"question_mark": "?", "plus": "+", "equals_sign": "=", "minus": "-",
                 "slash": "/"}  # fmt: skip
        return " ".join(names.get(key, key) for key in self.keys.split(","))


KEYS = (
    *(Key(key, f"show('{panel}')", title) for key, panel, title, _ in PANELS),
    Key("slash", "filter_markets", "Filter markets by name"),
    Key("p", "pause", "Pause / resume"),
    Key("plus,equals_sign", "faster", "Refresh faster"),
    Key("minus", "slower", "Refresh slower"),
    Key("question_mark", "help", "Keys"),
    Key("q", "quit", "Quit"),
)
ADMIN_KEYS = (
    Key("h", "toggle_halt", "Halt / resume market", "markets"),
    Key("d", "toggle_peer", "Disable / enable peer", "overview"),
    Key("w", "label('wash')", "Label alert wash", "integrity"),
    Key("b", "label('benign')", "Label alert benign", "integrity"),
)
NOT_BINDINGS = (
    ("enter", "Open the market's book / the alert's evidence", "Markets, Integrity"),
    ("ctrl+p", "Command palette", "everywhere"),
)


@dataclass(frozen=True)
class Source:
    """Something the dashboard asks the node again and again, every `every` refreshes, while
    one of `panels` is shown (always, when None).
    `analytics`: the node relays it to its analytics process; when that is slow to answer the
    panel says so, and the node is not taken for gone."""

    name: str
    every: float
    panels: tuple[str, ...] | None = None
    analytics: bool = False


SOURCES = (
    Source("status", 2),  # the title and the identity
    Source("metrics", 1),  # the charts keep every second
    Source("peers", 2, ("overview",)),
    Source("markets", 1, ("markets", "book")),
    Source("book", 1, ("book",)),
    Source("tape", 0, ("book",)),  # waits for trades itself, a refresh period at a time
    Source("market_stats", 5, ("markets",), analytics=True),
    Source("alerts", 2, ("integrity",), analytics=True),
    Source("scale", 1, ("scaling",)),
)


class KeyCommands(Provider):
    """The command palette: the rows of the key table that work where the operator is."""

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        app = self.app
        assert isinstance(app, Dashboard)
        for key in app.keys:
            if not app.key_works(key):
                continue
            score = matcher.match(key.description)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(key.description),
                    partial(app.run_action, key.action),
                    help=f"key {key.shown_keys}",
                )


class Dashboard(App):
    """`mnode dashboard`: read-only; it asks the node, never changes it."""

    TITLE = "marketnode"
    CSS = """
    #banner { height: 1; background: $error; color: $text; display: none; padding: 0 1; }
    #banner.shown { display: block; }
    .stale DataTable, .stale Static, .stale Chart { opacity: 45%; }
    .label { margin: 0 1; }
    #overview-text { height: 4; }
    #identity-text, #scale-reason { height: 2; }
    #book-title, #markets-note, #alerts-summary, #scale-summary, #forecast-text { height: 1; }
    #tape-text { height: 1fr; }
    .dim { color: $text-muted; }
    .charts { height: 10; }
    .charts Chart { width: 1fr; height: 10; margin: 0 1; }
    Screen.-narrow .charts { layout: vertical; height: 20; }
    .book-columns { height: 1fr; }
    .ladder { width: 3fr; }
    .tape { width: 2fr; }
    Screen.-narrow .book-columns { layout: vertical; }
    Screen.-narrow .ladder, Screen.-narrow .tape { width: 1fr; height: 1fr; }
    #market-filter { display: none; }
    #market-filter.shown { display: block; }
    #forecast-chart { height: 12; margin: 1 1 0 1; }
    #scale-table { height: auto; max-height: 12; }
    HelpScreen, ConfirmScreen, EvidenceScreen { align: center middle; }
    .dialog { width: 100; max-width: 95%; height: auto; max-height: 90%; padding: 1 2;
              border: thick $primary; background: $surface; }
    .dialog DataTable { height: auto; max-height: 30; }
    .buttons { height: auto; margin-top: 1; }
    .buttons Button { margin: 0 2; }
    """
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (110, "-wide")]
    COMMANDS = App.COMMANDS | {KeyCommands}
    BINDINGS: ClassVar[list[Binding]] = [key.binding() for key in KEYS]
    keys: tuple[Key, ...] = KEYS
    changes_the_node: ClassVar[bool] = False

    def __init__(
        self,
        locate: Callable[[], NodeAddress],
        key: KeyPair | None,
        refresh_s: float = 1.0,
        poll: bool = True,
    ) -> None:
        """`locate` says where the node is; it is asked again for every request, so a node
        restarted on other ports is found again. `poll=False` starts no workers: the panels
        show only the messages posted to the app (snapshot tests do that)."""
        super().__init__()
        self.links = NodeLinks(locate, key)
        self.refresh_s = refresh_s
        self.poll = poll
        self.paused = False
        self.closing = False
        self.connected: bool | None = None
        self.book_market: str | None = None
        self.market_names: list[str] = []
        self.node_title = ""
        self.seconds: deque[dict] = deque(maxlen=SECONDS_KEPT)
        """The node's per-second samples the dashboard has seen, newest last."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("disconnected, retrying", id="banner")
        with TabbedContent(initial="overview"):
            for key, panel, title, widget in PANELS:
                with TabPane(f"{key} {title}", id=panel):
                    yield widget(id=f"{panel}-panel")
        yield Footer()

    def on_mount(self) -> None:
        if self.poll:
            for source in SOURCES:
                self._start(source)

    def on_unmount(self) -> None:
        self.closing = True
        self.links.close()

    # -- data: one thread worker per source, re-armed with set_timer --------------------------

    def _start(self, source: Source) -> None:
        self.run_worker(
            partial(self._fetch, source),
            name=source.name,
            group=f"source-{source.name}",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def _fetch(self, source: Source) -> None:
        """In the worker's thread: ask, post the answer, and have the next round scheduled."""
        try:
            data = self._ask(source.name)
            if data is not None:
                self.post_message(Fetched(source.name, data))
        except ClientError as error:
            if not error.unreachable:
                self.post_message(Refused(source.name, str(error)))
            elif source.analytics:
                self.post_message(Refused(source.name, ANALYTICS_SLOW))
            else:
                self.post_message(Unreachable(source.name, str(error)))
        except (ConfigError, KeyFileError) as error:  # the home changed underneath
            self.post_message(Unreachable(source.name, str(error)))
        if not self.closing:
            try:
                self.call_from_thread(self._rearm, source)
            except RuntimeError:  # the app closed meanwhile
                log.debug("%s not re-armed: the dashboard closed", source.name)

    def _ask(self, name: str) -> Any:
        if name == "tape":
            return self._read_tape()
        if name == "book":
            market = self._watched_market()
            if market is None:
                return None
            return self._call(name, "book", market=market, depth=BOOK_DEPTH)
        if name == "metrics":
            return self._metrics()
        if name == "market_stats":
            return self._call(name, "sql", ANALYTICS_TIMEOUT_S, query=DAY_STATS_QUERY)
        if name == "alerts":
            return self._call(name, "sql", ANALYTICS_TIMEOUT_S, query=ALERTS_QUERY)
        return self._call(name, name)  # status, peers, markets, scale

    def _watched_market(self) -> str | None:
        """The market of the Book panel: the one chosen in Markets, else the first."""
        return self.book_market or (self.market_names[0] if self.market_names else None)

    def _metrics(self) -> dict:
        """The node's metrics, asking only for the samples not seen yet; the answer carries
        the last `SECONDS_KEPT` of them (kept here, in the metrics worker's thread)."""
        since = self.seconds[-1]["time"] if self.seconds else None
        data = self._call("metrics", "metrics", **({} if since is None else {"since": since}))
        self.seconds.extend(data.get("history", []))
        return {**data, "history": list(self.seconds)}

    def _call(
        self, source: str, cmd: str, timeout_s: float = REQUEST_TIMEOUT_S, **arguments: Any
    ) -> Any:
        with self.links.admin(source, timeout_s) as client:
            return client.call(cmd, **arguments)

    def _read_tape(self) -> dict | None:
        """The selected market's trades from the market-data socket over one refresh period."""
        market = self._watched_market()
        if market is None:
            time.sleep(self.refresh_s)
            return None
        trades: list[dict] = []
        deadline = time.monotonic() + self.refresh_s
        with self.links.market_data("tape", market) as subscriber:
            while (left := deadline - time.monotonic()) > 0 and not self.closing:
                message = subscriber.receive(int(left * 1000) + 1)
                if message is not None:
                    trades.extend(msgspec.to_builtins(message.trades))
        return {"market": market, "time": time.time(), "trades": trades}

    def _rearm(self, source: Source, every: float | None = None) -> None:
        every = source.every if every is None else every
        self.set_timer(max(0.05, self.refresh_s * every), partial(self._due, source))

    def _due(self, source: Source) -> None:
        """Ask now, unless paused or no panel shown needs the source; then look again within
        one refresh, so a panel just shown gets its slower sources soon too."""
        if self.closing:
            return
        wanted = source.panels is None or self.active_panel in source.panels
        if self.paused or not wanted:
            self._rearm(source, every=1)
        else:
            self._start(source)

    # -- rendering: handlers only render ------------------------------------------------------

    def on_unreachable(self, message: Unreachable) -> None:
        if self.connected is not False:
            self.connected = False
            self._render_safely(self._show_connected, False)
            self._render_safely(self._show_why_disconnected, message.why)

    def on_refused(self, message: Refused) -> None:
        self._render_safely(self._note, message)

    def on_fetched(self, message: Fetched) -> None:
        if self.connected is not True:
            self.connected = True
            self._render_safely(self._show_connected, True)
        self._render_safely(self._show, message)

    def _render_safely(self, show: Callable[[Any], None], data: Any) -> None:
        """An answer may land while the app closes and its panels are gone: then it is
        dropped, never a traceback."""
        try:
            show(data)
        except NoMatches:
            log.debug("panels gone (closing): an answer from the node dropped")

    def _show(self, message: Fetched) -> None:
        if message.source == "markets":
            self.market_names = sorted(m["market"] for m in message.data)
        elif message.source == "status":
            self.node_title = f"{message.data['name']} seq {message.data['seq']:,}"
            self._show_subtitle()
        elif message.source == "evidence":
            self._show_evidence_trades(message.data)
            return
        active = self.active_panel
        for panel in self.query(Panel):
            if message.source in panel.LISTENS:
                panel.receive(message.source, message.data, panel.id == f"{active}-panel")

    def _note(self, message: Refused) -> None:
        if message.source == "evidence":
            screen = self.screen
            if isinstance(screen, EvidenceScreen):
                screen.trades_unavailable(message.why)
            return
        for panel in self.query(Panel):
            if message.source in panel.LISTENS:
                panel.note(message.source, message.why)

    def _show_subtitle(self) -> None:
        admin = "admin" if self.changes_the_node else ""
        parts = [self.node_title, admin, "PAUSED" if self.paused else ""]
        self.sub_title = " · ".join(part for part in parts if part)

    def _show_why_disconnected(self, why: str) -> None:
        self.query_one("#banner").tooltip = why  # the banner stays short; hovering tells why

    def _show_connected(self, connected: bool) -> None:
        self.query_one("#banner").set_class(not connected, "shown")
        for panel in self.query(Panel):
            panel.set_class(not connected, "stale")

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error")

    def on_markets_panel_selected(self, message: MarketsPanel.Selected) -> None:
        self.book_market = message.market
        if message.open_book:
            self.action_show("book")

    def on_integrity_panel_open(self, message: IntegrityPanel.Open) -> None:
        self.push_screen(EvidenceScreen(message.alert))
        if not self.poll:
            return
        self.run_worker(
            partial(self._fetch_evidence, message.alert["id"]),
            group="evidence", exclusive=True, thread=True, exit_on_error=False,
        )  # fmt: skip

    def _fetch_evidence(self, alert_id: str) -> None:
        try:
            result = self._call("evidence", "sql", ANALYTICS_TIMEOUT_S,
                                query=EVIDENCE_TRADES_QUERY, params=[alert_id])  # fmt: skip
            self.post_message(Fetched("evidence", {"alert": alert_id, "result": result}))
        except ClientError as error:
            self.post_message(Refused("evidence", str(error)))

    def _show_evidence_trades(self, data: dict) -> None:
        screen = self.screen
        if isinstance(screen, EvidenceScreen) and screen.alert["id"] == data["alert"]:
            screen.show_trades(data["result"])

    # -- keys ---------------------------------------------------------------------------------

    @property
    def active_panel(self) -> str:
        """The panel shown ("" while the app starts or closes and the panels are not there)."""
        try:
            return self.query_one(TabbedContent).active
        except NoMatches:
            return ""

    def key_works(self, key: Key) -> bool:
        return key.panel is None or key.panel == self.active_panel

    def key_table(self) -> list[tuple[str, str, str]]:
        titles = {panel: title for _, panel, title, _ in PANELS}
        rows = [(k.shown_keys, k.description, titles.get(k.panel or "", "everywhere"))
                for k in self.keys]  # fmt: skip
        return rows + list(NOT_BINDINGS)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        for key in self.keys:
            if key.action.split("(")[0] == action and not self.key_works(key):
                return False
        return True

    def action_show(self, panel: str) -> None:
        self.query_one(TabbedContent).active = panel

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """The panel shown renders what came while it was hidden; the keys go to it (its table
        has the focus)."""
        panel = self.query_one(f"#{event.pane.id}-panel", Panel)
        self._render_safely(lambda _: panel.shown(), None)
        tables = panel.query(DataTable)
        if tables:
            tables.first().focus()

    def action_filter_markets(self) -> None:
        self.action_show("markets")
        self.query_one(MarketsPanel).start_filter()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._show_subtitle()
        self.notify("paused: press p to resume" if self.paused else "resumed")

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
        self.push_screen(HelpScreen(self.key_table()))


class AdminDashboard(Dashboard):
    """`mnode dashboard --admin`: the dashboard plus actions on the node, each confirmed."""

    BINDINGS: ClassVar[list[Binding]] = [key.binding() for key in ADMIN_KEYS]
    keys = KEYS + ADMIN_KEYS
    changes_the_node = True

    def action_toggle_halt(self) -> None:
        panel = self.query_one(MarketsPanel)
        market = panel.selected_market()
        if market is None:
            return
        if panel.selected_halted():
            self._confirm(f"Resume {market}? New orders are accepted again.", "resume",
                          [{"market": market}], f"{market} resumed")  # fmt: skip
        else:
            self._confirm(
                f"Halt {market}? New orders are refused (market_halted) until it is resumed; "
                "cancels are still accepted.",
                "halt", [{"market": market}], f"{market} halted",
            )  # fmt: skip

    def action_toggle_peer(self) -> None:
        peer = self.query_one(OverviewPanel).selected_peer()
        if peer is None:
            return
        name = peer["name"]
        if peer["disabled"]:
            self._confirm(f"Enable peer {name}? Its orders are accepted again.", "enable_peer",
                          [{"peer": name}], f"peer {name} enabled")  # fmt: skip
        else:
            self._confirm(
                f"Disable peer {name}? Its orders are refused (peer_disabled) and its resting "
                "orders are cancelled.",
                "disable_peer", [{"peer": name}], f"peer {name} disabled",
            )  # fmt: skip

    def action_label(self, label: str) -> None:
        alert = self.query_one(IntegrityPanel).selected_alert()
        if alert is None:
            return
        count = len(alert["ids"])
        self._confirm(
            f"Label the {alert['detector']} finding on {alert['market'] or 'all markets'} "
            f"({', '.join(alert['wallets'][:4])}) as {label}? Its {count} alerts are labelled.",
            "ack", [{"alert": alert_id, "label": label} for alert_id in alert["ids"]],
            f"{count} alerts labelled {label}",
        )  # fmt: skip

    def _confirm(self, question: str, cmd: str, requests: list[dict], done: str) -> None:
        """Ask; on yes, send `cmd` once per arguments in `requests`, in a worker."""

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(
                    partial(self._act, cmd, requests, done),
                    group="actions", thread=True, exit_on_error=False,
                )  # fmt: skip

        self.push_screen(ConfirmScreen(question), answered)

    def _act(self, cmd: str, requests: list[dict], done: str) -> None:
        try:
            for arguments in requests:
                self._call("actions", cmd, **arguments)
            self.post_message(ActionDone(done, ok=True))
        except ClientError as error:
            self.post_message(ActionDone(f"{cmd} refused: {error}", ok=False))

"""The operator dashboard: a running node's throughput, books, integrity alerts, scaling advice,
resources, settlement on chain and automated liquidity, live.

Each data source of the source table (tui/sources.py) is asked in a thread worker of its own
(tui/polling.py), which posts the answer as the source's own message; one handler renders
every answer in the panels the table names. When the node
does not answer, a banner says so, the last data stays on screen greyed, and the workers go on
asking. The layout is in dashboard.tcss.

`Dashboard` only reads. `AdminDashboard` (`mnode dashboard --admin`) adds the keys that change
the node: halt or resume a market, disable or enable a peer, label an alert; each asks first.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.css.query import NoMatches
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane

from marketnode.node.client import ClientError, NodeAddress
from marketnode.node.home.keys import KeyPair

from .footer import KeyFooter
from .keys import ADMIN_KEYS, DASHBOARD_PANELS, KEYS, Key, key_table
from .links import ANALYTICS_TIMEOUT_S, NodeLinks
from .messages import (
    ActionDone,
    EvidenceFetched,
    EvidenceUnavailable,
    Fetched,
    Refused,
    StatusFetched,
    Unreachable,
)
from .panels.base import Panel
from .panels.book import BookPanel
from .panels.integrity import IntegrityPanel
from .panels.markets import MarketsPanel
from .panels.overview import OverviewPanel
from .polling import PollingApp
from .screens import ConfirmScreen, EvidenceScreen, HelpScreen
from .sources import SOURCE_NAMED, SOURCE_OF, ClusterLink, NodeReader, Source

log = logging.getLogger(__name__)
REFRESH_STEPS_S = (0.25, 0.5, 1.0, 2.0, 5.0)
SETTLED_AFTER_S = 5.0
"""When the panels have been built and have drawn their first answers."""
NOTE_SHOWN_S = 30.0
EVIDENCE_ATTEMPTS = 3
ANALYTICS_SLOW_EVIDENCE = (
    f"the analytics process did not answer within {ANALYTICS_TIMEOUT_S:g} s (scanning or "
    "catching up)"
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


class Dashboard(PollingApp):
    """`mnode dashboard`: read-only; it asks the node, never changes it."""

    TITLE = "marketnode"
    CSS_PATH = "dashboard.tcss"
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
        note: str | None = None,
        cluster: ClusterLink | None = None,
    ) -> None:
        """`locate` says where the node is; it is asked again for every request, so a node
        restarted on other ports is found again. `poll=False` starts no workers: the panels
        show only the messages posted to the app (snapshot tests do that). `note`: a word
        from whoever opened the dashboard (the demo's rates and why), shown when it opens.
        `cluster`: the cluster the node is a member of, for the Cluster panel (None: in none)."""
        super().__init__()
        self.reader = NodeReader(NodeLinks(locate, key), lambda: self.refresh_s, cluster)
        self.refresh_s = refresh_s
        self.poll = poll
        self.paused = False
        self.connected: bool | None = None
        self.node_title = ""
        self.note = note

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("disconnected, retrying", id="banner")
        with TabbedContent(initial="overview"):
            for key, panel, title, widget in DASHBOARD_PANELS:
                with TabPane(f"{key} {title}", id=panel):
                    yield widget(id=f"{panel}-panel")
        yield KeyFooter({key.action: key.short for key in self.keys})

    def on_mount(self) -> None:
        if self.note:
            self.notify(self.note, timeout=NOTE_SHOWN_S)
        if self.poll:
            self.start_polling()
        self.set_timer(SETTLED_AFTER_S, self._freeze_what_lasts)

    def _freeze_what_lasts(self) -> None:
        """Python's full garbage collections scan every object alive, and Textual's frames
        leave enough cyclic garbage for one every few seconds: 35-170 ms each on a 2-core
        machine, with the event loop (and any key pressed) waiting. What exists once the
        panels are built and have drawn their first answers (modules, widgets, styles) lives
        as long as the dashboard, so it is moved out of the collector's scans (`gc.freeze`)."""
        gc.collect()
        gc.freeze()
        log.debug("%d objects left out of later garbage collections", gc.get_freeze_count())

    def on_unmount(self) -> None:
        self.reader.close()

    # -- rendering: handlers only render ------------------------------------------------------

    def on_unreachable(self, message: Unreachable) -> None:
        if self.connected is not False:
            self.connected = False
            self._render_safely(self._show_connected, False)
            self._render_safely(self._show_why_disconnected, message.why)

    def on_refused(self, message: Refused) -> None:
        self._render_safely(self._note, message)

    @on(Fetched)
    def _render_answer(self, message: Fetched) -> None:
        """Every source's answer: drawn by the panels the source table names."""
        if SOURCE_OF[type(message)].from_the_node:
            self._answered()
        self._render_safely(self._show, message)

    def _answered(self) -> None:
        if self.connected is not True:
            self.connected = True
            self._render_safely(self._show_connected, True)

    def _render_safely(self, show: Callable[[Any], None], data: Any) -> None:
        """An answer may land while the app closes and its panels are gone: then it is
        dropped, never a traceback."""
        try:
            show(data)
        except NoMatches:
            log.debug("panels gone (closing): an answer from the node dropped")

    def _panels_of(self, source: Source) -> Iterator[Panel]:
        for panel in source.panels:
            yield self.query_one(f"#{panel}-panel", Panel)

    def _show(self, message: Fetched) -> None:
        source = SOURCE_OF[type(message)]
        active = self.active_panel
        for panel in self._panels_of(source):
            panel.receive(source.name, message, panel.id == f"{active}-panel")

    def _note(self, message: Refused) -> None:
        for panel in self._panels_of(SOURCE_NAMED[message.source]):
            panel.note(message.source, message.why)

    def on_status_fetched(self, message: StatusFetched) -> None:
        self.node_title = f"{message.status['name']} seq {message.status['seq']:,}"
        self._show_subtitle()

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
        self.reader.book_market = message.market
        if message.open_book:
            self.query_one(BookPanel).choose(message.market)
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
        """The alert's trades, asked again while the analytics process is only slow (busy
        scanning or catching up): slow is said as slow, not as a node gone."""
        for attempt in range(1, EVIDENCE_ATTEMPTS + 1):
            try:
                self.post_message(EvidenceFetched(alert_id, self.reader.evidence(alert_id)))
                return
            except ClientError as error:
                if not error.unreachable:
                    self.post_message(EvidenceUnavailable(str(error)))
                    return
                again = (
                    "asking again" if attempt < EVIDENCE_ATTEMPTS else "escape and Enter ask again"
                )
                tries = f"try {attempt} of {EVIDENCE_ATTEMPTS}; {again}"
                self.post_message(EvidenceUnavailable(f"slow: {ANALYTICS_SLOW_EVIDENCE} ({tries})"))
            if self.reader.closing:
                return

    def on_evidence_fetched(self, message: EvidenceFetched) -> None:
        self._answered()
        screen = self.screen
        if isinstance(screen, EvidenceScreen) and screen.alert["id"] == message.alert:
            screen.show_trades(message.result)

    def on_evidence_unavailable(self, message: EvidenceUnavailable) -> None:
        screen = self.screen
        if isinstance(screen, EvidenceScreen):
            screen.trades_unavailable(message.why)

    # -- keys ---------------------------------------------------------------------------------

    def key_works(self, key: Key) -> bool:
        return key.panel is None or key.panel == self.active_panel

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
        self.panel_shown(event.pane.id)
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
        self.push_screen(HelpScreen(key_table(self.keys)))


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
                self.reader.call("actions", cmd, **arguments)
            self.post_message(ActionDone(done, ok=True))
        except ClientError as error:
            self.post_message(ActionDone(f"{cmd} refused: {error}", ok=False))

"""Book: the selected market's depth ladder, each side with a cumulative-depth bar, and the
trade tape from the market-data socket, newest first.

The ladder is a `book` snapshot asked every refresh; the tape is the market-data stream. When
the stream has moved past the ladder's seq and the last snapshot is older than
`STALE_AFTER_S` (the node too busy to answer it in time), or the stream lost messages (a seq
gap, a new run), the title says the ladder is stale and how old it is, until a snapshot that
has caught up with the stream arrives (protocol.md §11, "Keeping a book")."""

from __future__ import annotations

import time
from collections import deque
from decimal import Decimal

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from ..messages import BookFetched, TapeFetched
from .base import Panel, bar, fill_table

DEPTH_BAR_CELLS = 14
TAPE_KEPT = 60
SIDE_STYLE = {"buy": "green", "sell": "red"}
STALE_AFTER_S = 3.0
TAPE_HEADING = f"[b]trade tape (live)[/b]\n[b]{'time':<8}  side  {'price':>12}  {'qty':>10}[/b]"


class BookPanel(Panel):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.market: str | None = None
        self.chosen: str | None = None
        """The market chosen in Markets (None: the node's first, until one is)."""
        self.tape: deque[tuple[str, dict]] = deque(maxlen=TAPE_KEPT)
        self.ladder: dict | None = None
        self.ladder_time = 0.0
        """When the ladder's snapshot came (epoch seconds)."""
        self.stream_seq = 0
        self.stream_run: int | None = None
        self.resync_after_seq: int | None = None
        """Set when the stream lost messages: the ladder is stale until a snapshot with at
        least this seq."""

    def compose(self) -> ComposeResult:
        yield Static("no market selected yet (choose one in 2 Markets)", id="book-title",
                     classes="label")  # fmt: skip
        with Horizontal(classes="book-columns"):
            with Vertical(classes="ladder"):
                yield DataTable(id="book-table", cursor_type="none")
            with Vertical(classes="tape"):
                yield Static(TAPE_HEADING, classes="label")
                yield Static("", id="tape-text", classes="label")

    def on_mount(self) -> None:
        self.query_one("#book-table", DataTable).add_columns(
            "bid depth", "bid qty", "bid", "ask", "ask qty", "ask depth"
        )

    def choose(self, market: str) -> None:
        """The market chosen in Markets: named at once, the ladder of the market before it
        cleared, its own ladder and tape drawn as the node answers. An answer about another
        market, asked before the choice, is dropped."""
        self.chosen = market
        if market != self.market:
            self._watch(market)
            fill_table(self.query_one("#book-table", DataTable), [])
            self.query_one("#book-title", Static).update(f"{market}: asking the node for its book")

    def _watch(self, market: str) -> None:
        self.market, self.ladder = market, None
        self.tape.clear()
        self.stream_seq, self.stream_run, self.resync_after_seq = 0, None, None
        self._render_tape()

    def show_book(self, fetched: BookFetched) -> None:
        book = fetched.book
        if self.chosen is not None and book["market"] != self.chosen:
            return
        if book["market"] != self.market:
            self._watch(book["market"])
        self.ladder, self.ladder_time = book, time.time()
        if self.resync_after_seq is not None and book["md_seq"] >= self.resync_after_seq:
            self.resync_after_seq = None
        self._render_title(self.ladder_time)
        bids, asks = book["bids"], book["asks"]
        bid_depth = _cumulative(bids)
        ask_depth = _cumulative(asks)
        deepest = max([*bid_depth, *ask_depth, Decimal(1)])
        rows = []
        for index in range(max(len(bids), len(asks))):
            bid = bids[index] if index < len(bids) else None
            ask = asks[index] if index < len(asks) else None
            rows.append((str(index), (
                _depth_bar(bid_depth, index, deepest, "green", right=True),
                bid["qty"] if bid else "", Text(bid["price"], style="green") if bid else "",
                Text(ask["price"], style="red") if ask else "", ask["qty"] if ask else "",
                _depth_bar(ask_depth, index, deepest, "red", right=False),
            )))  # fmt: skip
        fill_table(self.query_one("#book-table", DataTable), rows)

    def show_tape(self, fetched: TapeFetched) -> None:
        data = fetched.tape
        if data["market"] != self.market:
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(data["time"]))
        for trade in data["trades"]:
            self.tape.appendleft((stamp, trade))
        if data["trades"]:
            self._render_tape()
        if data.get("seq") is not None:
            new_run = self.stream_run is not None and data["run"] != self.stream_run
            self.stream_seq, self.stream_run = data["seq"], data["run"]
            if data.get("lost") or new_run:
                self.resync_after_seq = data["seq"]
        if self.ladder is not None:
            self._render_title(data["time"])

    def _render_title(self, now: float) -> None:
        """The market, its ladder's size and spread and seq; or, when the ladder is behind the
        stream, STALE with its age."""
        book = self.ladder
        assert book is not None
        bids, asks = book["bids"], book["asks"]
        best_bid = bids[0]["price"] if bids else None
        best_ask = asks[0]["price"] if asks else None
        spread = str(Decimal(best_ask) - Decimal(best_bid)) if best_bid and best_ask else "-"
        title = Text(
            f"{book['market']}: {len(bids)} bid and {len(asks)} ask levels shown, spread "
            f"{spread} (market-data seq {book['md_seq']})"
        )
        age = max(0.0, now - self.ladder_time)
        behind = self.stream_seq > book["md_seq"] and age > STALE_AFTER_S
        if behind or self.resync_after_seq is not None:
            why = "messages lost" if self.resync_after_seq is not None else "no fresh snapshot"
            title.append(
                f"  STALE: the ladder is {age:.0f} s old, the stream at seq {self.stream_seq} "
                f"({why}); resyncing from a snapshot",
                style="bold yellow",
            )
        self.query_one("#book-title", Static).update(title)

    def _render_tape(self) -> None:
        """The tape as lines of text: it changes with every trade, and text is cheap to
        redraw where a table would be rebuilt."""
        text = Text()
        for stamp, trade in self.tape:
            side = trade["aggressor"]
            text.append(f"{stamp}  ")
            text.append(f"{side:<4}", style=SIDE_STYLE[side])
            text.append(f"  {trade['price']:>12}  {trade['qty']:>10}\n")
        self.query_one("#tape-text", Static).update(text)


def _cumulative(levels: list[dict]) -> list[Decimal]:
    total = Decimal(0)
    depth = []
    for level in levels:
        total += Decimal(level["qty"])
        depth.append(total)
    return depth


def _depth_bar(depth: list[Decimal], index: int, deepest: Decimal, style: str, right: bool):
    if index >= len(depth):
        return ""
    drawn = bar(float(depth[index] / deepest), DEPTH_BAR_CELLS, style)
    if right:  # the bid side grows towards the middle of the ladder
        return Text(drawn.plain.rstrip().rjust(DEPTH_BAR_CELLS), style=style)
    return drawn

"""Markets: a row per market (last price, best bid and ask, spread, 24 h volume and trades,
flagged wash share, orders/s), sorted by name so rows never jump; `/` filters by name."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from ..messages import MarketsFetched, MarketStatsFetched, MetricsFetched
from .base import Panel, fill_table, plain, selected_key

DAY_STATS_QUERY = """
SELECT t.market, arg_max(t.price, t.seq) AS last, count(*) AS trades, sum(t.qty) AS volume,
       round(coalesce(sum(t.notional) FILTER (WHERE f.seq IS NOT NULL), 0)
             / sum(t.notional), 4)::DOUBLE AS wash_share
FROM trades t LEFT JOIN flagged_trades f USING (seq)
WHERE t.time >= now() - INTERVAL 24 HOUR
GROUP BY t.market
"""
"""Each market's last 24 hours from the analytics store (trades named by an alert not labelled
benign count as wash)."""


class MarketsPanel(Panel):
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "clear_filter", "Clear the filter", show=False)
    ]

    class Selected(Message):
        """The operator moved to a market (`open_book`: and asked for its book)."""

        def __init__(self, market: str, open_book: bool) -> None:
            super().__init__()
            self.market = market
            self.open_book = open_book

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.markets: list[dict] = []
        self.day_stats: dict[str, dict] = {}
        self.rates: dict[str, dict] = {}
        self.stats_note = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter markets by name (Enter keeps it, Esc clears)",
                    id="market-filter")  # fmt: skip
        yield DataTable(id="markets-table", cursor_type="row")
        yield Static("", id="markets-note", classes="label")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "market", "last", "bid", "ask", "spread", "24h volume", "24h trades", "wash share",
            "orders/s", "halted",
        )  # fmt: skip

    @property
    def filter_text(self) -> str:
        return self.query_one("#market-filter", Input).value.strip().lower()

    def show_markets(self, fetched: MarketsFetched) -> None:
        self.markets = fetched.markets
        self._render_table()

    def show_market_stats(self, fetched: MarketStatsFetched) -> None:
        result = fetched.result
        self.day_stats = {
            row[0]: dict(zip(result["columns"], row, strict=True)) for row in result["rows"]
        }
        self.stats_note = ""
        self._render_table()

    def show_metrics(self, fetched: MetricsFetched) -> None:
        latest = fetched.metrics.get("latest")
        if latest is not None:
            self.rates = latest["markets"]

    def note_market_stats(self, why: str) -> None:
        self.stats_note = f"24 h columns: {why}"
        self._render_table()

    def _render_table(self) -> None:
        wanted = self.filter_text
        rows = []
        for market in sorted(self.markets, key=lambda m: m["market"]):
            symbol = market["market"]
            if wanted and wanted not in symbol.lower():
                continue
            day = self.day_stats.get(symbol, {})
            bid, ask = market["best_bid"], market["best_ask"]
            share = day.get("wash_share")
            rows.append((symbol, (
                symbol, plain(day.get("last")), bid or "", ask or "",
                str(Decimal(ask) - Decimal(bid)) if bid and ask else "",
                plain(day.get("volume")), f"{day['trades']:,}" if day else "",
                "" if share is None else f"{share:.1%}",
                f"{self.rates.get(symbol, {}).get('orders_per_s', 0):,.0f}",
                "HALTED" if market["halted"] else "",
            )))  # fmt: skip
        fill_table(self.query_one(DataTable), rows)
        shown = f"{len(rows)} of {len(self.markets)} markets" if wanted else ""
        self.query_one("#markets-note", Static).update(
            Text("  ".join(part for part in (shown, self.stats_note) if part))
        )

    def start_filter(self) -> None:
        field = self.query_one("#market-filter", Input)
        field.add_class("shown")
        self.call_after_refresh(field.focus)  # once it is displayed: a hidden one takes none

    @on(Input.Changed, "#market-filter")
    def _filter_changed(self) -> None:
        self._render_table()

    @on(Input.Submitted, "#market-filter")
    def _filter_kept(self) -> None:
        self.query_one(DataTable).focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#market-filter", Input)
        field.value = ""
        field.remove_class("shown")
        self.query_one(DataTable).focus()

    def selected_market(self) -> str | None:
        return selected_key(self.query_one(DataTable))

    def selected_halted(self) -> bool:
        market = self.selected_market()
        return any(m["market"] == market and m["halted"] for m in self.markets)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.post_message(self.Selected(event.row_key.value, open_book=False))

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        self.post_message(self.Selected(event.row_key.value, open_book=True))

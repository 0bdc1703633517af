"""Liquidity: what the liquidity process's instances quote, hold and earned, from the node's
`status` (its `liquidity` section: the process's report of every second, read by the node at
its housekeeping; both ages are shown). One row per instance: its state (quoting, stopped by
the operator, or killed by a limit), its best quotes, its inventory against its target and its
PnL (realized, unrealized at the mid, fees, the day's); under the table, the highlighted
instance's whole ladder and the headroom left under each of its hard limits.
"liquidity off" when the home configures no instance."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..messages import StatusFetched
from .base import Panel, bar, fill_table, selected_key

OFF = "liquidity off (the node's config.toml has no enabled [liquidity.NAME] instance)"
LIMIT_BAR = 20
LADDER_SHOWN = 6
"""Levels of each side the ladder shows."""


def number(value: float | None) -> str:
    """A quote-asset amount: 6 significant digits, thousands separated ("-": not known)."""
    if value is None:
        return "-"
    if abs(value) >= 1e15:
        return f"{value:.3g}"
    return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"


def signed(value: float) -> Text:
    """A PnL figure, green above 0 and red below."""
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(("+" if value > 0 else "") + number(value), style=style)


def state_cell(item: dict[str, Any], why: bool = False) -> Text:
    """`quoting`, `stopped by WHO`, or `killed by a limit` (the kill switch; `why`: which)."""
    if item.get("halted"):
        return Text(f"killed by a limit: {item['halted']}" if why else "killed by a limit",
                    style="bold red")  # fmt: skip
    stopped = item.get("stopped")
    if stopped:
        return Text(f"stopped by {stopped['by']}", style="yellow")
    return Text(item.get("state", "quoting"), style="green")


def best(item: dict[str, Any], side: str) -> str:
    """The instance's best quote of `side` as "qty @ price" ("-": none)."""
    levels = [(float(price), qty, price) for quote_side, price, qty in item["quotes"]
              if quote_side == side]  # fmt: skip
    if not levels:
        return "-"
    _, qty, price = (max if side == "buy" else min)(levels)
    return f"{qty} @ {price}"


class LiquidityPanel(Panel):
    DEFAULT_CSS = """
    LiquidityPanel #liquidity-summary { height: 2; }
    LiquidityPanel #liquidity-instances { height: auto; max-height: 12; }
    LiquidityPanel #liquidity-detail { margin: 1 1 0 1; height: auto; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instances: dict[str, dict[str, Any]] = {}
        """The latest report of each instance, by name."""

    def compose(self) -> ComposeResult:
        yield Static("waiting for the node…", id="liquidity-summary", classes="label")
        yield DataTable(id="liquidity-instances", cursor_type="row")
        yield Static("", id="liquidity-detail")

    def on_mount(self) -> None:
        self.query_one("#liquidity-instances", DataTable).add_columns(
            "instance", "strategy", "market", "state", "bid", "ask", "mid", "base / target",
            "position", "realized", "unrealized", "fees", "today", "fills",
        )  # fmt: skip

    def show_status(self, fetched: StatusFetched) -> None:
        liquidity = fetched.status.get("liquidity", "off")
        summary = self.query_one("#liquidity-summary", Static)
        if not isinstance(liquidity, dict):
            summary.update(Text(OFF, style="dim"))
            self._fill([])
            return
        items = liquidity.get("instances", [])
        summary.update(self._summary(liquidity, items))
        self._fill(items)

    def _fill(self, items: list[dict[str, Any]]) -> None:
        self.instances = {item["name"]: item for item in items}
        fill_table(self.query_one("#liquidity-instances", DataTable), [
            (item["name"], [
                item["name"], item["strategy"], item["market"], state_cell(item),
                best(item, "buy"), best(item, "sell"), number(item.get("mid")),
                f"{number(item['base'])} / {number(item.get('target_base'))}",
                f"{item['position_lots']:+,d} lots", signed(item["realized"]),
                signed(item["unrealized"]), number(item.get("fees", 0.0)),
                signed(item.get("pnl_today", 0.0)), f"{item['fills']:,}",
            ])
            for item in items
        ])  # fmt: skip
        self._show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#liquidity-detail", Static)
        name = selected_key(self.query_one("#liquidity-instances", DataTable))
        item = self.instances.get(name or "")
        detail.update(Text() if item is None else self.detail(item))

    @staticmethod
    def _summary(liquidity: dict[str, Any], items: list[dict[str, Any]]) -> Text:
        text = Text(f"liquidity process {liquidity['state']}")
        if liquidity.get("age_s") is None:
            text.append("\nno report from the liquidity process yet", style="dim")
            return text
        read = liquidity.get("read_age_s")
        read_text = "" if read is None else f", read by the node {read:.1f} s ago"
        text.append(f" · its report {liquidity['age_s']:.1f} s old{read_text}\n")
        states = [item.get("state", "quoting") for item in items]
        counts = ", ".join(f"{states.count(word)} {word}" for word in
                           ("quoting", "stopped", "halted") if word in states)  # fmt: skip
        text.append(f"{len(items)} instances: {counts or 'none'}")
        return text

    @staticmethod
    def detail(item: dict[str, Any]) -> Text:
        """The instance's ladder, inventory, limits' headroom and PnL, in lines."""
        text = Text(f"{item['name']}", style="bold")
        text.append(f" · {item['strategy']} on {item['market']} · owner {item['owner']} · ")
        text.append_text(state_cell(item, why=True))
        stopped = item.get("stopped")
        if stopped and not item.get("halted"):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stopped["at"]))
            text.append(f" at {when} (mnode liquidity start {item['name']})", style="yellow")
        if item.get("halted"):
            text.append(f" (mnode liquidity resume {item['name']})", style="red")
        text.append("\n\nquotes  ")
        text.append_text(_ladder(item["quotes"]))
        text.append(f"\ninventory  base {number(item['base'])} against a target of "
                    f"{number(item.get('target_base'))} ({item['position_lots']:+,d} lots), "
                    f"quote {number(item['quote'])}\n")  # fmt: skip
        text.append(f"PnL  realized {number(item['realized'])}, unrealized at mid "
                    f"{number(item['unrealized'])}, fees {number(item.get('fees', 0.0))}, "
                    f"today {number(item.get('pnl_today', 0.0))}\n")  # fmt: skip
        limits = item.get("limits", [])
        text.append("limits" + ("  none (the strategy declares no hard limit)" if not limits
                                else "") + "\n")  # fmt: skip
        for limit in limits:
            text.append_text(_headroom(limit))
        return text


def _ladder(quotes: list[list[str]]) -> Text:
    """Asks from the highest shown down, then bids from the best down; "none" when nothing."""
    asks = sorted((q for q in quotes if q[0] == "sell"), key=lambda q: float(q[1]))
    bids = sorted((q for q in quotes if q[0] == "buy"), key=lambda q: -float(q[1]))
    if not asks and not bids:
        return Text("none\n", style="dim")
    text = Text()
    for _, price, qty in reversed(asks[:LADDER_SHOWN]):
        text.append(f"ask {qty:>10} @ {price}\n        ", style="red")
    for _, price, qty in bids[:LADDER_SHOWN]:
        text.append(f"bid {qty:>10} @ {price}\n        ", style="green")
    text.rstrip()
    text.append("\n")
    return text


def _headroom(limit: dict[str, Any]) -> Text:
    """One limit: a bar of how much is used, the figures, and what is left."""
    cap, used = float(limit["limit"]), float(limit["used"])
    fraction = used / cap if cap > 0 else 1.0
    style = "red" if fraction >= 0.9 else "yellow" if fraction >= 0.6 else "green"
    unit = " lots" if limit["unit"] == "lots" else ""
    text = Text(f"  {limit['name']:<22}")
    text.append_text(bar(fraction, LIMIT_BAR, style))
    text.append(f" {number(used)}{unit} of {number(cap)}{unit}, "
                f"{number(max(0.0, cap - used))}{unit} left\n")  # fmt: skip
    return text

"""Settlement: what the relayer has made of the node's signed trades on chain, from the node's
`status` (the relayer sends its node its state every second; how old it is is shown): trades
by settlement state with their rates over the last minute, settlement lag p50/p99, gas and fee
per trade, each batch in flight with its transaction, the fees offered and paid against its
block's base fee and its confirmation depth, and the latest failures with their reasons.
"settlement off" when the node settles nothing."""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..messages import StatusFetched
from .base import Panel, fill_table

RATE_WINDOW_S = 60.0
"""Rates are over the counts seen in this last stretch of the node's uptime."""
GWEI = 10**9
STATES = ("pending", "submitted", "confirmed", "failed")
STATE_STYLE = {"pending": "", "submitted": "yellow", "confirmed": "green", "failed": "bold red"}
OFF = "settlement off ([settlement] enabled = false: trades are not settled on chain)"


def gwei(wei: int | None) -> str:
    """A fee in gwei: four significant digits, whole gwei from 1,000 ("-" when not known)."""
    if wei is None:
        return "-"
    value = wei / GWEI
    return f"{value:,.0f}" if value >= 1000 else f"{value:.4g}"


def short_hash(tx_hash: str | None) -> str:
    return "-" if not tx_hash else f"{tx_hash[:10]}…{tx_hash[-6:]}"


class SettlementPanel(Panel):
    DEFAULT_CSS = """
    SettlementPanel #settlement-summary { height: 3; }
    SettlementPanel #settlement-counts { height: 5; margin: 1 1 0 1; }
    SettlementPanel #settlement-batches { height: auto; max-height: 10; }
    SettlementPanel #settlement-failures { height: auto; max-height: 12; }
    SettlementPanel .heading { margin: 1 1 0 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: deque[tuple[float, dict[str, int]]] = deque()
        """(node uptime, trades by state) of the answers of the last `RATE_WINDOW_S`."""

    def compose(self) -> ComposeResult:
        yield Static("waiting for the node…", id="settlement-summary", classes="label")
        yield Static("", id="settlement-counts")
        yield Static("batches in flight", id="settlement-in-flight", classes="label heading")
        yield DataTable(id="settlement-batches", cursor_type="row")
        yield Static("latest failures", classes="label heading")
        yield DataTable(id="settlement-failures", cursor_type="none")

    def on_mount(self) -> None:
        self.query_one("#settlement-batches", DataTable).add_columns(
            "batch", "nonce", "state", "trades", "transaction", "offered max/tip gwei",
            "paid / base fee gwei", "depth",
        )  # fmt: skip
        failures = self.query_one("#settlement-failures", DataTable)
        failures.add_columns("trade", "market", "reason", "transaction", "block")
        failures.can_focus = False  # the batches' table takes the keys when the panel is shown

    def show_status(self, fetched: StatusFetched) -> None:
        settlement = fetched.status.get("settlement", "off")
        summary = self.query_one("#settlement-summary", Static)
        if not isinstance(settlement, dict) or "trades" not in settlement:
            waiting = isinstance(settlement, dict)
            summary.update(f"relayer {settlement['state']}\nno state from the relayer yet"
                           if waiting else Text(OFF, style="dim"))  # fmt: skip
            self._fill(Text(), [], [])
            return
        summary.update(self._summary(settlement))
        rates = self._rates(fetched.status["uptime_s"], settlement["trades"])
        counts = Text()
        for state in STATES:
            rate = "" if rates is None else f"{rates[state]:10.2f} a second"
            counts.append(f"{state:<10}", style=STATE_STYLE[state])
            counts.append(f"{settlement['trades'][state]:>12,}{rate}\n")
        self._fill(counts, self._batches(settlement), self._failures(settlement))
        in_flight = settlement["batches_in_flight"]
        self.query_one("#settlement-in-flight", Static).update(
            f"batches in flight: the oldest, {in_flight[0]['id']}, in transaction "
            f"{in_flight[0]['tx_hash']}"
            if in_flight
            else "batches in flight: none"
        )

    def _fill(self, counts: Text, batches: list, failures: list) -> None:
        self.query_one("#settlement-counts", Static).update(counts)
        fill_table(self.query_one("#settlement-batches", DataTable), batches)
        fill_table(self.query_one("#settlement-failures", DataTable), failures)

    @staticmethod
    def _summary(settlement: dict[str, Any]) -> Text:
        text = Text(f"relayer {settlement['state']} · its state {settlement['age_s']:.1f} s old"
                    f" · chain head {settlement['head']:,}, base fee "
                    f"{gwei(settlement['base_fee_now'])} gwei · final after "
                    f"{settlement['confirmations']} blocks\n")  # fmt: skip
        if settlement["lag_p50_s"] is None:
            text.append("no trade confirmed yet", style="dim")
        else:
            text.append(
                f"settlement lag p50 {settlement['lag_p50_s']:.1f} s, p99 "
                f"{settlement['lag_p99_s']:.1f} s · {settlement['gas_per_trade']:,} gas and "
                f"{gwei(settlement['fee_per_trade_wei'])} gwei of fees a trade"
            )
        waiting = settlement["notices_unacknowledged"]
        if waiting:
            trades = "trade" if waiting == 1 else "trades"
            text.append(f"\n{waiting} failed {trades} not yet acted on by the node", style="red")
        return text

    def _rates(self, uptime: float, trades: dict[str, int]) -> dict[str, float] | None:
        """Trades a second in each state over the window (None until two answers span it)."""
        seen = self.seen
        if seen and uptime < seen[-1][0]:  # the node restarted: its uptime began again
            seen.clear()
        seen.append((uptime, trades))
        while uptime - seen[0][0] > RATE_WINDOW_S:
            seen.popleft()
        first_at, first = seen[0]
        span = uptime - first_at
        if span <= 0:
            return None
        return {state: max(0, trades[state] - first[state]) / span for state in STATES}

    @staticmethod
    def _batches(settlement: dict[str, Any]) -> list:
        rows = []
        for batch in settlement["batches_in_flight"]:
            mined = batch["block"] is not None
            depth = (f"{settlement['head'] - batch['block'] + 1}/{settlement['confirmations']}"
                     if mined else "mempool")  # fmt: skip
            paid = f"{gwei(batch['gas_price'])} / {gwei(batch['base_fee'])}" if mined else "-"
            rows.append((str(batch["id"]), [
                str(batch["id"]), str(batch["nonce"]), batch["state"], str(batch["trades"]),
                short_hash(batch["tx_hash"]), f"{gwei(batch['max_fee'])} / {gwei(batch['tip'])}",
                paid,
                depth,
            ]))  # fmt: skip
        return rows

    @staticmethod
    def _failures(settlement: dict[str, Any]) -> list:
        return [
            (str(failure["seq"]), [
                str(failure["seq"]), failure["market"], Text(failure["reason"] or "", "red"),
                short_hash(failure["tx_hash"]),
                "-" if failure["block"] is None else str(failure["block"]),
            ])
            for failure in settlement["failures"]
        ]  # fmt: skip

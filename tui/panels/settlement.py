"""Settlement: what the relayer has made of the node's signed trades on chain, from the node's
`status` (the relayer sends its node its state every second; how old it is is shown): trades
by settlement state with their rates over the last minute, settlement lag p50/p99, gas and fee
per trade, each batch in flight with its transaction, the fees offered and paid against its
block's base fee and its confirmation depth, and the latest failures with their reasons.

A node without a relayer of its own may still have its trades settled by one beside it (the
demo's runs in a child of the demo): the analytics process copies that relayer's state file
into its store (node/analytics/settlement_progress.py), and the panel then shows that copy,
asked through the node's `sql` (`PROGRESS_QUERY`): the signed trades by state, the latest
batch's transaction, the latest failures with their reasons, and which file the figures come
from and when it was read. "settlement off", with why there is nothing to show, when neither
has anything."""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..messages import SettlementProgressFetched, StatusFetched
from .base import Panel, fill_table

RATE_WINDOW_S = 60.0
"""Rates are over the counts seen in this last stretch of the node's uptime."""
GWEI = 10**9
STATES = ("pending", "submitted", "confirmed", "failed")
COPIED = "copied"
"""The analytics store's word for a round that read the relayer's file
(node/analytics/settlement_progress.py)."""
STATE_STYLE = {"pending": "", "submitted": "yellow", "confirmed": "green", "failed": "bold red"}
OFF = "settlement off ([settlement] enabled = false: trades are not settled on chain)"
FAILURES_SHOWN = 20
PROGRESS_QUERY = f"""
SELECT (SELECT {{'pending': count(*) FILTER (state = 'pending'),
                'submitted': count(*) FILTER (state = 'submitted'),
                'confirmed': count(*) FILTER (state = 'confirmed'),
                'failed': count(*) FILTER (state = 'failed')}}
        FROM settlement_states) AS trades,
       (SELECT max(batch) FROM settlement_progress) AS latest_batch,
       (SELECT arg_max(tx_hash, batch) FROM settlement_progress) AS latest_tx_hash,
       (SELECT coalesce(list({{'seq': seq, 'market': market, 'reason': reason,
                               'tx_hash': tx_hash, 'block': block}} ORDER BY seq DESC), [])
        FROM (SELECT * FROM settlement_states WHERE state = 'failed'
              ORDER BY seq DESC LIMIT {FAILURES_SHOWN})) AS failures,
       s.path, s.outcome, epoch(now() - s.copied_at) AS copied_s_ago
FROM (SELECT 1) LEFT JOIN settlement_progress_source s ON true
"""
"""The analytics store's copy of a relayer's progress, in one row: for a node with no relayer
of its own."""


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
        self.node_settles = False
        """The node's latest status names a relayer of its own."""
        self.copied: dict[str, Any] | None = None
        """The latest answer of the analytics store's copy (`PROGRESS_QUERY`'s row)."""
        self.copy_refused: str | None = None
        """Why the latest asking for the copy came to nothing (say, analytics off)."""

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
        self.node_settles = isinstance(settlement, dict)
        if not self.node_settles:
            self._show_copy()
            return
        self.query_one("#settlement-batches", DataTable).display = True
        summary = self.query_one("#settlement-summary", Static)
        if "trades" not in settlement:
            summary.update(f"relayer {settlement['state']}\nno state from the relayer yet")
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

    def show_settlement_progress(self, fetched: SettlementProgressFetched) -> None:
        result = fetched.result
        self.copied = dict(zip(result["columns"], result["rows"][0], strict=True))
        self.copy_refused = None
        if not self.node_settles:
            self._show_copy()

    def note_settlement_progress(self, why: str) -> None:
        self.copy_refused = why
        if not self.node_settles:
            self._show_copy()

    def _show_copy(self) -> None:
        """The analytics store's copy of a relayer's state, the node having no relayer; or,
        when it holds no trade to settle either, "settlement off" and why the copy is empty."""
        copied = self.copied
        trades = copied["trades"] if copied else {}
        summary = self.query_one("#settlement-summary", Static)
        if not any(trades.values()):
            why = self._why_no_copy()
            summary.update(Text(OFF + (f"\n{why}" if why else ""), style="dim"))
            self._fill(Text(), [], [])
            self.query_one("#settlement-in-flight", Static).update("batches in flight")
            return
        assert copied is not None  # (there are trades)
        summary.update(self._copy_summary(copied, self.copy_refused))
        self.query_one("#settlement-batches", DataTable).display = False  # (not in the copy)
        counts = Text()
        for state in STATES:
            counts.append(f"{state:<10}", style=STATE_STYLE[state])
            counts.append(f"{trades[state]:>12,}\n")
        self._fill(counts, [], self._failures(copied))
        batch = copied["latest_batch"]
        self.query_one("#settlement-in-flight", Static).update(
            "batches: none sent yet" if batch is None
            else f"batches: the latest, {batch}, in transaction {copied['latest_tx_hash']}"
        )  # fmt: skip

    def _why_no_copy(self) -> str:
        """Why the analytics store has no relayer's figures ("" before it was asked)."""
        copied = self.copied
        if self.copy_refused is not None:
            return f"no relayer's figures from the analytics store either: {self.copy_refused}"
        if copied is None:
            return ""
        if copied["outcome"] is None:
            return "the analytics store has not looked for a relayer's state file yet"
        if copied["outcome"] == "absent":
            return f"no relayer has settled from this home ({copied['path']} absent)"
        if copied["outcome"] == COPIED:
            return f"no signed trade to settle on chain yet ({copied['path']} read)"
        return f"{copied['path']}: {copied['outcome']}"

    @staticmethod
    def _copy_summary(copied: dict[str, Any], refused: str | None) -> Text:
        """Where the figures come from and how fresh they are; `refused`: why the latest
        asking for them came to nothing (the answer before is shown)."""
        text = Text("no relayer in this node: the figures are the analytics store's copy of\n"
                    f"{copied['path']}, ")  # fmt: skip
        age = copied["copied_s_ago"]
        text.append("never read" if age is None else f"read {age:.1f} s ago")
        if copied["outcome"] != COPIED:
            text.append(f" (now {copied['outcome']})", style="red")
        if refused is not None:
            text.append(f"\n{refused}", style="yellow")
        return text

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

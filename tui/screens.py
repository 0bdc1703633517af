"""The dashboard's pop-ups: the key table, a yes/no question before an action, and an alert's
evidence."""

from __future__ import annotations

import json
import time
from decimal import InvalidOperation
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Static

from .panels.base import plain

TRADES_SHOWN = 50


class HelpScreen(ModalScreen[None]):
    """Every key, generated from the same table as the bindings and the command palette."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", show=False)
    ]

    def __init__(self, keys: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Keys[/b]  (the command palette, ctrl+p, has them too)",
                         classes="label")  # fmt: skip
            yield DataTable(id="help-table", cursor_type="none", zebra_stripes=True)
            yield Static("escape closes", classes="label dim")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "does", "where")
        for key, description, where in self.keys:
            table.add_row(key, description, where)


class ConfirmScreen(ModalScreen[bool]):
    """A question before an action that changes the node; only `y` or the button says yes."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n,escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, id="question", classes="label")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class EvidenceScreen(ModalScreen[None]):
    """An alert as a reviewer reads it: who, where, the detector's evidence (the cycle, the
    statistic, the score) and its trades, which a worker fetches after the screen opens."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape,q", "dismiss", "Close", show=False)]

    def __init__(self, alert: dict[str, Any]) -> None:
        super().__init__()
        self.alert = alert

    def compose(self) -> ComposeResult:
        alert = self.alert
        with VerticalScroll(classes="dialog"):
            yield Static(self._heading(), classes="label")
            yield Static(_evidence_text(alert["evidence"]), classes="label")
            yield Static(f"trades ({alert['trades']}; the first {TRADES_SHOWN} shown):",
                         id="trades-title", classes="label")  # fmt: skip
            yield DataTable(id="evidence-trades", cursor_type="none")
            yield Static("escape closes", classes="label dim")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("seq", "time", "seller", "buyer", "price", "qty")

    def _heading(self) -> Text:
        alert = self.alert
        text = Text(f"{alert['detector']}", style="bold")
        text.append(f"  {alert['severity']}  {alert['market'] or 'all markets'}  {alert['time']}")
        if alert["label"]:
            text.append(f"  labelled {alert['label']}", style="italic")
        text.append(f"\nalert {alert['id']}\nwallets: {', '.join(alert['wallets'])}")
        return text

    def show_trades(self, result: dict) -> None:
        table = self.query_one(DataTable)
        for seq, when, seller, buyer, price, qty in result["rows"]:
            table.add_row(str(seq), when, seller, buyer, plain(price), plain(qty))

    def trades_unavailable(self, why: str) -> None:
        self.query_one("#trades-title", Static).update(Text(f"trades: not available ({why})"))


EPOCH_RANGES = ((1e9, 1e10, 1.0), (1e12, 1e13, 1e3), (1e18, 1e19, 1e9))
"""Numbers read as times: epoch seconds, milliseconds and nanoseconds of 2001 to 2286."""


def _evidence_text(evidence: str) -> Text:
    """The detector's evidence for a person: one `key: value` a line, times as local dates,
    lists as comma-separated values, nested maps indented; as Text, so brackets in it are
    never read as markup."""
    try:
        fields = json.loads(evidence)
    except (TypeError, ValueError):
        return Text(str(evidence))
    text = Text()
    _append_value(text, fields, indent="")
    return text


def _append_value(text: Text, value: Any, indent: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            text.append(f"{indent}{str(key).replace('_', ' ')}: ", style="bold")
            if isinstance(item, dict) or _is_table(item):
                text.append("\n")
                _append_value(text, item, indent + "  ")
            else:
                text.append(f"{_readable(item)}\n")
    elif _is_table(value):
        for row in value:
            cells = (f"{str(key).replace('_', ' ')} {_readable(item)}" for key, item in row.items())
            text.append(f"{indent}- {', '.join(cells)}\n")
    else:
        text.append(f"{indent}{_readable(value)}\n")


def _is_table(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _readable(value: Any) -> str:
    """A scalar or a list of scalars as a person reads it."""
    if isinstance(value, list):
        return ", ".join(_readable(item) for item in value) or "none"
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, int | float):
        for low, high, per_second in EPOCH_RANGES:
            if low <= value < high:
                return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value / per_second))
        return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"
    if isinstance(value, str):
        try:
            return plain(value)  # an amount: "12.500000000000" as 12.5
        except InvalidOperation:
            return value
    return str(value)

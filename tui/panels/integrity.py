"""Integrity: the alerts, newest first, coloured by severity; Enter opens an alert's evidence.

Each scan raises its alerts again over the history it looks at, so the same finding (detector,
market, wallets) comes back scan after scan; it is one row here, with how often it was raised
and its newest alert's severity, trades and evidence, and the latest label a reviewer gave it."""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static

from ..messages import AlertsFetched
from .base import Panel, fill_table, selected_key

ALERTS_SHOWN = 200
ALERTS_QUERY = f"""
SELECT arg_max(id, time) AS id, list(id ORDER BY time DESC) AS ids,
       strftime(max(time), '%Y-%m-%d %H:%M:%S') AS time, arg_max(severity, time) AS severity,
       detector, market, list_sort(wallets) AS wallets, count(*) AS raised,
       arg_max(len(trades), time) AS trades, arg_max(evidence, time) AS evidence,
       coalesce(arg_max(label, time) FILTER (WHERE label IS NOT NULL), '') AS label
FROM alerts GROUP BY detector, market, list_sort(wallets)
ORDER BY max(time) DESC, id LIMIT {ALERTS_SHOWN}
"""
SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "dim"}
WALLETS_SHOWN = 4


def short_wallet(wallet: str) -> str:
    """0x0cb1e29c…30f1 style: enough to tell wallets apart in a table."""
    return wallet if len(wallet) <= 14 else f"{wallet[:8]}…{wallet[-4:]}"


class IntegrityPanel(Panel):
    class Open(Message):
        """The operator asked for an alert's evidence."""

        def __init__(self, alert: dict) -> None:
            super().__init__()
            self.alert = alert

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alerts: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        yield Static("no alerts yet", id="alerts-summary", classes="label")
        yield DataTable(id="alerts-table", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "time", "severity", "detector", "market", "wallets", "trades", "raised", "label"
        )

    def show_alerts(self, fetched: AlertsFetched) -> None:
        result = fetched.result
        alerts = [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]
        self.alerts = {alert["id"]: alert for alert in alerts}
        rows = []
        for alert in alerts:
            wallets = [short_wallet(wallet) for wallet in alert["wallets"]]
            more = f" +{len(wallets) - WALLETS_SHOWN}" if len(wallets) > WALLETS_SHOWN else ""
            severity = Text(alert["severity"], style=SEVERITY_STYLE.get(alert["severity"], ""))
            rows.append((alert["id"], (
                alert["time"], severity,
                alert["detector"], alert["market"] or "", ", ".join(wallets[:WALLETS_SHOWN]) + more,
                str(alert["trades"]), f"{alert['raised']}x", alert["label"],
            )))  # fmt: skip
        fill_table(self.query_one(DataTable), rows)
        counts = Counter(alert["severity"] for alert in alerts)
        raised = sum(alert["raised"] for alert in alerts)
        newest = " (the newest)" if len(alerts) == ALERTS_SHOWN else ""
        summary = Text(f"{len(alerts)} findings{newest}, raised {raised} times: ")
        for severity, style in SEVERITY_STYLE.items():
            summary.append(f"{counts.get(severity, 0)} {severity}  ", style=style)
        summary.append("Enter: the evidence", style="dim")
        self.query_one("#alerts-summary", Static).update(summary)

    def note_alerts(self, why: str) -> None:
        self.query_one("#alerts-summary", Static).update(Text(f"alerts: {why}"))

    def selected_alert(self) -> dict | None:
        key = selected_key(self.query_one(DataTable))
        return None if key is None else self.alerts.get(key)

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        alert = self.alerts.get(event.row_key.value)
        if alert is not None:
            self.post_message(self.Open(alert))

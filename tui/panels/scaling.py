"""Scaling: the current recommendations with reason and confidence, and the load forecast
against its target."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..chart import Chart, Plot
from ..messages import ScaleFetched
from .base import Panel, fill_table, selected_key

ACTION_STYLE = {"scale_up": "bold yellow", "scale_down": "cyan", "warn": "red", "missing": "dim"}


class ScalingPanel(Panel):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reasons: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static("waiting for the node…", id="scale-summary", classes="label")
        yield DataTable(id="scale-table", cursor_type="row")
        yield Static("", id="scale-reason", classes="label")
        yield Chart(Plot("load"), style="yellow", id="forecast-chart")
        yield Static("", id="forecast-text", classes="label")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "action", "resource", "change", "policy", "confidence", "since", "reason"
        )

    def show_scale(self, fetched: ScaleFetched) -> None:
        result = fetched.scale
        advice = result["recommendations"]
        self.query_one("#scale-summary", Static).update(
            Text(
                f"scaling {result['scaling']}: "
                + (f"{len(advice)} recommendations" if advice else "no recommendation")
            )
        )
        rows = []
        self.reasons = {}
        for item in advice:
            change = (
                f"{item['current']:g} -> {item['desired']:g}"
                if item["current"] is not None and item["desired"] is not None
                else ""
            )
            key = f"{item['policy']}/{item['resource']}/{item['action']}"
            self.reasons[key] = f"{item['policy']}: {item['reason']}"
            rows.append((key, (
                Text(item["action"], style=ACTION_STYLE.get(item["action"], "")), item["resource"],
                change, item["policy"], f"{item['confidence']:.2f}",
                time.strftime("%H:%M:%S", time.localtime(item["since"])), item["reason"],
            )))  # fmt: skip
        table = self.query_one(DataTable)
        fill_table(table, rows)
        self._show_reason(selected_key(table))
        self._show_outlook(result.get("outlook"))

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_reason(event.row_key.value)

    def _show_reason(self, key: str | None) -> None:
        """The whole reason of the recommendation under the cursor (the table cuts it)."""
        self.query_one("#scale-reason", Static).update(Text(self.reasons.get(key or "", "")))

    def _show_outlook(self, outlook: dict | None) -> None:
        chart = self.query_one("#forecast-chart", Chart)
        text = self.query_one("#forecast-text", Static)
        if not outlook:
            chart.show(Plot("load forecast: none (no forecasting policy answers)"))
            text.update("")
            return
        steps, forecast = outlook["steps"], outlook["forecast"]
        step = outlook["step_s"]
        chart.show(
            Plot(
                f"{outlook['metric']} against its target {outlook['target']:g} (red line)",
                tuple(value for _, value in steps),
                target=outlook["target"],
                forecast=None if forecast is None else forecast[1],
                caption=f"{len(steps)} steps of {step:g} s"
                + ("" if forecast is None else f", then the forecast {_ahead(outlook)} ahead"),
            )
        )
        if forecast is None:
            text.update(Text(outlook.get("why", "")))
            return
        error = outlook["forecast_error"]
        crosses = forecast[1] > outlook["target"]
        text.update(
            f"forecast {forecast[1]:.3g} at {time.strftime('%H:%M', time.localtime(forecast[0]))}"
            f" ({'above' if crosses else 'under'} the target {outlook['target']:g}); recent "
            f"forecast error {'unknown yet' if error is None else f'{error:.0%}'}"
        )


def _ahead(outlook: dict) -> str:
    seconds = outlook["horizon_s"]
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"

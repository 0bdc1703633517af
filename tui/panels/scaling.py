"""Scaling: the current recommendations with reason and confidence, and the load forecast
against its target."""

from __future__ import annotations

import textwrap
import time

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..chart import Chart, Plot
from ..messages import ScaleFetched
from .base import Panel, fill_table

ACTION_STYLE = {"scale_up": "bold yellow", "scale_down": "cyan", "warn": "red", "missing": "dim"}


COLUMNS = ("action", "resource", "change", "policy", "confidence", "since", "reason")
MIN_REASON_WIDTH = 16


class ScalingPanel(Panel):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.last: ScaleFetched | None = None

    def compose(self) -> ComposeResult:
        yield Static("waiting for the node…", id="scale-summary", classes="label")
        yield DataTable(id="scale-table", cursor_type="row")
        yield Chart(Plot("load"), style="yellow", id="forecast-chart")
        yield Static("", id="forecast-text", classes="label")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)

    def on_resize(self) -> None:
        """The reasons are wrapped to the width there is: again when it changes (the table's
        columns made anew, since a column never narrows by itself)."""
        if self.last is None:
            return
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns(*COLUMNS)
        self.show_scale(self.last)

    def show_scale(self, fetched: ScaleFetched) -> None:
        self.last = fetched
        result = fetched.scale
        advice = result["recommendations"]
        self.query_one("#scale-summary", Static).update(
            Text(
                f"scaling {result['scaling']}: "
                + (f"{len(advice)} recommendations" if advice else "no recommendation")
            )
        )
        rows = []
        for item in advice:
            change = (
                f"{item['current']:g} -> {item['desired']:g}"
                if item["current"] is not None and item["desired"] is not None
                else ""
            )
            rows.append((f"{item['policy']}/{item['resource']}/{item['action']}", [
                Text(item["action"], style=ACTION_STYLE.get(item["action"], "")), item["resource"],
                change, item["policy"], f"{item['confidence']:.2f}",
                time.strftime("%H:%M:%S", time.localtime(item["since"])), item["reason"],
            ]))  # fmt: skip
        table = self.query_one(DataTable)
        width = self._reason_width(table, [cells for _, cells in rows])
        for _, cells in rows:
            cells[-1] = Text("\n".join(textwrap.wrap(cells[-1], width)))
        fill_table(table, rows)
        self._show_outlook(result.get("outlook"))

    def _reason_width(self, table: DataTable, rows: list[list]) -> int:
        """The room the other columns leave the reasons in the table, so that they wrap at
        words within it rather than run off its edge."""
        others = sum(
            max([len(COLUMNS[column]), *(Text(str(cells[column])).cell_len for cells in rows)])
            + 2 * table.cell_padding
            for column in range(len(COLUMNS) - 1)
        )
        room = table.scrollable_content_region.width - others - 2 * table.cell_padding
        return max(MIN_REASON_WIDTH, room - table.styles.scrollbar_size_vertical)

    def _show_outlook(self, outlook: dict | None) -> None:
        chart = self.query_one("#forecast-chart", Chart)
        text = self.query_one("#forecast-text", Static)
        if not outlook:
            chart.show(Plot("load forecast: none (no forecasting policy answers)"))
            text.update("")
            return
        steps, forecast = outlook["steps"], outlook["forecast"]
        chart.show(
            Plot(
                f"{outlook['metric']} against its target {outlook['target']:g} (red line)",
                tuple(value for _, value in steps),
                target=outlook["target"],
                forecast=None if forecast is None else forecast[1],
                caption="" if forecast is None else f", then the forecast {_ahead(outlook)} ahead",
                column_s=outlook["step_s"],
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

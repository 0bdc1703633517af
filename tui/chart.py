"""A text chart of one series over time, with an optional target line and forecast point.

Drawn with eighth blocks (one column per value, newest on the right) so it needs no plotting
library and fits any terminal; the widget redraws from the data it holds when it is resized.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

BLOCKS = " ▁▂▃▄▅▆▇█"
LABEL_WIDTH = 8
FORECAST_GAP = " ┊"


@dataclass(frozen=True)
class Plot:
    """What a Chart shows: `values` oldest first, `target` as a line, `forecast` as a bar
    after a gap (its time is in `caption`). With `column_s`, the seconds each value stands
    for, the caption starts with the time the columns drawn cover: the chart shows as many of
    the newest values as fit, so only the drawing knows how many that is."""

    title: str
    values: tuple[float, ...] = ()
    target: float | None = None
    forecast: float | None = None
    caption: str = ""
    column_s: float | None = None


def short(value: float) -> str:
    """A number in at most six characters: 950, 12.5k, 1.2M, 0.734."""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.1f}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.0f}k"
    if magnitude >= 1e3:
        return f"{value / 1e3:.1f}k"
    if magnitude >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"


def draw(plot: Plot, width: int, height: int, style: str = "green") -> Text:
    """The chart as text, `width` by `height` cells (title and caption lines included)."""
    rows = max(1, height - 2)
    room = max(1, width - LABEL_WIDTH - (len(FORECAST_GAP) + 1 if plot.forecast is not None else 0))
    values = plot.values[-room:]
    extra = [v for v in (plot.target, plot.forecast) if v is not None]
    top = max([*values, *extra, 0.0]) * 1.1 or 1.0
    text = Text(plot.title + (f"  now {short(values[-1])}" if values else "  no data yet"))
    text.append("\n")
    target_row = None if plot.target is None else min(rows - 1, int(plot.target / top * rows))
    for row in range(rows - 1, -1, -1):
        label = short(top * (row + 1) / rows) if row in (rows - 1, rows // 2) else ""
        text.append(f"{label:>{LABEL_WIDTH - 1}} ", style="dim")
        cells = [_cell(value, row, rows, top, style, target_row == row) for value in values]
        if plot.forecast is not None:
            cells.append((FORECAST_GAP, "dim"))
            cells.append(_cell(plot.forecast, row, rows, top, "bold magenta", target_row == row))
        for cell_style, run in itertools.groupby(cells, key=lambda cell: cell[1]):
            text.append("".join(character for character, _ in run), style=cell_style)
        text.append("\n")
    text.append(" " * LABEL_WIDTH + _caption(plot, len(values)), style="dim")
    return text


def _caption(plot: Plot, columns: int) -> str:
    if plot.column_s is None or not columns:
        return plot.caption
    each = "one column a second" if plot.column_s == 1 else f"one column per {_span(plot.column_s)}"
    return f"the last {_span(columns * plot.column_s)}, {each}{plot.caption}"


def _span(seconds: float) -> str:
    """Seconds as they read best: "70 s", "0.25 s", "12 min", "2.5 h"."""
    if seconds < 600:
        return f"{seconds:g} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def _cell(value: float, row: int, rows: int, top: float, style: str,
          on_target: bool) -> tuple[str, str]:  # fmt: skip
    """One cell of a row: its character and style. A row's cells of one style are appended
    as one span: a chart a terminal wide has a thousand cells, and Rich renders a Text span
    by span."""
    eighths = round(max(0.0, min(1.0, value / top * rows - row)) * 8)
    if eighths == 0 and on_target:
        return "─", "red"
    return BLOCKS[eighths], style


class Chart(Widget):
    """Shows a Plot; `plot` is replaced by the message handlers, the drawing happens here."""

    DEFAULT_CSS = "Chart { height: 8; }"

    def __init__(self, plot: Plot, style: str = "green", **kwargs) -> None:
        super().__init__(**kwargs)
        self.plot = plot
        self.bar_style = style

    def show(self, plot: Plot) -> None:
        self.plot = plot
        self.refresh()

    def render(self) -> Text:
        return draw(self.plot, self.size.width, self.size.height, self.bar_style)

"""What every panel shares: answers kept while hidden, and tables refreshed in place."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from rich.text import Text
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from ..messages import Fetched

Cell = str | Text


class Panel(Vertical):
    """A panel renders the answers of the sources that name it in the source table
    (tui/sources.py): `show_<source>` draws the source's message, `note_<source>`, where there
    is one, says why the source came to nothing. While it is not shown it only keeps the latest
    answer of each source, and renders them when it is shown again: the dashboard draws what
    the operator looks at."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waiting: dict[str, Fetched] = {}

    def receive(self, source: str, answer: Fetched, shown: bool) -> None:
        if shown:
            self.show(source, answer)
        else:
            self.waiting[source] = answer

    def shown(self) -> None:
        """The panel became visible: render what came meanwhile."""
        waiting, self.waiting = self.waiting, {}
        for source, answer in waiting.items():
            self.show(source, answer)

    def show(self, source: str, answer: Fetched) -> None:
        getattr(self, f"show_{source}")(answer)

    def note(self, source: str, why: str) -> None:
        """The node answered the source with an error (say, analytics off)."""
        noted = getattr(self, f"note_{source}", None)
        if noted is not None:
            noted(why)


def fill_table(table: DataTable, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
    """Show `rows` (key, cells) in `table`, each row as high as its cell of most lines. When
    the same rows are there in the same order and height, only changed cells are rewritten, so
    the cursor and scroll stay put; otherwise the table is rebuilt and the cursor goes back to
    the row it was on."""
    keys = [key for key, _ in rows]
    heights = [max((_lines(cell) for cell in cells), default=1) for _, cells in rows]
    shown = [row.key.value for row in table.ordered_rows]
    if keys == shown and heights == [row.height for row in table.ordered_rows]:
        for index, (_, cells) in enumerate(rows):
            current = table.get_row_at(index)
            for column, cell in enumerate(cells):
                if current[column] != cell:
                    table.update_cell_at(Coordinate(index, column), cell, update_width=True)
        return
    cursor = shown[table.cursor_row] if table.row_count and table.cursor_row < len(shown) else None
    table.clear()
    for (key, cells), height in zip(rows, heights, strict=True):
        table.add_row(*cells, key=key, height=height)
    if cursor in keys:
        table.move_cursor(row=keys.index(cursor), animate=False)


def _lines(cell: Cell) -> int:
    return str(cell).count("\n") + 1


def plain(decimal_text: str | None) -> str:
    """A decimal from the analytics store without its trailing zeros ("12.500000" -> "12.5")."""
    if not decimal_text:
        return ""
    return format(Decimal(decimal_text).normalize(), "f")


def bar(fraction: float, width: int, style: str) -> Text:
    """A horizontal bar of `width` cells filled to `fraction`, in eighths."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    text = Text("█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else ""), style=style)
    text.append(" " * (width - text.cell_len))
    return text


def selected_key(table: DataTable) -> str | None:
    """The key of the row under the cursor, if any."""
    if not table.row_count:
        return None
    return table.ordered_rows[table.cursor_row].key.value

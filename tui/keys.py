"""The key table: one row per key, from which the bindings, the help screen and the command
palette are all made."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from .panels import PANELS
from .panels.cluster import ClusterPanel

DASHBOARD_PANELS = (*PANELS, ("9", "cluster", "Cluster", ClusterPanel))
"""Key, id, title and widget of each panel of the dashboard, in key order: tui/panels'
table and the Cluster panel."""


@dataclass(frozen=True)
class Key:
    """One row of the key table: the bindings, the help screen and the command palette."""

    keys: str
    action: str
    description: str
    short: str
    """The footer's label when the descriptions do not all fit (tui/footer.py): a word or
    two, the help screen and the palette still give the whole description."""
    panel: str | None = None
    """The panel the key works in (None: everywhere)."""
    in_footer: bool = True
    """False for the panel keys: the tabs' labels show them, and the footer has room for the
    others only."""

    def binding(self) -> Binding:
        return Binding(self.keys, self.action, self.description, show=self.in_footer)

    @property
    def shown_keys(self) -> str:
        names = {"question_mark": "?", "plus": "+", "equals_sign": "=", "minus": "-",
                 "slash": "/"}  # fmt: skip
        return " ".join(names.get(key, key) for key in self.keys.split(","))


KEYS = (
    *(
        Key(key, f"show('{panel}')", title, panel, in_footer=False)
        for key, panel, title, _ in DASHBOARD_PANELS
    ),
    Key("slash", "filter_markets", "Filter markets by name", "filter"),
    Key("p", "pause", "Pause / resume", "pause"),
    Key("plus,equals_sign", "faster", "Refresh faster", "faster"),
    Key("minus", "slower", "Refresh slower", "slower"),
    Key("question_mark", "help", "Keys", "keys"),
    Key("q", "quit", "Quit", "quit"),
)
ADMIN_KEYS = (
    Key("h", "toggle_halt", "Halt / resume market", "halt", "markets"),
    Key("d", "toggle_peer", "Disable / enable peer", "disable", "overview"),
    Key("w", "label('wash')", "Label alert wash", "wash", "integrity"),
    Key("b", "label('benign')", "Label alert benign", "benign", "integrity"),
)
NOT_BINDINGS = (
    ("enter", "Open the market's book / the alert's evidence", "Markets, Integrity"),
    ("ctrl+p", "Command palette", "everywhere"),
)
"""Keys the help screen lists that are not bindings of the app."""


def key_table(keys: tuple[Key, ...]) -> list[tuple[str, str, str]]:
    """The help screen's rows: keys, what they do, and where."""
    titles = {panel: title for _, panel, title, _ in DASHBOARD_PANELS}
    rows = [(k.shown_keys, k.description, titles.get(k.panel or "", "everywhere"))
            for k in keys]  # fmt: skip
    return rows + list(NOT_BINDINGS)

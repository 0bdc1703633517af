"""Cluster: every node of the market directory the dashboard's node is a member of, with its
endpoints, whether it answers, its load (orders/s, the matching thread's busy share, resting
orders: each node's own `status` and `metrics`) and the markets it serves, with any move under
way and the move's id (docs/cluster.md). A node that does not answer is shown as not answering,
with why, and no figures: nothing is carried over from an older answer. A dashboard whose node
is in no cluster says so, and how to make one."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..messages import ClusterFetched
from .base import Cell, Panel, fill_table

NOT_IN_A_CLUSTER = (
    "not in a cluster: this node's home is not one of a cluster folder's nodes.\n"
    "`mnode cluster up --cluster DIR` starts a local cluster (docs/cluster.md); "
    "`mnode dashboard --home DIR/nodes/n1` shows it here."
)
COLUMNS = ("node", "state", "orders/s", "matching", "resting", "markets", "endpoints")


class ClusterPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("asking the cluster…", id="cluster-summary", classes="label")
        yield DataTable(id="cluster-table", cursor_type="row")
        yield Static("", id="cluster-notes", classes="label")

    def on_mount(self) -> None:
        self.query_one("#cluster-table", DataTable).add_columns(*COLUMNS)

    def show_cluster(self, fetched: ClusterFetched) -> None:
        cluster = fetched.cluster
        summary = self.query_one("#cluster-summary", Static)
        table = self.query_one("#cluster-table", DataTable)
        notes = self.query_one("#cluster-notes", Static)
        if cluster["folder"] is None:
            summary.update(Text(NOT_IN_A_CLUSTER))
            table.display = False
            notes.update("")
            return
        table.display = True
        if "error" in cluster:  # the rows stay, greyed, as last read
            summary.update(Text(f"cluster {cluster['folder']}: the directory did not answer "
                                f"({cluster['error']}); the nodes as last read",
                                style="bold red"))  # fmt: skip
            table.set_class(True, "old")
            return
        table.set_class(False, "old")
        directory, load = cluster["directory"], cluster["load"]
        answering = sum(1 for node in load.values() if node["answering"])
        read = time.strftime("%H:%M:%S", time.localtime(cluster["time"]))
        summary.update(Text(
            f"cluster {cluster['folder']} · directory version {directory['version']:,} · "
            f"{len(directory['nodes'])} nodes, {answering} answering · "
            f"{len(directory['markets'])} markets · read {read}"
        ))  # fmt: skip
        fill_table(table, [
            (name, _row(name, entry, load[name], directory["markets"], cluster["node"]))
            for name, entry in sorted(directory["nodes"].items())
        ])  # fmt: skip
        notes.update(_notes(directory["markets"], load))


def _row(name: str, entry: dict, load: dict, markets: dict, own: str) -> tuple[Cell, ...]:
    node = Text(name, style="bold")
    if name == own:
        node.append(" (this)", style="dim")
    endpoints = (f"orders {entry['orders']}\nmarket data {entry['market_data']}\n"
                 f"admin {entry['admin']}")  # fmt: skip
    served = _markets_of(name, markets)
    if not load["answering"]:
        return node, Text("not answering", style="bold red"), "", "", "", served, endpoints
    rate, busy = load["orders_per_s"], load["matching_busy"]
    return (
        node,
        Text("up", style="green"),
        _rate(rate, load["sampler_on"]),
        "" if busy is None else f"{busy:.0%} busy",
        f"{load['resting_orders']:,}",
        served,
        endpoints,
    )


def _rate(orders_per_s: float | None, sampler_on: bool) -> str:
    if orders_per_s is not None:
        return f"{orders_per_s:,.0f}"
    return "no sample yet" if sampler_on else "sampler off"


def _markets_of(name: str, markets: dict) -> str:
    """The markets the directory gives node `name`, one a line, with a move under way marked
    on both of its nodes."""
    lines = []
    for market, entry in sorted(markets.items()):
        destination = entry.get("moving_to")
        if entry["node"] == name:
            lines.append(market if destination is None else f"{market} → {destination}")
        elif destination == name:
            lines.append(f"{market} ← {entry['node']}")
    return "\n".join(lines) or "none"


def _notes(markets: dict, load: dict) -> Text:
    """The moves under way with their ids, and why each node not answering did not."""
    text = Text()
    for market, entry in sorted(markets.items()):
        if entry.get("moving_to"):
            text.append(f"moving: {market} from {entry['node']} to {entry['moving_to']}, "
                        f"move {entry.get('move') or '(no id)'}\n", style="yellow")  # fmt: skip
    for name, node in sorted(load.items()):
        if not node["answering"]:
            text.append(f"{name} not answering: {node['why']}\n", style="red")
    return text or Text("no move under way; every node answers", style="dim")

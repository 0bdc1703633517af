"""The dashboard's Cluster panel (key 9): against a real local cluster (one NATS server, two
nodes), its directory and each node's load shown, a move marked in the directory, then a node
stopped; the directory gone (a posted answer); the panel of a dashboard not in a cluster; key 9
and the palette; and SVG snapshots of a recorded answer (a move under way, a node not
answering) and of the not-in-a-cluster panel."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from textual.command import CommandList
from textual.widgets import DataTable, Static

from marketnode.cli.dashboard import cluster_link
from marketnode.node.client import ClientError, address_of_home
from marketnode.node.cluster.directory import (
    Directory,
    MarketEntry,
    read_directory,
    write_directory,
)
from marketnode.node.cluster.local import LocalCluster, up
from marketnode.node.cluster.processes import running, stop
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.tui.app import Dashboard
from marketnode.tui.keys import KEYS, key_table
from marketnode.tui.links import NodeLinks
from marketnode.tui.messages import ClusterFetched, StatusFetched, Unreachable
from marketnode.tui.sources import NodeReader

SIZE = (132, 42)
ANSWERS = json.loads((Path(__file__).parent / "data" / "dashboard_answers.json").read_text())
WAIT_S = 30.0


async def until(pilot, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"waited {WAIT_S:g} s for {what}"
        await pilot.pause(0.05)


def rows(app: Dashboard) -> dict[str, list[str]]:
    """The Cluster panel's table, by node (the row's key)."""
    table = app.query_one("#cluster-table", DataTable)
    return {row.key.value: [str(cell) for cell in table.get_row(row.key)]
            for row in table.ordered_rows}  # fmt: skip


def sampled(app: Dashboard) -> set[str]:
    """The nodes shown up with their first per-second sample."""
    return {node for node, cells in rows(app).items() if cells[1] == "up" and "busy" in cells[3]}


def shown(app: Dashboard, part: str) -> str:
    return str(app.query_one(f"#cluster-{part}", Static).content)


def test_the_cluster_panel_follows_a_real_cluster(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster")
    record = up(cluster, servers=1, nodes=2)
    home = cluster.home("n1")
    key = load_key_pair(home.keys_path(home.config()) / f"{OPERATOR}.key_secret")
    app = Dashboard(lambda: address_of_home(home), key, refresh_s=0.25,
                    cluster=cluster_link(home.path))  # fmt: skip
    n2 = record.nodes[1].process
    assert n2 is not None

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("9")
            await until(pilot, lambda: sampled(app) == {"n1", "n2"}, "both nodes' load")
            table = rows(app)
            assert table["n1"][0] == "n1 (this)" and table["n2"][0] == "n2"
            assert [table[name][1] for name in ("n1", "n2")] == ["up", "up"]
            directory = await asyncio.to_thread(read_directory, record.urls)
            for name, entry in directory.nodes.items():
                assert f"admin {entry.admin}" in table[name][6]
                served = sorted(m for m, e in directory.markets.items() if e.node == name)
                assert table[name][5].splitlines() == served
                assert table[name][4] == "0" and "busy" in table[name][3]
            assert "2 nodes, 2 answering · 3 markets" in shown(app, "summary")

            market, entry = sorted(directory.markets.items())[0]
            destination = "n2" if entry.node == "n1" else "n1"
            move = uuid.uuid4().hex[:12]
            marked = Directory(directory.nodes, {
                **directory.markets, market: MarketEntry(entry.node, destination, move)},
                directory.version)  # fmt: skip
            await asyncio.to_thread(write_directory, record.urls, marked)
            await until(pilot, lambda: f"move {move}" in shown(app, "notes"), "the move")
            assert f"moving: {market} from {entry.node} to {destination}" in shown(app, "notes")
            assert f"{market} → {destination}" in rows(app)[entry.node][5]
            assert f"{market} ← {entry.node}" in rows(app)[destination][5]

            await asyncio.to_thread(stop, n2)
            await until(pilot, lambda: rows(app)["n2"][1] == "not answering", "n2 stopped")
            assert rows(app)["n2"][2:5] == ["", "", ""], "no figure of an older answer"
            assert rows(app)["n1"][1] == "up"
            assert "n2 not answering: " in shown(app, "notes")
            assert not app.query_one("#banner").has_class("shown"), "n1 still answers"

    try:
        asyncio.run(drive())
    finally:
        for process in [record.servers[0].process, *(node.process for node in record.nodes)]:
            if process is not None and running(process):
                stop(process)


def nowhere():
    raise ClientError("not used: this dashboard does not poll", unreachable=True)


def test_a_dashboard_not_in_a_cluster_says_so_and_how_to_make_one():
    reader = NodeReader(NodeLinks(nowhere, None), lambda: 1.0)
    answer = reader.cluster("cluster")
    assert answer == {"folder": None}
    app = Dashboard(nowhere, None, poll=False)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("9")
            app.post_message(ClusterFetched(answer))
            await until(pilot, lambda: "not in a cluster" in shown(app, "summary"), "the note")
            assert "mnode cluster up" in shown(app, "summary")
            assert not app.query_one("#cluster-table").display

    asyncio.run(drive())


def test_key_9_and_the_palette_show_the_cluster_panel():
    assert ("9", "Cluster", "everywhere") in key_table(KEYS)
    app = Dashboard(nowhere, None, poll=False)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("9")
            assert app.active_panel == "cluster"
            await pilot.press("1")
            await pilot.press("ctrl+p")
            await pilot.press(*"Cluster")
            await until(pilot, lambda: bool(app.screen.query(CommandList).first().option_count),
                        "the palette's entry")  # fmt: skip
            await pilot.press("enter")
            await until(pilot, lambda: app.active_panel == "cluster", "the panel")

    asyncio.run(drive())


def test_the_directory_gone_greys_the_rows_and_the_banner_stays_the_nodes():
    """The cluster's answers come from its directory and nodes, not from the dashboard's own
    node: with that node gone the banner stays; with the directory gone the rows stay, greyed,
    and the summary says why."""
    app = Dashboard(nowhere, None, poll=False)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("9")
            app.post_message(Unreachable("status", "no answer"))
            app.post_message(ClusterFetched(RECORDED))
            await until(pilot, lambda: set(rows(app)) == {"n1", "n2", "n3"}, "the nodes")
            assert app.query_one("#banner").has_class("shown")
            gone = {key: RECORDED[key] for key in ("folder", "node", "time")}
            app.post_message(ClusterFetched({**gone, "error": "cannot reach the directory"}))
            await until(pilot, lambda: app.query_one("#cluster-table").has_class("old"), "grey")
            assert "the directory did not answer (cannot reach the directory)" in shown(
                app, "summary"
            )
            assert set(rows(app)) == {"n1", "n2", "n3"}
            app.post_message(StatusFetched(ANSWERS["status"]))
            await until(pilot, lambda: not app.query_one("#banner").has_class("shown"),
                        "the banner gone")  # fmt: skip

    asyncio.run(drive())


ENDPOINTS = {name: {"orders": f"tcp://127.0.0.1:4{port}1", "market_data": f"tcp://127.0.0.1:4{port}2",
                    "admin": f"tcp://127.0.0.1:4{port}3", "server_key": "k" * 40}
             for name, port in (("n1", "000"), ("n2", "100"), ("n3", "200"))}  # fmt: skip
RECORDED = {
    "folder": "./cluster", "node": "n1", "time": 1795873154.0,
    "directory": {
        "version": 12, "nodes": ENDPOINTS,
        "markets": {"PUNK-ETH": {"node": "n1"},
                    "LAND-ETH": {"node": "n1", "moving_to": "n2", "move": "3f9c1a7be204"},
                    "DEED-ETH": {"node": "n2"}},
    },
    "load": {
        "n1": {"answering": True, "seq": 1542704, "resting_orders": 7220, "halted": ["LAND-ETH"],
               "sampler_on": True, "orders_per_s": 1834.5, "matching_busy": 0.71},
        "n2": {"answering": True, "seq": 88120, "resting_orders": 310, "halted": [],
               "sampler_on": True, "orders_per_s": 212.0, "matching_busy": 0.08},
        "n3": {"answering": False, "why": "no answer within 2 s (tcp://127.0.0.1:42003)"},
    },
}  # fmt: skip
"""A cluster answer as `NodeReader.cluster` gives it: three nodes, a move under way, one node
not answering."""


def test_the_cluster_panel_snapshot(snap_compare, utc):
    async def recorded(pilot) -> None:
        pilot.app.post_message(ClusterFetched(RECORDED))
        await pilot.pause()

    assert snap_compare(Dashboard(nowhere, None, poll=False), press=["9"], terminal_size=SIZE,
                        run_before=recorded)  # fmt: skip


def test_the_not_in_a_cluster_snapshot(snap_compare):
    async def recorded(pilot) -> None:
        pilot.app.post_message(ClusterFetched({"folder": None}))
        await pilot.pause()

    assert snap_compare(Dashboard(nowhere, None, poll=False), press=["9"], terminal_size=SIZE,
                        run_before=recorded)  # fmt: skip

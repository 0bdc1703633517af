"""The Settlement panel of a node with no relayer of its own (the demo's case), drawn from the
analytics store's copy of a relayer's state file: real signed trades journaled and followed
into a real DuckDB file, a real state file written by the relayer's store code and copied, and
the panel's query answered by that file as the analytics process answers it. When there is no
copy either, the panel says settlement is off and why the copy is empty. Through a real
node: its analytics process copies a state file in its home, which the panel asks it for. And
an SVG snapshot of the copy shown."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import msgspec
from test_analytics_settlement import FIRST, SECOND, SPEC
from textual.widgets import DataTable, Static

from marketnode.node.analytics.duckdb_store import AnalyticsStore
from marketnode.node.analytics.follower import JournalFollower
from marketnode.node.analytics.service import plain
from marketnode.node.analytics.settlement_progress import STATE_FILE, RelayerProgress
from marketnode.node.chain.settlement_store import (
    PendingTrade,
    Sent,
    SettlementStore,
    state_path,
)
from marketnode.node.client import address_of_home
from marketnode.node.core.commands import PeerCommand
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store
from marketnode.tui.app import Dashboard
from marketnode.tui.messages import Refused, SettlementProgressFetched, StatusFetched
from marketnode.tui.panels.settlement import PROGRESS_QUERY
from marketnode.tui.sources import ANALYTICS_SLOW

SIZE = (150, 44)
WAIT_S = 60.0
STATUS = json.loads((Path(__file__).parent / "data" / "dashboard_answers.json").read_text())[
    "status"
]  # a node's status with no relayer of its own (no `settlement` in it: off)
TX_HASH = "0x" + "5e" * 32


def nowhere():
    raise AssertionError("this dashboard does not poll")


def progress_answer(home: Path, journal: bool, relayer: bool) -> dict:
    """PROGRESS_QUERY's answer over a store that followed the signed trades (seqs 4 and 8) of
    `journal`, with a relayer's state file (4 confirmed, 8 failed) copied when `relayer`."""
    home.mkdir(exist_ok=True)
    analytics = AnalyticsStore(home / "analytics.duckdb")
    try:
        if journal:
            store = Store(home / "data", map_size=16 << 20, sync="none")
            durable = DurableEngine(store)
            durable.configure([SPEC])
            for commands in (FIRST, SECOND):
                durable.submit([msgspec.convert(command, PeerCommand) for command in commands])
            JournalFollower(store, analytics).sync()
            store.close()
        if relayer:
            state = SettlementStore(state_path(home))
            now = time.time()
            state.add_trades([PendingTrade(seq, SPEC.symbol, "0xb", "0xa", 100, 2, [seq], now,
                                           now + 30) for seq in (4, 8)], position=12)  # fmt: skip
            batch = state.add_batch([4, 8], nonce=0, sent=Sent(TX_HASH, "0x", 2, 1, now))
            state.mark_mined(batch, TX_HASH, 41, "0xb41", 200_000, 2, 1)
            state.finish(batch, settled=[4], skipped={8: "seller_transfer_failed"})
            state.close()
        RelayerProgress(home, analytics.connection).copy()
        cursor = analytics.connection.execute(PROGRESS_QUERY)
        columns = [column[0] for column in cursor.description]
        return {"columns": columns, "rows": [[plain(value) for value in cursor.fetchone()]]}
    finally:
        analytics.close()


def shown(app: Dashboard, part: str) -> str:
    return str(app.query_one(f"#settlement-{part}", Static).content)


def failures(app: Dashboard) -> list[list[str]]:
    table = app.query_one("#settlement-failures", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def test_the_panel_shows_the_copied_progress_of_a_relayer_beside_the_node(tmp_path):
    answer = progress_answer(tmp_path, journal=True, relayer=True)
    app = Dashboard(nowhere, None, poll=False)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("7")
            app.post_message(StatusFetched(STATUS))
            app.post_message(SettlementProgressFetched(answer))
            await pilot.pause()
            summary = shown(app, "summary")
            assert "no relayer in this node" in summary and "read " in summary
            assert str(tmp_path.joinpath(*STATE_FILE)) in summary.replace("\n", "")
            counts = {line.split()[0]: line.split()[1] for line in
                      shown(app, "counts").splitlines()}  # fmt: skip
            assert counts == {"pending": "0", "submitted": "0", "confirmed": "1", "failed": "1"}
            assert shown(app, "in-flight") == f"batches: the latest, 1, in transaction {TX_HASH}"
            assert failures(app) == [["8", SPEC.symbol, "seller_transfer_failed",
                                      f"{TX_HASH[:10]}…{TX_HASH[-6:]}", "41"]]  # fmt: skip

            app.post_message(StatusFetched(STATUS))  # the node's status again: the copy stays
            app.post_message(Refused("settlement_progress", ANALYTICS_SLOW))
            await pilot.pause()
            summary = shown(app, "summary")
            assert "no relayer in this node" in summary and summary.endswith(ANALYTICS_SLOW)
            assert len(failures(app)) == 1, "the last answer stays on screen"

    asyncio.run(drive())


def test_with_neither_a_relayer_nor_a_copy_the_panel_says_off_and_why(tmp_path):
    no_file = progress_answer(tmp_path / "a", journal=False, relayer=False)
    no_trade = progress_answer(tmp_path / "b", journal=False, relayer=True)
    app = Dashboard(nowhere, None, poll=False)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("7")
            app.post_message(StatusFetched(STATUS))
            await pilot.pause()
            assert shown(app, "summary").startswith("settlement off")
            app.post_message(SettlementProgressFetched(no_file))
            await pilot.pause()
            summary = shown(app, "summary")
            assert summary.startswith("settlement off") and "absent" in summary
            assert "no relayer has settled from this home" in summary
            app.post_message(SettlementProgressFetched(no_trade))  # its trades not journaled
            await pilot.pause()
            assert "no signed trade to settle on chain yet" in shown(app, "summary")
            app.post_message(Refused("settlement_progress", "analytics off"))
            await pilot.pause()
            summary = shown(app, "summary")
            assert summary.startswith("settlement off") and summary.endswith("analytics off")
            assert failures(app) == [] and shown(app, "counts") == ""

    asyncio.run(drive())


def test_a_running_nodes_analytics_copies_the_file_and_the_panel_asks_for_it(node_factory):
    running = node_factory("[analytics]\nenabled = true\ninterval_ms = 50\n")
    state = SettlementStore(state_path(running.home.path))  # a relayer beside the node
    now = time.time()
    state.add_trades([PendingTrade(seq, SPEC.symbol, "0xb", "0xa", 100, 2, [seq], now, now + 30)
                      for seq in (4, 8)], position=12)  # fmt: skip
    state.close()
    home = running.home
    key = load_key_pair(home.keys_path(home.config()) / f"{OPERATOR}.key_secret")
    app = Dashboard(lambda: address_of_home(home), key, refresh_s=0.25)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("7")
            deadline = time.monotonic() + WAIT_S
            while "read)" not in shown(app, "summary"):  # its trades are not in this journal
                assert time.monotonic() < deadline, shown(app, "summary")
                await pilot.pause(0.1)
            assert "no signed trade to settle on chain yet" in shown(app, "summary")

    asyncio.run(drive())
    copied = running.admin().call("sql", query="SELECT seq, state FROM settlement_progress")
    assert sorted(copied["rows"]) == [[4, "pending"], [8, "pending"]]


def test_the_copied_progress_snapshot(snap_compare, tmp_path):
    answer = progress_answer(tmp_path, journal=True, relayer=True)
    row = dict(zip(answer["columns"], answer["rows"][0], strict=True))
    row |= {"path": "/srv/node/settlement/state.sqlite", "copied_s_ago": 1.25}  # as recorded
    recorded = {"columns": list(row), "rows": [list(row.values())]}

    async def posted(pilot) -> None:
        pilot.app.post_message(StatusFetched(STATUS))
        pilot.app.post_message(SettlementProgressFetched(recorded))
        await pilot.pause()

    app = Dashboard(nowhere, None, poll=False)
    assert snap_compare(app, press=["7"], terminal_size=SIZE, run_before=posted)

"""SVG snapshots of every panel, the narrow layout, the pop-ups and the disconnected state,
rendered from recorded answers of a demo node (tests/data/dashboard_answers.json, made by
tests/dashboard_answers.py). The dashboard polls nothing here: the answers are posted to it as
its workers would post them, each source's in its own message, so a snapshot changes only when
the rendering does.

After a deliberate change: `pytest tests/test_dashboard_snapshots.py --snapshot-update`, then
look at every changed SVG under tests/__snapshots__/ before committing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketnode.node.client import ClientError
from marketnode.tui.app import AdminDashboard, Dashboard
from marketnode.tui.messages import EvidenceFetched, Unreachable
from marketnode.tui.panels.integrity import IntegrityPanel
from marketnode.tui.sources import SOURCE_NAMED

ANSWERS = json.loads((Path(__file__).parent / "data" / "dashboard_answers.json").read_text())
SIZE = (132, 42)

pytestmark = pytest.mark.usefixtures("utc")
"""Times are shown in local time: the snapshots are taken in UTC (conftest's `utc`)."""


def nowhere():
    raise ClientError("not used: this dashboard does not poll", unreachable=True)


def recorded(admin: bool = False) -> Dashboard:
    return (AdminDashboard if admin else Dashboard)(nowhere, None, poll=False)


async def answered(pilot) -> None:
    for source in ("status", "metrics", "peers", "markets", "market_stats", "book", "tape",
                   "alerts", "scale"):  # fmt: skip
        pilot.app.post_message(SOURCE_NAMED[source].fetched(ANSWERS[source]))
    await pilot.pause()


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5", "6", "7"])
def test_each_panel(snap_compare, key):
    assert snap_compare(recorded(), press=[key], terminal_size=SIZE, run_before=answered)


def test_the_book_panel_stacks_its_ladder_and_tape_on_a_narrow_terminal(snap_compare):
    assert snap_compare(recorded(), press=["3"], terminal_size=(80, 40), run_before=answered)


def test_the_help_screen(snap_compare):
    assert snap_compare(recorded(admin=True), press=["question_mark"], terminal_size=SIZE)


def test_an_alerts_evidence(snap_compare):
    async def open_ring_alert(pilot) -> None:
        await answered(pilot)
        await pilot.press("4")
        alert = pilot.app.query_one(IntegrityPanel).alerts[ANSWERS["evidence"]["alert"]]
        pilot.app.post_message(IntegrityPanel.Open(alert))
        await pilot.pause()
        pilot.app.post_message(EvidenceFetched(**ANSWERS["evidence"]))
        await pilot.pause()

    assert snap_compare(recorded(), terminal_size=SIZE, run_before=open_ring_alert)


def test_an_admin_action_asks_first(snap_compare):
    assert snap_compare(
        recorded(admin=True), press=["2", "h"], terminal_size=SIZE, run_before=answered
    )


def test_disconnected_keeps_the_last_data_greyed(snap_compare):
    async def gone(pilot) -> None:
        await answered(pilot)
        pilot.app.post_message(Unreachable("status", "no answer"))
        await pilot.pause()

    assert snap_compare(recorded(), press=["2"], terminal_size=SIZE, run_before=gone)

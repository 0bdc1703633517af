"""The dashboard against a real node: panels by number keys, live data, the disconnected state."""

from __future__ import annotations

import asyncio

from conftest import start_node
from textual.widgets import DataTable, Static, TabbedContent

from marketnode.node.client import address_of_home
from marketnode.tui.app import PANELS, Dashboard


async def settle(pilot, condition, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        await pilot.pause(0.1)
        if condition():
            return
    raise AssertionError("timed out")


def test_panels_follow_the_number_keys_and_fill_with_live_data(running_node):
    from marketnode.node.keys import OPERATOR, load_key_pair

    config = running_node.home.config()
    key = load_key_pair(running_node.home.keys_path(config) / f"{OPERATOR}.key_secret")
    client = running_node.client("alice")
    client.submit([{"op": "new", "market": "PUNK-ETH", "id": 1, "owner": "0xa11ce",
                    "side": "buy", "price": "100", "qty": "2"}])  # fmt: skip
    home = running_node.home
    app = Dashboard(lambda: address_of_home(home), key, refresh_s=0.25)

    async def drive() -> None:
        async with app.run_test(size=(140, 40)) as pilot:
            tabs = app.query_one(TabbedContent)
            for key_name, panel, _ in reversed(PANELS):
                await pilot.press(key_name)
                assert tabs.active == panel
            markets = app.query_one("#markets-table", DataTable)
            await settle(pilot, lambda: markets.row_count >= 3)
            assert [str(markets.get_row_at(i)[0]) for i in range(3)] == sorted(
                str(markets.get_row_at(i)[0]) for i in range(3)
            )
            book = app.query_one("#book-table", DataTable)
            await settle(pilot, lambda: book.row_count >= 1)
            overview = app.query_one("#overview-text", Static)
            await settle(pilot, lambda: "orders/s" in str(overview.content))
            await pilot.press("p")
            assert app.paused
            await pilot.press("p", "minus")
            assert not app.paused and app.refresh_s == 0.5
            running_node.stop()  # the node goes away underneath
            banner = app.query_one("#banner")
            await settle(pilot, lambda: banner.has_class("shown"))
            assert str(banner.content) == "disconnected, retrying"
            assert app.query_one("#overview").has_class("stale")  # the last data, greyed
            again = start_node(home)  # and comes back (on new ports: node.json says which)
            try:
                await settle(pilot, lambda: not banner.has_class("shown"))
                assert not app.query_one("#overview").has_class("stale")
            finally:
                again.stop()

    asyncio.run(drive())


def test_the_demo_in_the_dashboard_shows_throughput_and_the_rings_alert(tmp_path):
    """The demo's node, flow and wash ring, watched by the dashboard (in run_test)."""
    from marketnode.node.demo import RING, run_demo
    from marketnode.node.keys import OPERATOR, load_key_pair

    seen: dict[str, bool] = {}

    def watch(home) -> None:
        config = home.config()
        key = load_key_pair(home.keys_path(config) / f"{OPERATOR}.key_secret")
        app = Dashboard(lambda: address_of_home(home), key, refresh_s=0.5)

        async def drive() -> None:
            async with app.run_test(size=(160, 45)) as pilot:
                await settle(
                    pilot,
                    lambda: any(s["orders_per_s"] > 0 for s in app.history),
                    timeout_s=20,
                )
                seen["throughput"] = True
                await pilot.press("4")
                table = app.query_one("#alerts-table", DataTable)

                def ring_listed() -> bool:
                    rows = [table.get_row_at(i) for i in range(table.row_count)]
                    return any(RING[0] in str(row[4]) for row in rows)

                await settle(pilot, ring_listed, timeout_s=40)
                seen["ring_alert"] = True

        asyncio.run(drive())

    report = run_demo(tmp_path / "home", 10, 200, watch=watch)
    assert seen == {"throughput": True, "ring_alert": True}
    assert report.summary()["ring_flagged"]


def test_dashboard_on_a_missing_home_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from marketnode.cli.main import app

    result = CliRunner().invoke(app, ["dashboard", "--home", str(tmp_path / "nowhere")])
    assert result.exit_code == 3
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("mnode: ")

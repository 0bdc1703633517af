"""The dashboard against a real node: panels by number keys, live data, filter, tape, help,
palette, the disconnected state and the reconnect, and the confirmed actions of `--admin`."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import start_node
from textual.widgets import DataTable, Footer, Static, TabbedContent
from typer.testing import CliRunner

from marketnode.cli.main import app as cli
from marketnode.node.client import RemoteAddress, address_of_home
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.tui.app import ADMIN_KEYS, KEYS, AdminDashboard, Dashboard
from marketnode.tui.chart import LABEL_WIDTH, Chart
from marketnode.tui.footer import KeyFooter
from marketnode.tui.messages import (
    BookFetched,
    MarketsFetched,
    MetricsFetched,
    ScaleFetched,
    TapeFetched,
    Unreachable,
)
from marketnode.tui.panels import PANELS
from marketnode.tui.panels.book import STALE_AFTER_S
from marketnode.tui.screens import ConfirmScreen, HelpScreen, _evidence_text

SIZE = (140, 42)


async def settle(pilot, condition, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        await pilot.pause(0.1)
        if condition():
            return
    raise AssertionError("timed out")


def operator_key(home):
    return load_key_pair(home.keys_path(home.config()) / f"{OPERATOR}.key_secret")


def dashboard_on(running_node, admin: bool = False) -> Dashboard:
    home = running_node.home
    kind = AdminDashboard if admin else Dashboard
    return kind(lambda: address_of_home(home), operator_key(home), refresh_s=0.25)


def cells(table: DataTable, column: int) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


def new_order(number: int, side: str, price: str, owner: str = "0xa11ce") -> dict:
    return {"op": "new", "market": "PUNK-ETH", "id": number, "owner": owner, "side": side,
            "price": price, "qty": "2"}  # fmt: skip


def test_panels_follow_the_number_keys_and_fill_with_live_data(running_node):
    client = running_node.client("alice")
    client.submit([new_order(1, "buy", "100")])
    app = dashboard_on(running_node)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            tabs = app.query_one(TabbedContent)
            for key_name, panel, _, _ in reversed(PANELS):
                await pilot.press(key_name)
                assert tabs.active == panel
            overview = app.query_one("#overview-text", Static)
            await settle(pilot, lambda: "ack latency" in str(overview.content))
            identity = app.query_one("#identity-text", Static)
            assert running_node.node.config.node.name in str(identity.content)
            peers = app.query_one("#peers-table", DataTable)
            await settle(pilot, lambda: sorted(cells(peers, 0)) == ["alice", "bob"])
            await pilot.press("2")
            markets = app.query_one("#markets-table", DataTable)
            await settle(pilot, lambda: markets.row_count == 3)
            assert cells(markets, 0) == sorted(cells(markets, 0))  # stable: sorted by name
            note = app.query_one("#markets-note", Static)  # analytics is off on this node
            await settle(pilot, lambda: "analytics is off" in str(note.content))
            await pilot.press("6")
            resources = app.query_one("#resources-text", Static)
            await settle(pilot, lambda: "LMDB map" in str(resources.content))
            await pilot.press("5")
            scale = app.query_one("#scale-summary", Static)
            await settle(pilot, lambda: str(scale.content).startswith("scaling on"))
            await pilot.press("1")  # what came while it was hidden is drawn at once
            assert "ack latency" in str(overview.content)

    asyncio.run(drive())


def test_filter_book_and_trade_tape(running_node):
    client = running_node.client("alice")
    client.submit([new_order(1, "sell", "101"), new_order(2, "buy", "99")])
    app = dashboard_on(running_node)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            markets = app.query_one("#markets-table", DataTable)
            await settle(pilot, lambda: markets.row_count == 3)
            await pilot.press("slash")
            await pilot.pause()
            await pilot.press("p", "u", "n", "k", "enter")
            assert cells(markets, 0) == ["PUNK-ETH"]
            await pilot.press("enter")  # the market's book
            assert app.query_one(TabbedContent).active == "book"
            ladder = app.query_one("#book-table", DataTable)
            await settle(pilot, lambda: ladder.row_count == 1)
            assert (str(ladder.get_row_at(0)[2]), str(ladder.get_row_at(0)[3])) == ("99", "101")
            tape = app.query_one("#tape-text", Static)
            await pilot.pause(1.0)  # the tape's subscription is in place
            bob = running_node.client("bob")
            bob.submit([new_order(3, "buy", "101", owner="0xb0b")])
            bob.submit([new_order(4, "sell", "99", owner="0xb0b")])
            await settle(pilot, lambda: len(str(tape.content).splitlines()) == 2)
            trades = [line.split()[1:] for line in str(tape.content).splitlines()]
            assert trades == [["sell", "99", "2"], ["buy", "101", "2"]]  # newest first
            await pilot.press("2", "escape")  # the filter cleared
            await settle(pilot, lambda: markets.row_count == 3)

    asyncio.run(drive())


def test_a_market_chosen_shows_its_book_at_once_not_a_refresh_later(running_node):
    """At a 60 s refresh the Book panel, hidden, next looks at the node a minute later; chosen
    in Markets, the market's book is asked as the panel is shown, and there within seconds.
    Closing does not wait out the tape's minute of listening either."""
    running_node.client("alice").submit([new_order(1, "sell", "101")])
    home = running_node.home
    app = Dashboard(lambda: address_of_home(home), operator_key(home), refresh_s=60)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            markets = app.query_one("#markets-table", DataTable)
            await settle(pilot, lambda: markets.row_count == 3)
            await pilot.press("down", "down", "enter")  # GOLD-USDC, LAND-ETH, PUNK-ETH
            title = app.query_one("#book-title", Static)
            assert app.query_one(TabbedContent).active == "book"
            await settle(pilot, lambda: "1 ask levels" in str(title.content), 15)
            assert str(title.content).startswith("PUNK-ETH:")
            await pilot.press("q")

    runner = ThreadPoolExecutor(max_workers=1)  # not joined: a late tape would hold it
    try:
        runner.submit(asyncio.run, drive()).result(timeout=30)  # the tape listens 60 s a round
    finally:
        runner.shutdown(wait=False)


def test_help_and_palette_come_from_the_key_table(running_node):
    app = dashboard_on(running_node)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            shown = cells(app.screen.query_one("#help-table", DataTable), 1)
            assert [key.description for key in KEYS] == shown[: len(KEYS)]
            assert not set(key.description for key in ADMIN_KEYS) & set(shown)  # read-only
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            await pilot.press("ctrl+p")
            await pilot.press(*"Scaling")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await settle(pilot, lambda: app.query_one(TabbedContent).active == "scaling")
            await pilot.press("p")
            assert app.paused and "PAUSED" in app.sub_title
            await pilot.press("p", "minus")
            assert not app.paused and app.refresh_s == 0.5
            await pilot.press("plus", "plus")
            assert app.refresh_s == 0.25  # the fastest step
            await pilot.press("minus", "minus", "equals_sign")
            assert app.refresh_s == 0.5
            await pilot.press("q")
            await pilot.pause()
            assert not app.is_running

    asyncio.run(drive())


def test_disconnected_then_reconnected(running_node):
    app = dashboard_on(running_node)
    home = running_node.home

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            overview = app.query_one("#overview-text", Static)
            await settle(pilot, lambda: "ack latency" in str(overview.content))
            running_node.stop()  # the node goes away underneath
            banner = app.query_one("#banner")
            await settle(pilot, lambda: banner.has_class("shown"))
            assert str(banner.content) == "disconnected, retrying"
            assert app.query_one("#overview-panel").has_class("stale")  # the last data, greyed
            assert "ack latency" in str(overview.content)
            again = start_node(home)  # and comes back (on new ports: node.json says which)
            try:
                await settle(pilot, lambda: not banner.has_class("shown"))
                assert not app.query_one("#overview-panel").has_class("stale")
            finally:
                again.stop()

    asyncio.run(drive())


def test_read_only_has_no_actions_and_admin_asks_before_each(running_node):
    admin = running_node.admin()

    async def read_only() -> None:
        app = dashboard_on(running_node)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            markets = app.query_one("#markets-table", DataTable)
            await settle(pilot, lambda: markets.row_count == 3)
            await pilot.press("h")
            await pilot.pause(0.3)
            assert not isinstance(app.screen, ConfirmScreen)

    async def with_admin() -> None:
        app = dashboard_on(running_node, admin=True)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            markets = app.query_one("#markets-table", DataTable)
            await settle(pilot, lambda: markets.row_count == 3)
            await pilot.press("h")  # GOLD-USDC, the first row
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            await pilot.pause(0.5)
            assert admin.call("status")["halted"] == []
            await pilot.press("h", "y")
            await settle(pilot, lambda: admin.call("status")["halted"] == ["GOLD-USDC"])
            await settle(pilot, lambda: cells(markets, 9)[0] == "HALTED")
            await pilot.press("h", "y")
            await settle(pilot, lambda: admin.call("status")["halted"] == [])
            await pilot.press("1")
            peers = app.query_one("#peers-table", DataTable)
            await settle(pilot, lambda: peers.row_count == 2)
            await pilot.press("h")  # the key works in Markets only
            assert not isinstance(app.screen, ConfirmScreen)
            await pilot.press("d", "y")  # alice, the first row
            disabled = lambda: {p["name"]: p["disabled"] for p in admin.call("peers")}  # noqa: E731
            await settle(pilot, lambda: disabled() == {"alice": True, "bob": False})
            await settle(pilot, lambda: cells(peers, 3)[0] == "yes")
            await pilot.press("d", "y")
            await settle(pilot, lambda: disabled() == {"alice": False, "bob": False})

    asyncio.run(read_only())
    asyncio.run(with_admin())


@pytest.mark.slow
def test_the_demo_in_the_dashboard_shows_throughput_and_the_rings_alert(tmp_path):
    """The demo's node, flow and wash ring, watched by the dashboard (in run_test); the ring's
    finding is labelled wash with `--admin`."""
    from marketnode.node.tools.demo import RING, run_demo

    seen: dict[str, bool] = {}

    def watch(home, why_these_rates: str) -> None:
        assert "orders/s" in why_these_rates
        app = AdminDashboard(lambda: address_of_home(home), operator_key(home), refresh_s=0.5)

        async def drive() -> None:
            async with app.run_test(size=(160, 45)) as pilot:
                orders = app.query_one("#orders-chart")
                await settle(pilot, lambda: any(v > 0 for v in orders.plot.values), 20)
                seen["throughput"] = True
                await pilot.press("4")
                table = app.query_one("#alerts-table", DataTable)

                def ring_row() -> int | None:
                    rows = cells(table, 2)
                    return rows.index("trade_cycles") if "trade_cycles" in rows else None

                await settle(pilot, lambda: ring_row() is not None, timeout_s=60)
                assert RING[0] in cells(table, 4)[ring_row()]
                seen["ring_alert"] = True
                table.move_cursor(row=ring_row())
                await pilot.press("w", "y")
                await settle(pilot, lambda: cells(table, 7)[ring_row()] == "wash", 20)
                seen["labelled"] = True

        asyncio.run(drive())

    report = run_demo(tmp_path / "home", 10, 200, watch=watch)
    assert seen == {"throughput": True, "ring_alert": True, "labelled": True}
    assert report.summary()["ring_flagged"]


def test_connect_finds_a_node_by_its_admin_endpoint(running_node):
    home = running_node.home
    address = address_of_home(home)
    remote = RemoteAddress(address.admin, address.server_key, operator_key(home))
    assert remote() == address


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--connect", "http://x"], "expected tcp://HOST:PORT"),
        (["--connect", "tcp://127.0.0.1:1", "--server-key", "nonsense"], "--server-key"),
        (["--connect", "tcp://127.0.0.1:1", "--server-key", "A" * 40 + "x"], "--server-key"),
        (["--key", "k"], "--key goes with --connect"),
    ],
)
def test_dashboard_mistakes_are_one_line(tmp_path, arguments, message):
    result = CliRunner().invoke(cli, ["dashboard", *arguments])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_connect_to_a_curve_node_needs_the_operator_key(running_node):
    address = address_of_home(running_node.home)
    server = running_node.node.server_public_key
    result = CliRunner().invoke(
        cli, ["dashboard", "--connect", address.admin, "--server-key", server]
    )
    assert result.exit_code == 2 and "needs --key" in result.stderr


def test_dashboard_on_a_missing_home_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["dashboard", "--home", str(tmp_path / "nowhere")])
    assert result.exit_code == 3
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("mnode: ")


def test_a_node_without_metrics_says_so_in_its_panels(node_factory):
    node = node_factory("[metrics]\nenabled = false\n", peers={"alice": ("0xa11ce",)})
    app = dashboard_on(node)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            overview = app.query_one("#overview-text", Static)
            await settle(pilot, lambda: "[metrics] enabled = false" in str(overview.content))
            await pilot.press("5")
            scale = app.query_one("#scale-summary", Static)
            await settle(pilot, lambda: "scaling off" in str(scale.content))
            await pilot.press("6")
            assert not app.query_one("#banner").has_class("shown")

    asyncio.run(drive())


def test_connect_without_the_server_key_to_a_curve_node_says_the_handshake_fails(running_node):
    address = address_of_home(running_node.home)
    result = CliRunner().invoke(cli, ["dashboard", "--connect", address.admin])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "the handshake fails" in result.stderr and "--server-key" in result.stderr


def test_the_dashboard_without_a_terminal_says_so_and_exits_2(running_node):
    result = CliRunner().invoke(cli, ["dashboard", "--home", str(running_node.home.path)])
    assert result.exit_code == 2 and "needs a terminal" in result.stderr


def ladder(md_seq: int) -> BookFetched:
    level = {"price": "10", "qty": "1", "orders": 1}
    return BookFetched({"market": "PUNK-ETH", "md_seq": md_seq, "bids": [level], "asks": []})


def stream(seq: int, seconds_later: float, lost: bool = False, run: int = 1) -> TapeFetched:
    return TapeFetched({"market": "PUNK-ETH", "time": time.time() + seconds_later,
                        "trades": [], "seq": seq, "run": run, "lost": lost})  # fmt: skip


def test_a_market_chosen_is_named_at_once_and_a_late_book_of_the_one_before_is_dropped():
    """No node: the answers are posted as the sources would post them."""
    app = Dashboard(lambda: None, None, poll=False)
    unquoted = {"best_bid": None, "best_ask": None, "halted": False}
    gold = {"market": "GOLD-USDC", "md_seq": 3, "bids": [{"price": "2", "qty": "1"}], "asks": []}

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            markets = [{"market": name, **unquoted} for name in ("GOLD-USDC", "PUNK-ETH")]
            app.post_message(MarketsFetched(markets))
            app.post_message(ladder(5))  # the Book panel's market so far: PUNK-ETH
            await pilot.press("3")
            title = app.query_one("#book-title", Static)
            assert str(title.content).startswith("PUNK-ETH: 1 bid")
            await pilot.press("2", "enter")  # the cursor on the first row, GOLD-USDC
            assert app.query_one(TabbedContent).active == "book"
            assert str(title.content) == "GOLD-USDC: asking the node for its book"
            assert app.query_one("#book-table", DataTable).row_count == 0
            app.post_message(ladder(6))  # PUNK-ETH's, asked before the choice
            await pilot.pause()
            assert str(title.content) == "GOLD-USDC: asking the node for its book"
            app.post_message(BookFetched(gold))
            await pilot.pause()
            assert str(title.content).startswith("GOLD-USDC: 1 bid and 0 ask levels")

    asyncio.run(drive())


def test_the_ladder_behind_the_stream_is_marked_stale_with_its_age_until_a_snapshot():
    """No node: the answers are posted as the sources would post them."""
    app = Dashboard(lambda: None, None, poll=False)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            title = app.query_one("#book-title", Static)

            async def post(message) -> str:
                app.post_message(message)
                await pilot.pause()
                return str(title.content)

            assert "STALE" not in await post(ladder(5))
            assert "STALE" not in await post(stream(9, 0.0))  # a snapshot just came
            stale = await post(stream(12, STALE_AFTER_S + 7))
            assert "STALE: the ladder is 10 s old, the stream at seq 12" in stale
            assert "STALE" not in await post(ladder(12))
            assert "messages lost" in await post(stream(20, 0.0, lost=True))
            assert "STALE" in await post(ladder(19))  # older than the gap
            assert "STALE" not in await post(ladder(20))
            assert "messages lost" in await post(stream(1, 0.0, run=2))  # the node restarted
            assert "STALE" not in await post(ladder(1))

    asyncio.run(drive())


def test_evidence_reads_as_times_wallets_and_amounts_not_json():
    evidence = json.dumps({
        "cycle": ["0xd3m00", "0xd3m01"], "first_trade_ns": 1764600000 * 10**9,
        "volume": "12.500000000000", "legs": [{"qty": "3.000", "seq": 41}],
    })  # fmt: skip
    text = _evidence_text(evidence).plain
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1764600000))
    assert f"first trade ns: {stamp}" in text
    assert "cycle: 0xd3m00, 0xd3m01" in text and "volume: 12.5" in text
    assert "- qty 3, seq 41" in text
    assert "{" not in text and "[" not in text


RECORDED = json.loads((Path(__file__).parent / "data" / "dashboard_answers.json").read_text())
"""Answers of a demo node (tests/dashboard_answers.py), posted to a dashboard that polls nothing."""


def posting_only() -> Dashboard:
    return Dashboard(lambda: None, None, poll=False)


def test_the_chart_caption_tells_the_seconds_of_the_columns_drawn():
    recorded = RECORDED["metrics"]
    first = recorded["history"][0]["time"]
    history = [dict(recorded["history"][n % 70], time=first + n) for n in range(188)]
    app = posting_only()

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            app.post_message(MetricsFetched({**recorded, "history": history}))
            await pilot.pause()
            for chart in app.query("#orders-chart, #trades-chart").results(Chart):
                lines = chart.render().plain.splitlines()
                columns = len(lines[1]) - LABEL_WIDTH
                assert 0 < columns < len(history)  # the chart is narrower than the history
                assert lines[-1].strip() == f"the last {columns} s, one column a second"

    asyncio.run(drive())


def test_long_scaling_reasons_wrap_at_word_boundaries_within_the_panel():
    scale = RECORDED["scale"]
    reason = scale["recommendations"][0]["reason"] + ", and then some more words to read"
    long_one = {**scale, "recommendations": [{**scale["recommendations"][0], "reason": reason}]}
    app = posting_only()

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            app.post_message(ScaleFetched(long_one))
            await pilot.pause()
            table = app.query_one("#scale-table", DataTable)
            await settle(pilot, lambda: table.row_count == 1)
            for width in (SIZE[0], 90):  # and wrapped anew when the terminal narrows
                await pilot.resize_terminal(width, SIZE[1])
                await settle(pilot, lambda w=width: table.row_count == 1 and table.size.width == w)
                # no line runs off the edge (once the panel has wrapped them for the new width)
                await settle(pilot, lambda: table.virtual_size.width <= table.size.width)
                lines = str(table.get_row_at(0)[-1]).splitlines()
                assert len(lines) > 1 and " ".join(lines) == reason  # every word whole, in order
                assert table.ordered_rows[0].height == len(lines)

    asyncio.run(drive())


@pytest.mark.parametrize("admin", [False, True])
def test_the_footer_shows_every_key_whole_while_the_disconnected_banner_shows(admin):
    app = (AdminDashboard if admin else Dashboard)(lambda: None, None, poll=False)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            app.post_message(Unreachable("status", "no answer"))
            await settle(pilot, lambda: app.query_one("#banner").has_class("shown"))
            footer = app.query_one(Footer)
            await settle(pilot, lambda: len(footer.children) > 1)  # its keys are drawn
            assert not app.screen.show_vertical_scrollbar  # the banner's line is taken, not added
            assert footer.region.width == SIZE[0] and footer.region.y == SIZE[1] - 1
            assert footer.max_scroll_x == 0  # no key cut off, none past the edge
            assert all(footer.region.contains_region(key.region) for key in footer.children)

    asyncio.run(drive())


@pytest.mark.parametrize("admin", [False, True])
def test_at_80_columns_the_footer_gives_every_key_its_short_label_whole(admin):
    """On every panel (each shows its own admin keys), with and without the disconnected
    banner: every key the footer shows is there with its short label, inside the footer, none
    under the command palette's key; widened again, the whole descriptions come back."""
    app = (AdminDashboard if admin else Dashboard)(lambda: None, None, poll=False)
    footer_keys = [key for key in app.keys if key.in_footer]

    def drawn() -> dict[str, tuple[str, object]]:
        footer = app.query_one(KeyFooter)
        return {key.action: (key.description, key.region) for key in footer.children}

    async def drive() -> None:
        async with app.run_test(size=(80, 30)) as pilot:
            footer = app.query_one(KeyFooter)
            for banner in (False, True):
                if banner:
                    app.post_message(Unreachable("status", "no answer"))
                    await settle(pilot, lambda: app.query_one("#banner").has_class("shown"))
                for number, panel, _, _ in PANELS:
                    await pilot.press(number)
                    expected = {k.action: k.short for k in footer_keys if k.panel in (None, panel)}
                    await settle(pilot, lambda e=expected: set(e) <= set(drawn()))
                    labels = {action: label for action, (label, _) in drawn().items()}
                    assert {action: labels[action] for action in expected} == expected
                    assert footer.max_scroll_x == 0 and footer.region.width == 80
                    regions = [region for _, region in drawn().values()]  # the palette's too
                    assert all(footer.region.contains_region(region) for region in regions)
                    assert not any(a.overlaps(b) for i, a in enumerate(regions)
                                   for b in regions[i + 1 :])  # fmt: skip
            await pilot.resize_terminal(SIZE[0], SIZE[1])
            await settle(pilot, lambda: drawn()["quit"][0] == "Quit")

    asyncio.run(drive())

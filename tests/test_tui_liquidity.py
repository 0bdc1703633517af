"""The dashboard's Liquidity panel (key 8): against a real node running its liquidity process (a
market maker quoting, then stopped by the operator), and as an SVG snapshot of a recorded
answer (after "liquidity off", a node without instances)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from conftest import LOOPBACK_ENDPOINTS, NO_ANALYTICS, start_node
from textual.widgets import DataTable, Static
from typer.testing import CliRunner

from marketnode.cli.main import app as mnode_app
from marketnode.node.client import address_of_home
from marketnode.node.home.keys import OPERATOR, PEERS_FOLDER, create_key_pair, load_key_pair
from marketnode.node.home.layout import Home
from marketnode.node.home.peers import Peer, load_allowlist, save_allowlist
from marketnode.tui.app import Dashboard
from marketnode.tui.messages import StatusFetched

SIZE = (150, 44)
WAIT_S = 60.0
ANSWERS = json.loads((Path(__file__).parent / "data" / "dashboard_answers.json").read_text())
MAKER = {"strategy": "market_maker", "market": "PUNK-ETH", "peer": "maker", "owner": "0x5002",
         "base": "100", "quote": "10000", "start_price": "100", "refresh_s": 0.2,
         "order_size": 2, "max_inventory": 50}  # fmt: skip


def recorded_instance(name: str, **changes) -> dict:
    """An instance's report as the liquidity process writes it (node/liquidity/quoter.py)."""
    return {
        "name": name, "strategy": "market_maker", "market": "PUNK-ETH", "owner": "0x5002",
        "state": "quoting", "halted": None, "stopped": None, "base": 112.0,
        "target_base": 100.0, "quote": 8790.5, "position_lots": 12, "fills": 37,
        "realized": 14.25, "unrealized": -3.5, "fees": 0.0, "pnl_today": 10.75, "mid": 100.45,
        "quotes": [["buy", "100.1", "1"], ["sell", "100.9", "3"], ["buy", "100", "1"],
                   ["sell", "101", "3"], ["buy", "99.9", "1"], ["sell", "101.1", "3"]],
        "limits": [
            {"name": "max_inventory", "unit": "lots", "limit": 50, "used": 12},
            {"name": "max_daily_loss", "unit": "quote", "limit": 500.0, "used": 0.0},
            {"name": "max_resting_notional", "unit": "quote", "limit": 2000.0,
             "used": 1513.2},
        ],
        "rejected": {}, "self_trades": 0, **changes,
    }  # fmt: skip


RECORDED_STATUS = {
    **ANSWERS["status"],
    "liquidity": {
        "state": "running since 2026-12-01T19:00:00Z (pid 4343)", "age_s": 0.6,
        "read_age_s": 0.2,
        "instances": [
            recorded_instance("maker"),
            recorded_instance(
                "pool", strategy="amm", market="TOK-USD", owner="0x5001", base=395.0,
                target_base=400.0, quote=4051.2, position_lots=-5, fills=9, realized=0.0,
                unrealized=0.8, fees=1.21, pnl_today=1.9, mid=10.25, limits=[],
                quotes=[["sell", "10.31", "9"], ["sell", "10.36", "9"], ["buy", "10.2", "9"],
                        ["buy", "10.15", "9"]],
            ),
            recorded_instance(
                "careful", owner="0x5003", state="halted", position_lots=-51, base=49.0,
                target_base=100.0, quotes=[], stopped={"at": 1764615600.0, "by": "ops"},
                halted="inventory -51 lots beyond max_inventory 50",
            ),
        ],
    },
}  # fmt: skip


async def until(pilot, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "the panel did not come to show it"
        await pilot.pause(0.1)


def rows(app: Dashboard) -> list[list[str]]:
    table = app.query_one("#liquidity-instances", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def shown(app: Dashboard, part: str) -> str:
    return str(app.query_one(f"#liquidity-{part}", Static).content)


def home_with_a_maker(folder: Path) -> Home:
    """A home whose config starts the liquidity process with one market maker."""
    home = Home.create(folder)
    config = home.config()
    key = create_key_pair(home.keys_path(config) / PEERS_FOLDER, "maker")
    path = home.peers_path(config)
    save_allowlist(path, load_allowlist(path).with_peer(Peer("maker", key.public_text,
                                                             (MAKER["owner"],))))  # fmt: skip
    table = "".join(f"{name} = {json.dumps(value)}\n" for name, value in MAKER.items())
    text = home.config_path.read_text()
    markets = text[text.index("\n[[markets]]") + 1 :]
    home.config_path.write_text(
        f"{LOOPBACK_ENDPOINTS}{NO_ANALYTICS}\n[liquidity.maker]\n{table}\n{markets}"
    )
    return home


def test_liquidity_panel_shows_a_maker_quoting_then_stopped(tmp_path):
    home = home_with_a_maker(tmp_path / "home")
    running = start_node(home)
    key = load_key_pair(home.keys_path(home.config()) / f"{OPERATOR}.key_secret")
    app = Dashboard(lambda: address_of_home(home), key, refresh_s=0.25)

    def maker() -> list[str]:
        found = rows(app)
        return found[0] if found else []

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("8")
            await until(pilot, lambda: maker()[3:4] == ["quoting"] and maker()[4] != "-")
            name, strategy, market = maker()[:3]
            assert (name, strategy, market) == ("maker", "market_maker", "PUNK-ETH")
            assert maker()[5] != "-" and maker()[7] == "100 / 100"
            assert "its report" in shown(app, "summary") and "read by the node" in shown(
                app, "summary"
            )
            detail = shown(app, "detail")
            assert "bid " in detail and "ask " in detail
            assert "max_inventory" in detail and "0 lots of 50 lots, 50 lots left" in detail
            stopped = CliRunner().invoke(
                mnode_app, ["liquidity", "stop", "maker", "--by", "ops", "--home",
                            str(home.path)],
            )  # fmt: skip
            assert stopped.exit_code == 0, stopped.stderr
            await until(pilot, lambda: maker()[3:4] == ["stopped by ops"])
            assert maker()[4:6] == ["-", "-"], "a stopped maker quotes nothing"
            assert "quotes  none" in shown(app, "detail")
            assert "mnode liquidity start maker" in shown(app, "detail")

    try:
        asyncio.run(drive())
    finally:
        running.stop()


def nowhere():
    raise AssertionError("this dashboard does not poll")


def test_liquidity_panel_snapshot(snap_compare, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")  # the stop's time is shown in local time
    time.tzset()

    async def recorded(pilot) -> None:
        """First a node with no instance ("liquidity off"), then the recorded answer."""
        app = pilot.app
        await pilot.press("8")
        app.post_message(StatusFetched({**ANSWERS["status"], "liquidity": "off"}))
        await until(pilot, lambda: "liquidity off" in shown(app, "summary"))
        assert rows(app) == [] and shown(app, "detail") == ""
        app.post_message(StatusFetched(RECORDED_STATUS))
        await pilot.pause()

    try:
        assert snap_compare(Dashboard(nowhere, None, poll=False), terminal_size=SIZE,
                            run_before=recorded)  # fmt: skip
    finally:
        monkeypatch.undo()
        time.tzset()

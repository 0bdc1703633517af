"""The dashboard's Settlement panel: against a real node settling on anvil through its relayer
process (a batch held in the mempool with its transaction, then confirmed with its counts, lag
and fees; then a trade failing with its reason), against a node that settles nothing
("settlement off"), and as an SVG snapshot of a recorded answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from chain_fixtures import anvil_web3_fixture, open_market  # noqa: F401 - a fixture
from test_relayer import (
    RELAYER,
    anvil_call,
    mine,
    signed_node,  # noqa: F401 - a fixture, found by its name
    trade_through_node,
    use_relayer_key,
)
from textual.widgets import DataTable, Static

from marketnode.node.client import address_of_home
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.tui.app import Dashboard
from marketnode.tui.messages import StatusFetched

SIZE = (150, 44)
WAIT_S = 120.0
ANSWERS = json.loads((Path(__file__).parent / "data" / "dashboard_answers.json").read_text())
RECORDED_STATUS = {
    **ANSWERS["status"], "uptime_s": 80.0,
    "settlement": {
        "state": "running since 2026-12-01T19:00:00Z (pid 4242)", "age_s": 0.4,
        "position": 310, "next_nonce": 12,
        "trades": {"pending": 4, "submitted": 50, "confirmed": 1200, "failed": 3},
        "notices_unacknowledged": 1,
        "lag_p50_s": 8.9, "lag_p99_s": 9.7, "gas_per_trade": 90_112,
        "fee_per_trade_wei": 180_224_000_000_000, "fee_per_trade_gwei": 180224.0,
        "batches_in_flight": [
            {"id": 11, "nonce": 10, "tx_hash": "0x" + "ab" * 32, "state": "mined", "trades": 50,
             "block": 401, "gas_price": 2_000_000_000, "base_fee": 1_750_000_000,
             "max_fee": 3_600_000_000, "tip": 100_000_000, "sent_at": 1764615600.0},
            {"id": 12, "nonce": 11, "tx_hash": "0x" + "cd" * 32, "state": "submitted",
             "trades": 50, "block": None, "gas_price": None, "base_fee": None,
             "max_fee": 3_700_000_000, "tip": 100_000_000, "sent_at": 1764615601.0},
        ],
        "failures": [
            {"seq": 1187, "market": "TOK-USD", "reason": "buyer_transfer_failed",
             "tx_hash": "0x" + "ef" * 32, "block": 388},
        ],
        "head": 402, "base_fee_now": 1_810_000_000, "confirmations": 3,
    },
}  # fmt: skip


async def until(pilot, condition: Callable[[], bool], step: Callable[[], None] = lambda: None
                ) -> None:  # fmt: skip
    """Let the app run (and `step`) until `condition` holds; fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "the panel did not come to show it"
        step()
        await pilot.pause(0.1)


def rows(app: Dashboard, table: str) -> list[list[str]]:
    found = app.query_one(f"#settlement-{table}", DataTable)
    return [[str(cell) for cell in found.get_row_at(i)] for i in range(found.row_count)]


def summary(app: Dashboard) -> str:
    return str(app.query_one("#settlement-summary", Static).content)


def dashboard_of(running) -> Dashboard:
    home = running.home
    key = load_key_pair(home.keys_path(home.config()) / f"{OPERATOR}.key_secret")
    return Dashboard(lambda: address_of_home(home), key, refresh_s=0.25)


def test_settlement_panel_follows_a_batch_from_the_mempool_to_final_and_a_failure(
    anvil_web3,
    signed_node,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    market = open_market(anvil_web3)
    use_relayer_key(market)
    key_file = tmp_path / "relayer.key"
    key_file.write_text(RELAYER.key.hex())
    running = signed_node(market, f"""enabled = true
rpc = "{market.w3.provider.endpoint_uri}"
key_file = "{key_file}"
confirmations = 2
batch_size = 3
max_delay_s = 1
poll_interval_ms = 50
""")  # fmt: skip
    app = dashboard_of(running)

    def counts() -> dict[str, str]:
        shown = str(app.query_one("#settlement-counts", Static).content).splitlines()
        return {line.split()[0]: line.split()[1] for line in shown}

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("7")
            await until(pilot, lambda: "chain head" in summary(app))
            anvil_call(market.w3, "evm_setAutomine", False)  # the batch waits in the mempool
            trade_through_node(running, market, rounds=1, tag="p")
            await until(pilot, lambda: [row[2] for row in rows(app, "batches")] == ["submitted"])
            (batch,) = rows(app, "batches")
            assert batch[3] == "3" and batch[4].startswith("0x") and batch[7] == "mempool"
            in_flight = app.query_one("#settlement-in-flight", Static)
            assert "in transaction 0x" in str(in_flight.content)
            assert counts()["submitted"] == "3"
            anvil_call(market.w3, "evm_setAutomine", True)
            await until(pilot, lambda: counts()["confirmed"] == "3" and not rows(app, "batches"),
                        step=lambda: mine(market.w3))  # fmt: skip
            assert "settlement lag p50" in summary(app) and "gas and" in summary(app)
            shown = str(app.query_one("#settlement-counts", Static).content)
            assert "confirmed" in shown and "a second" in shown

            approve = market.quote.functions.approve(market.deployment.settlement, 0)
            market.as_owner(market.buyer, approve)
            trade_through_node(running, market, rounds=1, tag="f")
            await until(pilot, lambda: len(rows(app, "failures")) == 3,
                        step=lambda: mine(market.w3))  # fmt: skip
            assert {row[2] for row in rows(app, "failures")} == {"buyer_transfer_failed"}
            assert counts()["failed"] == "3"

    asyncio.run(drive())


def test_settlement_panel_says_off_when_the_node_settles_nothing(running_node):
    app = dashboard_of(running_node)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("7")
            await until(pilot, lambda: "settlement off" in summary(app))
            assert rows(app, "batches") == [] and rows(app, "failures") == []

    asyncio.run(drive())


def test_settlement_panel_snapshot(snap_compare):
    def nowhere():
        raise AssertionError("this dashboard does not poll")

    async def recorded(pilot) -> None:
        earlier = {**RECORDED_STATUS, "uptime_s": 20.0, "settlement": {
            **RECORDED_STATUS["settlement"],
            "trades": {"pending": 4, "submitted": 50, "confirmed": 1080, "failed": 3},
        }}  # fmt: skip
        await pilot.press("7")  # the panel shown keeps every answer: a rate takes two
        pilot.app.post_message(StatusFetched(earlier))
        pilot.app.post_message(StatusFetched(RECORDED_STATUS))
        await pilot.pause()

    app = Dashboard(nowhere, None, poll=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=recorded)

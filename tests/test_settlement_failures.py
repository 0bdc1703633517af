"""A trade that fails on chain reaches the node: on anvil, with the relayer running beside a
real node, the buyer's approval is revoked after the match, the trade fails
`buyer_transfer_failed`, and the node cancels the buyer's resting orders in the market
(journaled, reason `settlement_failed`), reports the trade's settlement state to both peers and
publishes an alert. A notice heard again (its acknowledgement lost, the relayer killed, the node
restarted) is only acknowledged again: the node acts once per trade.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
from chain_fixtures import BUY, SELL, Market, anvil_web3_fixture, open_market  # noqa: F401
from conftest import RunningNode, start_node
from test_relayer import RELAYER, SYMBOL, settlement_home, signed_command

from marketnode.node.chain import rpc
from marketnode.node.chain.settlement_store import state_path
from marketnode.node.client.peer import Client
from marketnode.node.core.commands import CancelOrder
from marketnode.node.core.engine import Engine
from marketnode.node.core.events import Cancelled
from marketnode.node.core.reasons import CancelReason
from marketnode.node.home.layout import Home
from marketnode.node.protocol.messages import ALERTS_TOPIC
from marketnode.node.protocol.settlement import SettlementEvent
from marketnode.node.store.lmdb_store import Store

WAIT_S = 120.0


def relayer_settings(market: Market, key_file: str) -> str:
    return f"""enabled = true
rpc = "{market.w3.provider.endpoint_uri}"
key_file = "{key_file}"
confirmations = 1
batch_size = 10
max_delay_s = 1
poll_interval_ms = 50
"""


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    """Poll `condition` until it gives something true; fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S:g} s"
        time.sleep(0.05)
    return value


def settlement_events(client: Client, timeout_ms: int = 100) -> list[SettlementEvent]:
    """The `settlement` events of every report that has come by now."""
    found = []
    while (report := client.next_report(timeout_ms)) is not None:
        found += [event for event in report.events if type(event) is SettlementEvent]
    return found


def notice_row(home: Home, seq: int) -> dict | None:
    path = state_path(home.path)
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    db.row_factory = sqlite3.Row
    try:
        row = db.execute("SELECT * FROM notices WHERE seq = ?", (seq,)).fetchone()
    except sqlite3.OperationalError:  # its tables are not made yet
        return None
    finally:
        db.close()
    return None if row is None else dict(row)


def forget_acknowledgement(home: Home, seq: int) -> None:
    """As if the node's acknowledgement of `seq` never reached the relayer (it is not running)."""
    db = sqlite3.connect(state_path(home.path), timeout=10.0)
    with db:
        db.execute("UPDATE notices SET acknowledged_at = NULL WHERE seq = ?", (seq,))
    db.close()


def resting_ids(client: Client, owner: str) -> set:
    return {order.id for order in client.open_orders(owner).orders}


def cancels_for_settlement(home: Home) -> tuple[list[CancelOrder], list[Cancelled]]:
    """The journal's `settlement_failed` cancels, and the `cancelled` events a fresh engine
    replaying the journal gives for them."""
    commands, events = [], []
    engine = Engine()
    with Store(home.store_path(home.config()), readonly=True) as store:
        for _, command in store.journal():
            out: list = []
            engine.process(command, out)
            if type(command) is CancelOrder and command.reason == CancelReason.SETTLEMENT_FAILED:
                commands.append(command)
                events += [event for event in out if type(event) is Cancelled]
    return commands, events


def mnode(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "marketnode.cli", *arguments],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture
def market(anvil_web3) -> Market:
    return open_market(anvil_web3)


def start_relayed_node(market: Market, tmp_path: Path) -> RunningNode:
    """A node settling on `market`'s chain through its own relayer, whose account is funded
    and whose key file is in `tmp_path`."""
    rpc.fund(market.w3, market.admin, RELAYER.address, 10**20)
    key_file = tmp_path / "relayer.key"
    key_file.write_text(RELAYER.key.hex())
    home = settlement_home(tmp_path / "home", market, relayer_settings(market, str(key_file)))
    return start_node(home)


def test_failed_settlement_cancels_reports_and_alerts_once(market, tmp_path):
    running = start_relayed_node(market, tmp_path)
    home = running.home
    try:
        buyer, seller = market.buyer.address.lower(), market.seller.address.lower()
        running.add_peer("buyers", (buyer,))
        running.add_peer("sellers", (seller,))
        buyers, sellers = running.client("buyers", 30.0), running.client("sellers", 30.0)
        alerts = running.raw_socket(zmq.SUB, running.address.market_data,
                                    running.keys["buyers"])  # fmt: skip
        alerts.subscribe(ALERTS_TOPIC)
        sells = [signed_command(market, market.seller, SELL, ticks, 1, f"s{ticks}")
                 for ticks in (100, 105, 106)]  # fmt: skip
        answer = sellers.submit(sells)
        assert {type(e).__name__ for e in answer.events} == {"Accepted", "WireRested"}, answer
        buys = [signed_command(market, market.buyer, BUY, ticks, 1, f"b{ticks}")
                for ticks in (100, 90, 91)]  # fmt: skip
        reply = buyers.submit(buys)
        trade = next(event for event in reply.events if type(event).__name__ == "WireTrade")
        assert resting_ids(buyers, buyer) == {"b90", "b91"}

        # after the match, before the relayer may settle: the buyer's quote approval goes
        approve = market.quote.functions.approve(market.deployment.settlement, 0)
        market.as_owner(market.buyer, approve)
        rpc.send(market.w3, market.settlement.functions.set_relayer(RELAYER.address), market.admin)

        told_buyers = wait_until(lambda: settlement_events(buyers), "the buyers' report")
        told_sellers = wait_until(lambda: settlement_events(sellers), "the sellers' report")
        assert told_buyers == told_sellers and len(told_buyers) == 1
        event = told_buyers[0]
        assert (event.seq, event.market, event.state, event.reason, event.at_fault) == (
            trade.seq, SYMBOL, "failed", "buyer_transfer_failed", "buy",
        )  # fmt: skip
        assert event.owner == buyer and event.cancelled == 2
        assert event.tx_hash.startswith("0x") and event.block > 0
        assert resting_ids(buyers, buyer) == set()
        assert resting_ids(sellers, seller) == {"s105", "s106"}

        assert alerts.poll(int(WAIT_S * 1000)), "no alert was published"
        topic, payload = alerts.recv_multipart()
        alert = msgspec.msgpack.decode(payload)
        assert topic == ALERTS_TOPIC
        assert (alert["kind"], alert["severity"], alert["market"], alert["trades"],
                alert["wallets"]) == ("settlement_failed", "high", SYMBOL, [trade.seq],
                                      [buyer])  # fmt: skip
        wait_until(lambda: (notice_row(home, trade.seq) or {}).get("acknowledged_at"),
                   "the relayer hearing the acknowledgement")  # fmt: skip

        # the acknowledgement lost, the relayer killed: its next run sends the notice again
        later = signed_command(market, market.buyer, BUY, 92, 1, "b92")
        assert "WireRested" in {type(e).__name__ for e in buyers.submit([later]).events}
        supervisor = running.node.settlement.supervisor
        killed = supervisor.pid
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: not supervisor.running, "the relayer's death")
        forget_acknowledgement(home, trade.seq)
        wait_until(lambda: supervisor.pid not in (None, killed), "the relayer's restart")
        wait_until(lambda: (notice_row(home, trade.seq) or {}).get("acknowledged_at"),
                   "the acknowledgement of the notice sent again")  # fmt: skip
        buyers.ping()  # every report sent before this answer has come
        assert settlement_events(buyers, 0) == []
        assert resting_ids(buyers, buyer) == {"b92"}
    finally:
        running.stop()

    # the node restarted, the acknowledgement lost again: still acted on once
    forget_acknowledgement(home, trade.seq)
    keys, running = running.keys, start_node(home)
    running.keys.update(keys)
    try:
        wait_until(lambda: (notice_row(home, trade.seq) or {}).get("acknowledged_at"),
                   "the acknowledgement after the node's restart")  # fmt: skip
        peer = running.client("buyers", 30.0)
        assert resting_ids(peer, buyer) == {"b92"}
    finally:
        running.stop()

    commands, events = cancels_for_settlement(home)
    assert sorted(command.id for command in commands) == ["b90", "b91"]
    assert sorted(event.id for event in events) == ["b90", "b91"]
    assert all(event.reason == CancelReason.SETTLEMENT_FAILED for event in events)
    verified = mnode("verify", "--home", str(home.path))
    assert verified.returncode == 0, verified.stderr

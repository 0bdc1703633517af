"""One order's way through the node, step by step, in the order the folders of node/ name them:

    server (socket, admission) -> core (validation, matching) -> store (journal, commit)
    -> protocol (the answer, market data) -> analytics (DuckDB, its own process)

Each step is checked where it can be seen from outside the matching thread: the bytes a peer
sends and gets back, the market-data topic, the journal in LMDB, the analytics tables, and a
replay of the journal that must reproduce the live state hash.
"""

from __future__ import annotations

import time
from decimal import Decimal

import msgspec
import zmq

from marketnode.node.protocol.messages import MarketData
from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.verify import verify_store

ANALYTICS_ON = """
[analytics]
enabled = true
interval_ms = 50
"""


def _wait_for(condition, what: str, timeout_s: float = 120.0):
    """Poll `condition` until it gives something truthy: the analytics process may start slowly
    on a busy machine, so the bound is generous and only a real stall fails."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_order_from_the_socket_to_the_journal_the_ack_market_data_and_analytics(node_factory):
    running = node_factory(ANALYTICS_ON, peers={"alice": ("0xa11ce",), "bob": ("0xb0b",)})
    market_data = running.subscriber("alice", ["PUNK-ETH"])

    # 1. server: a peer's DEALER socket, CURVE-authenticated, sends one msgpack `submit`
    dealer = running.raw_socket(zmq.DEALER, running.address.orders, running.keys["alice"])
    sell = {"op": "new", "market": "PUNK-ETH", "id": "s1", "owner": "0xa11ce", "side": "sell",
            "price": "100.25", "qty": "3"}  # fmt: skip
    dealer.send(msgspec.msgpack.encode({"type": "submit", "v": 1, "cmds": [sell], "ref": 7}))

    # 2. core and store: the engine accepted and rested it, and the batch was committed before
    #    the answer left: the reply carries the sequence numbers the journal now holds
    assert dealer.poll(10_000), "no answer to the submit"
    reply = msgspec.msgpack.decode(dealer.recv())
    assert (reply["type"], reply["ref"]) == ("reply", 7)
    accepted, rested = reply["events"]
    assert (accepted["event"], rested["event"]) == ("accepted", "rested")
    assert (rested["price"], rested["qty"], rested["seq"]) == ("100.25", "3", accepted["seq"] + 1)

    # 3. a second peer's order crosses it: a trade, answered to bob, reported to alice
    bob = running.client("bob")
    buy = {"op": "new", "market": "PUNK-ETH", "id": "b1", "owner": "0xb0b", "side": "buy",
           "price": "100.25", "qty": "2"}  # fmt: skip
    answer = bob.submit([buy])
    trade = next(e for e in answer.events if e.__struct_config__.tag == "trade")
    assert (trade.maker_id, trade.taker_id, trade.qty) == ("s1", "b1", "2")
    assert dealer.poll(10_000), "no execution report for the maker"
    report = msgspec.msgpack.decode(dealer.recv())
    assert report["type"] == "report" and report["events"][0]["seq"] == trade.seq

    # 4. protocol: market data on the market's topic carries the trade and the level left
    def published_trade() -> MarketData | None:
        message = market_data.receive(timeout_ms=100)
        return message if message is not None and message.trades else None

    update = _wait_for(published_trade, "the trade on the market-data topic", 10)
    assert [(t.seq, t.price, t.qty) for t in update.trades] == [(trade.seq, "100.25", "2")]
    assert [(level.side, level.qty) for level in update.levels] == [("sell", "1")]

    # 5. analytics: the analytics process follows the journal into DuckDB
    admin = running.admin()

    def trade_rows() -> list:
        answer = admin.call("sql", query="SELECT seq, maker_id, taker_id, qty FROM trades")
        return answer["rows"]

    rows = _wait_for(trade_rows, "the trade in the analytics store")
    # quantities come back as DuckDB decimals in text (scaled to the market's lot)
    assert [(row[0], row[1], row[2], Decimal(row[3])) for row in rows] == [
        (trade.seq, "s1", "b1", Decimal(2))
    ]

    # 6. store: after the node stops, the journal holds both commands, and replaying it into a
    #    fresh engine gives the live node's state hash
    live_hash = admin.call("status")["state_hash"]
    running.stop()
    store = Store(running.home.store_path(running.home.config()), readonly=True)
    try:
        journaled = [command for _, command in store.journal()]
        assert [(type(c).__name__, c.id) for c in journaled[-2:]] == [
            ("NewOrder", "s1"),
            ("NewOrder", "b1"),
        ]
        result = verify_store(store)
    finally:
        store.close()
    assert result.ok, result.problems
    assert result.state_hash == live_hash

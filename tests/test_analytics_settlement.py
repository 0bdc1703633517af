"""Settlement in the analytics store: the trades between two signed orders (the relayer's to
settle, the same ones it finds in the journal), each once across a restart of the follower, and
the failures the node recorded after acting on them (`settlement_states`)."""

from __future__ import annotations

import msgspec

from marketnode.node.analytics.duckdb_store import AnalyticsStore
from marketnode.node.analytics.follower import JournalFollower
from marketnode.node.analytics.settlement import NODE_FAILURES_KEY
from marketnode.node.chain.journal_trades import JournalTrades
from marketnode.node.core.commands import PeerCommand
from marketnode.node.core.markets import MarketSpec
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store

SPEC = MarketSpec(
    "PUNK-ETH", "PUNK", "ETH", "0.01", "1", stp="none", signatures="optional",
    base_token="0xe7f1725e7734ce288f8367e1bb143e90bb3f0512",
    quote_token="0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0",
    lot_units=str(10**18), tick_units=str(10**16), fee_bps="10",
)  # fmt: skip
A, B, C = ("0x" + letter * 40 for letter in "abc")


def order(order_id: int, owner: str, side: str, qty: int, signed: bool, tif: str = "GTC") -> dict:
    """An order at 1.00; a signed one as the node journals it (signature and verified digest:
    the engine takes the node's word for the signature, checked at the edge)."""
    command = {"op": "new", "market": SPEC.symbol, "id": order_id, "owner": owner, "side": side,
               "price": "1.00", "qty": str(qty), "tif": tif}  # fmt: skip
    if signed:
        command |= {"sig": "0x" + "11" * 65, "chain_id": 31337, "nonce": order_id,
                    "expiry": 2_000_000_000, "max_fee_bps": 10,
                    "order_hash": f"0x{order_id:064x}"}  # fmt: skip
    return command


FIRST = [
    order(1, A, "sell", 5, signed=True),
    order(2, B, "buy", 2, signed=True, tif="IOC"),  # seq 4: signed both sides
    order(3, C, "buy", 1, signed=False, tif="IOC"),  # seq 6: an unsigned taker
]
SECOND = [
    order(4, B, "buy", 2, signed=True, tif="IOC"),  # seq 8: fills the rest of order 1
    order(5, C, "sell", 3, signed=False),
    order(6, A, "buy", 3, signed=True, tif="IOC"),  # seq 12: a signed taker, an unsigned maker
]


def states(analytics: AnalyticsStore) -> list[tuple]:
    return analytics.connection.execute(
        "SELECT seq, buyer, seller, CAST(qty AS INT), buy_order_hash, sell_order_hash, "
        "journal_state FROM settlement_states"
    ).fetchall()


def test_the_trades_to_settle_are_the_relayers_each_once_and_failures_show(tmp_path):
    store = Store(tmp_path / "data", map_size=16 << 20, sync="none")
    durable = DurableEngine(store)
    durable.configure([SPEC])
    durable.submit([msgspec.convert(command, PeerCommand) for command in FIRST])
    analytics = AnalyticsStore(tmp_path / "analytics.duckdb")
    try:
        JournalFollower(store, analytics).sync()
        durable.submit([msgspec.convert(command, PeerCommand) for command in SECOND])
        JournalFollower(store, analytics).sync()  # a restarted follower: replays, adds the new
        hashes = [f"0x{n:064x}" for n in range(7)]
        assert states(analytics) == [
            (4, B, A, 2, hashes[2], hashes[1], "to_settle"),
            (8, B, A, 2, hashes[4], hashes[1], "to_settle"),
        ]
        relayer = JournalTrades(store, 30)
        assert [t.seq for _, found in relayer.follow(0) for t in found] == [4, 8]
        store.put_meta_list(NODE_FAILURES_KEY, ["8"])  # the node acted on its failure
        JournalFollower(store, analytics).sync()
        assert [(seq, state) for seq, *_, state in states(analytics)] == [
            (4, "to_settle"), (8, "failed"),
        ]  # fmt: skip
    finally:
        analytics.close()
        store.close()

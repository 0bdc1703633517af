"""A liquidity instance's books in the analytics store (`liquidity_pnl`): inventory, realized
PnL by average cost, unrealized at the mid the follower's engine shows, and fees, against a
case computed by hand; the same however the journal was cut into syncs."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from marketnode.node.analytics.duckdb_store import AnalyticsStore
from marketnode.node.analytics.follower import JournalFollower
from marketnode.node.analytics.makers import record_configured_makers
from marketnode.node.core.commands import PeerCommand
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store
from tests.test_known_makers import MAKER, SPEC, START_NS

INSTANCE = {"pool": {"strategy": "amm", "market": SPEC.symbol, "peer": "pool", "owner": MAKER,
                     "base": "100", "quote": "10000", "fee_bps": 30}}  # fmt: skip


@dataclass
class Orders:
    commands: list[dict] = field(default_factory=list)

    def add(self, owner: str, side: str, price: str, qty: int, tif: str = "GTC") -> None:
        self.commands.append({"op": "new", "market": SPEC.symbol, "id": len(self.commands) + 1,
                              "owner": owner, "side": side, "price": price, "qty": str(qty),
                              "tif": tif})  # fmt: skip


def hand_case() -> list[dict]:
    """The pool sells 4 at 101 and 2 at 102 (short 6 at an average 101.333333333333), buys 5
    back at 99 (realizes 5 x 2.333333333333) and 3 more (closes the last 1, realizing
    2.333333333333, and opens 2 long at 99); a taker's bid at 100 then tops the book under the
    pool's ask at 102."""
    orders = Orders()
    orders.add(MAKER, "sell", "101.00", 4)
    orders.add(MAKER, "sell", "102.00", 10)
    orders.add(MAKER, "buy", "99.00", 10)
    orders.add("0xt1", "buy", "101.00", 4, "IOC")
    orders.add("0xt2", "buy", "102.00", 2, "IOC")
    orders.add("0xt1", "sell", "99.00", 5, "IOC")
    orders.add("0xt2", "sell", "99.00", 3, "IOC")
    orders.add("0xt3", "buy", "100.00", 1)
    return orders.commands


def books(tmp_path, commands: list[dict], cuts: list[int]) -> dict:
    """`commands` journaled in commits cut at `cuts`, the store synced after each commit."""
    store = Store(tmp_path / "data", map_size=16 << 20, sync="none", clock=lambda: START_NS)
    analytics = AnalyticsStore(tmp_path / "analytics.duckdb")
    try:
        record_configured_makers(analytics.connection, INSTANCE)
        durable = DurableEngine(store)
        durable.configure([SPEC])
        follower = JournalFollower(store, analytics)
        for start, end in zip([0, *cuts], [*cuts, len(commands)], strict=True):
            durable.submit([msgspec.convert(c, PeerCommand) for c in commands[start:end]])
            follower.sync()
        cursor = analytics.connection.execute("SELECT * FROM liquidity_pnl")
        columns = [column[0] for column in cursor.description]
        (row,) = cursor.fetchall()
        return dict(zip(columns, row, strict=True))
    finally:
        analytics.close()
        store.close()


def test_an_instances_books_are_those_computed_by_hand(tmp_path):
    found = books(tmp_path, hand_case(), [])
    third = Decimal("101.333333333333")  # (4 x 101 + 2 x 102) / 6, to 12 places
    realized = 5 * (third - 99) + 1 * (third - 99)
    assert found == {
        "instance": "pool", "owner": MAKER, "market": SPEC.symbol, "strategy": "amm",
        "base": Decimal(102),  # 100 at the start, 6 sold, 8 bought
        "quote": Decimal(10000 + 4 * 101 + 2 * 102 - 8 * 99),
        "position": Decimal(2), "average_cost": Decimal(99),  # the flip opened at 99
        "realized_pnl": realized,
        "mid": Decimal("101"),  # the taker's bid at 100, the pool's ask at 102
        "unrealized_pnl": Decimal(2 * (101 - 99)),
        "fees": Decimal("0.003") * (4 * 101 + 2 * 102 + 8 * 99),
        "fills": 4, "bought": Decimal(8), "sold": Decimal(6), "as_of_seq": found["as_of_seq"],
    }  # fmt: skip
    assert realized == Decimal("13.999999999998")  # rounded at each fill: 2e-12 short of 14
    total = found["quote"] - 10000 + found["position"] * found["mid"]  # marked at the mid
    assert abs(found["realized_pnl"] + found["unrealized_pnl"] - total) < Decimal("1e-11")


def test_the_books_do_not_depend_on_how_the_journal_was_synced(tmp_path):
    commands = hand_case()
    whole = books(tmp_path / "whole", commands, [])
    for cuts in ([3], [4, 5], [1, 2, 3, 4, 5, 6, 7]):
        assert books(tmp_path / "-".join(map(str, cuts)), commands, cuts) == whole


def test_a_self_trade_is_two_fills_that_leave_the_inventory(tmp_path):
    orders = Orders()
    orders.add(MAKER, "sell", "101.00", 4)
    orders.add(MAKER, "buy", "101.00", 3, "IOC")
    found = books(tmp_path, orders.commands, [])
    assert (found["fills"], found["base"], found["quote"], found["realized_pnl"]) == (
        2, Decimal(100), Decimal(10000), Decimal(0),
    )  # fmt: skip
    assert found["mid"] == Decimal(101)  # one side only: the last trade's price


def test_an_instance_without_a_fee_has_its_strategys_default(tmp_path):
    analytics = AnalyticsStore(tmp_path / "analytics.duckdb")
    try:
        tables = {"pool": {"strategy": "amm", "market": SPEC.symbol, "owner": MAKER},
                  "maker": {"strategy": "market_maker", "market": "B", "owner": "0x2"}}  # fmt: skip
        record_configured_makers(analytics.connection, tables)
        fees = analytics.connection.execute(
            "SELECT instance, CAST(fee_bps AS INT) FROM liquidity_instances ORDER BY instance"
        ).fetchall()
        assert fees == [("maker", 0), ("pool", 30)]  # plugins/amm.py: Uniswap v2's 0.3%
    finally:
        analytics.close()

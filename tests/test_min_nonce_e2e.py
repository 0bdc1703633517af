"""An owner's bulk cancel end to end on anvil, with the relayer running beside a real node: the
seller raises its minimum nonce on the settlement contract (`set_min_nonce`), the relayer hears
the log under its confirmations and tells the node, which journals it once, cancels the
seller's resting orders below it (reported to the peer, reason `min_nonce`) and refuses a later
order below it `nonce_used`; the notice heard again (its acknowledgement lost) is only
acknowledged again, and the store verifies.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from chain_fixtures import BUY, SELL, Market, anvil_web3_fixture, open_market  # noqa: F401
from test_relayer import SYMBOL
from test_settlement_failures import resting_ids, start_relayed_node, wait_until

from marketnode.node.chain.settlement_store import state_path
from marketnode.node.core.commands import RaiseMinNonce
from marketnode.node.core.reasons import CancelReason, Reason
from marketnode.node.home.layout import Home
from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.verify import verify_store


@pytest.fixture
def market(anvil_web3) -> Market:
    return open_market(anvil_web3)


def signed_at(market: Market, wallet, side: int, ticks: int, nonce: int, order_id: str) -> dict:
    """A signed one-lot `new` of `wallet` with the given nonce."""
    order = market.order(wallet, side, ticks, 1, nonce=nonce, expiry=int(time.time()) + 3600,
                         maxFeeBps=30)  # fmt: skip
    return {
        "op": "new", "market": SYMBOL, "id": order_id, "owner": wallet.address,
        "side": "buy" if side == BUY else "sell", "price": f"{ticks / 100:.2f}", "qty": "1",
        "chain_id": market.chain_id, "nonce": nonce, "expiry": order.expiry,
        "max_fee_bps": 30, "sig": "0x" + market.sign(order).hex(),
    }  # fmt: skip


def acknowledged(home: Home) -> list:
    """The relayer's raised minimums with their acknowledgement times."""
    path = state_path(home.path)
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        return db.execute("SELECT owner, min_nonce, acknowledged_at FROM min_nonces").fetchall()
    except sqlite3.OperationalError:  # its tables are not made yet
        return []
    finally:
        db.close()


def forget_acknowledgements(home: Home) -> None:
    db = sqlite3.connect(state_path(home.path), timeout=10.0)
    with db:
        db.execute("UPDATE min_nonces SET acknowledged_at = NULL")
    db.close()


def raises_journaled(home: Home) -> list[RaiseMinNonce]:
    with Store(home.store_path(home.config()), readonly=True) as store:
        return [command for _, command in store.journal() if type(command) is RaiseMinNonce]


def test_set_min_nonce_on_chain_cancels_the_orders_below_it_once(market, tmp_path):
    running = start_relayed_node(market, tmp_path)
    home = running.home
    try:
        seller, buyer = market.seller.address.lower(), market.buyer.address.lower()
        running.add_peer("sellers", (seller,))
        running.add_peer("buyers", (buyer,))
        sellers, buyers = running.client("sellers", 30.0), running.client("buyers", 30.0)
        sells = [signed_at(market, market.seller, SELL, 200 + nonce, nonce, f"s{nonce}")
                 for nonce in (10, 11, 20)]  # fmt: skip
        assert "Rejected" not in {type(e).__name__ for e in sellers.submit(sells).events}
        buy = signed_at(market, market.buyer, BUY, 100, 3, "b3")
        assert "WireRested" in {type(e).__name__ for e in buyers.submit([buy]).events}

        market.as_owner(market.seller, market.settlement.functions.set_min_nonce(15))
        wait_until(lambda: resting_ids(sellers, seller) == {"s20"}, "the cancels below 15")
        assert resting_ids(buyers, buyer) == {"b3"}
        cancelled = []
        while (report := sellers.next_report(1000)) is not None and len(cancelled) < 2:
            cancelled += [event for event in report.events
                          if type(event).__name__ == "WireCancelled"]  # fmt: skip
        assert sorted((e.id, e.reason) for e in cancelled) == [
            ("s10", CancelReason.MIN_NONCE), ("s11", CancelReason.MIN_NONCE),
        ]  # fmt: skip
        late = signed_at(market, market.seller, SELL, 230, 12, "s12")
        (refused,) = sellers.submit([late]).events
        assert (type(refused).__name__, refused.reason) == ("Rejected", Reason.NONCE_USED)

        wait_until(lambda: [row[2] for row in acknowledged(home)] not in ([], [None]),
                   "the relayer hearing the acknowledgement")  # fmt: skip
        assert [row[:2] for row in acknowledged(home)] == [(seller, "15")]
        forget_acknowledgements(home)  # as if lost: the relayer sends the notice again
        wait_until(lambda: acknowledged(home)[0][2] is not None, "the notice acknowledged again")
        sellers.ping()
        assert resting_ids(sellers, seller) == {"s20"}
    finally:
        running.stop()
    assert [(c.owner, c.min_nonce) for c in raises_journaled(home)] == [(seller, "15")]
    with Store(home.store_path(home.config()), readonly=True) as store:
        report = verify_store(store)
    assert report.ok, report.problems

"""Engine bookkeeping the node relies on: open orders per owner, placing peer, reason codes."""

from collections import Counter

from marketnode.node.core.commands import CancelOrder, NewOrder
from marketnode.node.core.engine import Engine
from marketnode.node.core.events import Cancelled, Rejected, Trade
from marketnode.node.core.reasons import ENGINE_REASONS, CancelReason, Reason
from marketnode.node.home.config import default_markets
from marketnode.node.tools.flow import generate_flow


def test_open_orders_per_owner_follow_the_book():
    engine = Engine(default_markets())
    commands = list(generate_flow(20_000, seed=21, owners=6))
    for start in range(0, len(commands), 500):
        engine.process_all(commands[start : start + 500])
        resting = Counter(order.owner for order in engine.resting_orders())
        assert {owner: n for owner, n in engine.open_orders.items() if n} == dict(resting)
        assert all(n >= 0 for n in engine.open_orders.values())


def test_events_name_the_placing_peer_of_the_order_they_touch():
    engine = Engine(default_markets())
    maker = NewOrder("m", "0xa", "PUNK-ETH", "sell", "limit", "10", "5", peer="alpha")
    taker = NewOrder("t", "0xb", "PUNK-ETH", "buy", "limit", "10", "2", peer="beta")
    self_taker = NewOrder("s", "0xa", "PUNK-ETH", "buy", "limit", "10", "1", "GTC", "cancel_both")
    engine.process_all([maker])
    trade = next(e for e in engine.process_all([taker]) if type(e) is Trade)
    assert trade.maker_peer == "alpha"
    cancels = [e for e in engine.process_all([self_taker]) if type(e) is Cancelled]
    assert [(c.id, c.peer) for c in cancels] == [("m", "alpha"), ("s", None)]


def test_events_carry_reasons_of_the_reason_enums():
    """Rejects carry a `Reason` of the engine's and cancellations a `CancelReason`, members
    rather than look-alike strings (a caller tells a reject from a plan by `type(x) is Reason`);
    a node's own cancel keeps the reason it gave."""
    engine = Engine(default_markets())
    events = engine.process_all(generate_flow(5_000, seed=3, owners=4))
    rejects = {e.reason for e in events if type(e) is Rejected}
    cancels = {e.reason for e in events if type(e) is Cancelled}
    assert rejects and all(type(reason) is Reason for reason in rejects)
    assert rejects <= set(ENGINE_REASONS)
    assert cancels == {CancelReason.USER, CancelReason.IOC, CancelReason.STP}
    assert all(type(reason) is CancelReason for reason in cancels)
    order = next(engine.resting_orders())
    command = CancelOrder(order.id, order.owner, order.market, reason=CancelReason.DISCONNECT)
    cancelled = engine.process_all([command])[1]
    assert cancelled.reason is CancelReason.DISCONNECT

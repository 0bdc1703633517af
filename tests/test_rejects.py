"""Every reject reason, the order in which the checks run, and that refused orders leave the book
exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from marketnode.node.core.commands import (
    CancelOrder,
    Clock,
    MalformedCommand,
    NewOrder,
    ReplaceOrder,
    decode_json_command,
)
from marketnode.node.core.engine import Engine
from marketnode.node.core.events import Accepted, Cancelled, Rejected, Rested, Trade
from marketnode.node.core.markets import MAX_UNITS, MarketSpec
from marketnode.node.core.reasons import (
    ENGINE_REASONS,
    GATEWAY_REASONS,
    MESSAGE_REASONS,
    Reason,
)

SPOT = MarketSpec(
    "BTC-USD",
    "BTC",
    "USD",
    tick_size="0.5",
    lot_size="0.01",
    min_qty="0.02",
    max_qty="1",
    max_notional="50",
)
OTHER = MarketSpec("ETH-USD", "ETH", "USD", tick_size="0.01", lot_size="1")

BUY = {"id": 1, "owner": "a", "market": "BTC-USD", "side": "buy", "price": "100", "qty": "0.1"}


def make_engine() -> Engine:
    return Engine([SPOT, OTHER])


def new(**fields) -> NewOrder:
    return NewOrder(**{**BUY, **fields})


SIGNED = {
    "sig": "0x" + "11" * 65,
    "chain_id": 31337,
    "nonce": 1,
    "expiry": 2_000_000_000,
    "max_fee_bps": 30,
    "order_hash": "0x" + "ab" * 32,
}
"""The signed fields of an order as the engine receives it once the node has verified its
signature (the node sets `order_hash`)."""


def signed(**fields) -> NewOrder:
    return new(**{**SIGNED, **fields})


def expired_at_the_clock(engine: Engine) -> str:
    engine.process_all([Clock(1_900_000_000)])
    return rejected(engine, signed(expiry=1_900_000_000))


def nonce_used_twice(engine: Engine) -> str:
    accepted(engine, signed(id=1, nonce=5, price="99"))
    return rejected(engine, signed(id=2, nonce=5, price="99"))


def rejected(engine: Engine, command) -> str:
    """Process a command that must be refused; return the reason after checking the answer."""
    before = engine.seq
    events = engine.process_all([command])
    assert len(events) == 1, events
    event = events[0]
    assert type(event) is Rejected, event
    assert event.seq == before + 1
    assert (event.id, event.owner) == (command.id, command.owner)
    return event.reason


def accepted(engine: Engine, *commands) -> list:
    events = []
    for command in commands:
        out = engine.process_all([command])
        assert type(out[0]) is Accepted, out
        events.extend(out)
    return events


def snapshot(engine: Engine):
    """Everything observable about the books: orders in priority order with all their fields,
    level totals and the index."""
    result = []
    for symbol, book in engine.books.items():
        for side in (book.bids, book.asks):
            for level in side.levels_best_first():
                live = [msgspec.structs.astuple(order) for order in level.orders if order.remaining]
                result.append((symbol, side.is_bid, level.price, level.qty, level.count, live))
        result.append((symbol, sorted(book.orders, key=repr)))
    return result


# -- one test per reason -----------------------------------------------------------------------


def test_reject_reasons_are_the_documented_list():
    assert all(type(reason) is Reason for reason in ENGINE_REASONS)
    assert ENGINE_REASONS == (
        "unknown_market",
        "bad_side",
        "bad_type",
        "bad_tif",
        "bad_stp",
        "bad_qty",
        "bad_price",
        "off_tick",
        "off_lot",
        "qty_below_min",
        "qty_above_max",
        "notional_above_max",
        "duplicate_id",
        "would_cross",
        "fok_unfillable",
        "expired",
        "nonce_used",
        "unknown_order",
        "malformed",
    )


def test_every_reason_is_the_engines_the_gateways_or_a_whole_messages():
    assert set(ENGINE_REASONS) | set(GATEWAY_REASONS) | set(MESSAGE_REASONS) == set(Reason)
    assert not set(ENGINE_REASONS[:-1]) & (set(GATEWAY_REASONS) | set(MESSAGE_REASONS))
    assert ENGINE_REASONS[-1] is Reason.MALFORMED  # a command's answer and a message's error


def malformed(line: str) -> Reason:
    """The answer to input that is not a command (given at the edge, before the engine)."""
    with pytest.raises(MalformedCommand):
        decode_json_command(line)
    return Reason.MALFORMED


TRIGGERS = {
    Reason.UNKNOWN_MARKET: lambda engine: rejected(engine, new(market="XRP-USD")),
    Reason.BAD_SIDE: lambda engine: rejected(engine, new(side="up")),
    Reason.BAD_TYPE: lambda engine: rejected(engine, new(type="stop")),
    Reason.BAD_TIF: lambda engine: rejected(engine, new(tif="DAY")),
    Reason.BAD_STP: lambda engine: rejected(engine, new(stp="maybe")),
    Reason.BAD_QTY: lambda engine: rejected(engine, new(qty="lots")),
    Reason.BAD_PRICE: lambda engine: rejected(engine, new(price="cheap")),
    Reason.OFF_TICK: lambda engine: rejected(engine, new(price="100.25")),
    Reason.OFF_LOT: lambda engine: rejected(engine, new(qty="0.015")),
    Reason.QTY_BELOW_MIN: lambda engine: rejected(engine, new(qty="0.01")),
    Reason.QTY_ABOVE_MAX: lambda engine: rejected(engine, new(price="1", qty="1.01")),
    Reason.NOTIONAL_ABOVE_MAX: lambda engine: rejected(engine, new(qty="0.6")),
    Reason.DUPLICATE_ID: lambda engine: rejected(engine, new(id=9, owner="b")),
    Reason.WOULD_CROSS: lambda engine: rejected(engine, new(tif="POST_ONLY")),
    Reason.FOK_UNFILLABLE: lambda engine: rejected(engine, new(tif="FOK", qty="0.2")),
    Reason.EXPIRED: expired_at_the_clock,
    Reason.NONCE_USED: nonce_used_twice,
    Reason.UNKNOWN_ORDER: lambda engine: rejected(engine, CancelOrder(2, "a", market="BTC-USD")),
    Reason.MALFORMED: lambda _engine: malformed('{"op": "new", "id": 1}'),
}
"""A command refused for each engine reason, against a book with one ask (b's id 9 at 100)."""


@pytest.mark.parametrize("reason", ENGINE_REASONS)
def test_each_engine_reason_has_a_command_that_triggers_it(reason):
    engine = make_engine()
    accepted(engine, new(id=9, owner="b", side="sell", price="100", qty="0.1"))
    assert TRIGGERS[reason](engine) == reason
    assert set(TRIGGERS) == set(ENGINE_REASONS)


@pytest.mark.parametrize("market", ["XRP-USD", "btc-usd", "", None, 7])
def test_unknown_market(market):
    engine = make_engine()
    assert rejected(engine, new(market=market)) == "unknown_market"
    assert rejected(engine, CancelOrder(1, "a", market=market)) == "unknown_market"
    assert rejected(engine, ReplaceOrder(1, "a", market=market, qty="0.1")) == "unknown_market"


@pytest.mark.parametrize("side", ["BUY", "bid", "", None, 1])
def test_bad_side(side):
    assert rejected(make_engine(), new(side=side)) == "bad_side"


@pytest.mark.parametrize("order_type", ["stop", "LIMIT", "", None])
def test_bad_type(order_type):
    assert rejected(make_engine(), new(type=order_type)) == "bad_type"


@pytest.mark.parametrize("tif", ["gtc", "DAY", "", None])
def test_bad_tif(tif):
    assert rejected(make_engine(), new(tif=tif)) == "bad_tif"


@pytest.mark.parametrize("stp", ["cancel", "NONE", "", 1])
def test_bad_stp(stp):
    assert rejected(make_engine(), new(stp=stp)) == "bad_stp"


@pytest.mark.parametrize("qty", [None, "", "abc", "0", "0.00", "-0.1", "1e-1", "+0.1", " 0.1"])
def test_bad_qty(qty):
    assert rejected(make_engine(), new(qty=qty)) == "bad_qty"
    assert rejected(make_engine(), new(type="market", price=None, qty=qty)) == "bad_qty"


@pytest.mark.parametrize("price", [None, "", "x", "0", "-100", "1e2"])
def test_bad_price(price):
    assert rejected(make_engine(), new(price=price)) == "bad_price"


def test_market_order_price_is_not_checked():
    engine = make_engine()
    accepted(engine, new(id=9, owner="b", side="sell", price="100", qty="0.1"))
    for order_id, price in enumerate([None, "x", "100.25", "0", "1000000"]):
        events = accepted(engine, new(id=order_id, type="market", price=price, qty="0.02"))
        assert [type(event) for event in events] == [Accepted, Trade]
        assert events[1].price == 200  # the maker's price, 100 in ticks of 0.5


def test_off_tick():
    assert rejected(make_engine(), new(price="100.25")) == "off_tick"


def test_off_lot():
    assert rejected(make_engine(), new(qty="0.015")) == "off_lot"


def test_qty_below_min():
    assert rejected(make_engine(), new(qty="0.01")) == "qty_below_min"
    accepted(make_engine(), new(qty="0.02"))


def test_qty_above_max():
    assert rejected(make_engine(), new(price="1", qty="1.01")) == "qty_above_max"
    accepted(make_engine(), new(price="1", qty="1"))


def test_notional_above_max():
    engine = make_engine()
    assert rejected(engine, new(price="100", qty="0.51")) == "notional_above_max"
    assert rejected(engine, new(price="50.5", qty="1")) == "notional_above_max"
    accepted(engine, new(id=2, price="100", qty="0.5"))  # exactly at the maximum


def test_notional_is_not_checked_for_market_orders():
    engine = make_engine()
    accepted(engine, new(id=9, owner="b", side="sell", price="50", qty="1"))
    events = accepted(engine, new(type="market", price="100", qty="0.9"))
    assert [(type(e), getattr(e, "qty", None)) for e in events] == [(Accepted, None), (Trade, 90)]


def test_duplicate_id():
    engine = make_engine()
    accepted(engine, new(price="99"))
    assert rejected(engine, new(price="98", side="buy")) == "duplicate_id"
    assert rejected(engine, new(side="sell", price="101")) == "duplicate_id"
    # The id belongs to its owner and market.
    accepted(engine, new(owner="b", price="98"))
    accepted(engine, new(market="ETH-USD", price="1", qty="1"))
    # An id that is no longer live may be used again.
    accepted(engine, CancelOrder(1, "a", market="BTC-USD"))
    accepted(engine, new(price="99"))


def test_duplicate_id_only_counts_live_orders():
    engine = make_engine()
    accepted(engine, new(side="sell", price="100", qty="0.1"))
    accepted(engine, new(id=5, owner="b", price="100", qty="0.1"))  # fills id 1 completely
    assert not engine.books["BTC-USD"].orders.get(("a", 1))
    accepted(engine, new(side="sell", price="100", qty="0.1"))
    # An IOC/market order never rests, so its id is free again at once.
    accepted(engine, new(id=7, tif="IOC", price="90"))
    accepted(engine, new(id=7, tif="IOC", price="90"))


def test_would_cross():
    engine = make_engine()
    accepted(engine, new(id=9, owner="b", side="sell", price="100"))
    assert rejected(engine, new(tif="POST_ONLY", price="100")) == "would_cross"
    assert rejected(engine, new(tif="POST_ONLY", price="100.5")) == "would_cross"
    events = accepted(engine, new(tif="POST_ONLY", price="99.5"))
    assert [type(event) for event in events] == [Accepted, Rested]


def test_would_cross_against_own_order():
    engine = make_engine()
    accepted(engine, new(id=9, side="sell", price="100"))
    assert rejected(engine, new(tif="POST_ONLY", price="100", stp="none")) == "would_cross"
    assert rejected(engine, new(tif="POST_ONLY", price="100", stp="cancel_oldest")) == "would_cross"


def test_market_post_only():
    engine = make_engine()
    # Nothing to cross: a market order never rests, so it is cancelled.
    events = engine.process_all([new(type="market", price=None, tif="POST_ONLY")])
    assert [type(event) for event in events] == [Accepted, Cancelled]
    assert (events[1].reason, events[1].qty, events[1].remaining) == ("ioc", 10, 0)
    # Any opposite order at all is crossed by a market order.
    accepted(engine, new(id=9, owner="b", side="sell", price="1000", qty="0.02"))
    assert rejected(engine, new(type="market", price=None, tif="POST_ONLY")) == "would_cross"


def test_fok_unfillable():
    engine = make_engine()
    accepted(engine, new(id=9, owner="b", side="sell", price="100", qty="0.1"))
    assert rejected(engine, new(tif="FOK", price="100", qty="0.11")) == "fok_unfillable"
    assert rejected(engine, new(tif="FOK", price="99.5", qty="0.02")) == "fok_unfillable"
    assert rejected(engine, new(tif="FOK", type="market", qty="0.11")) == "fok_unfillable"
    events = accepted(engine, new(tif="FOK", price="100", qty="0.1"))
    assert [type(event) for event in events] == [Accepted, Trade]


def test_fok_on_an_empty_book():
    engine = make_engine()
    assert rejected(engine, new(tif="FOK", type="market", price=None)) == "fok_unfillable"
    assert rejected(engine, new(tif="FOK")) == "fok_unfillable"


@pytest.mark.parametrize(
    ("stp", "reason"),
    [
        ("none", None),  # trades with its own order: filled
        ("cancel_oldest", "fok_unfillable"),  # own order would go, the rest is not enough
        ("cancel_newest", "fok_unfillable"),
        ("cancel_both", "fok_unfillable"),
        ("decrement", "fok_unfillable"),  # a decrement is no fill
    ],
)
def test_fok_meeting_own_order(stp, reason):
    engine = make_engine()
    accepted(
        engine,
        new(id=8, side="sell", price="100", qty="0.05"),
        new(id=9, owner="b", side="sell", price="100", qty="0.05"),
    )
    command = new(tif="FOK", price="100", qty="0.1", stp=stp)
    if reason is None:
        events = accepted(engine, command)
        assert [(e.maker_owner, e.qty) for e in events if type(e) is Trade] == [("a", 5), ("b", 5)]
    else:
        before = snapshot(engine)
        assert rejected(engine, command) == reason
        assert snapshot(engine) == before


def test_fok_cancel_oldest_fills_past_own_order():
    engine = make_engine()
    accepted(
        engine,
        new(id=8, side="sell", price="100", qty="0.05"),
        new(id=9, owner="b", side="sell", price="100", qty="0.1"),
    )
    events = accepted(engine, new(tif="FOK", price="100", qty="0.1", stp="cancel_oldest"))
    summary = [(type(e).__name__, getattr(e, "reason", None), e.qty) for e in events[1:]]
    assert summary == [("Cancelled", "stp", 5), ("Trade", None, 10)]


@pytest.mark.parametrize("stp", ["cancel_newest", "cancel_both", "decrement"])
def test_fok_stopped_by_own_order_behind_enough_liquidity_is_filled(stp):
    """The own order is only met if the FOK is not already filled before it."""
    engine = make_engine()
    accepted(
        engine,
        new(id=9, owner="b", side="sell", price="100", qty="0.1"),
        new(id=8, side="sell", price="100", qty="0.05"),
    )
    events = accepted(engine, new(tif="FOK", price="100", qty="0.1", stp=stp))
    assert [(type(e), e.qty) for e in events[1:]] == [(Trade, 10)]


def test_unknown_order():
    engine = make_engine()
    accepted(engine, new(price="99"))
    assert rejected(engine, CancelOrder(2, "a", market="BTC-USD")) == "unknown_order"
    assert rejected(engine, CancelOrder(1, "b", market="BTC-USD")) == "unknown_order"
    assert rejected(engine, CancelOrder(1, "a", market="ETH-USD")) == "unknown_order"
    assert rejected(engine, CancelOrder("1", "a", market="BTC-USD")) == "unknown_order"
    assert rejected(engine, ReplaceOrder(2, "a", market="BTC-USD", qty="0.2")) == "unknown_order"
    assert rejected(engine, ReplaceOrder(1, "b", market="BTC-USD", price="98")) == "unknown_order"
    assert rejected(engine, ReplaceOrder(1, "a", market="ETH-USD")) == "unknown_order"
    # Gone after a cancel.
    accepted(engine, CancelOrder(1, "a", market="BTC-USD"))
    assert rejected(engine, CancelOrder(1, "a", market="BTC-USD")) == "unknown_order"


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "",
        "[]",
        '"new"',
        '{"id": 1, "owner": "a", "market": "BTC-USD"}',  # no op
        '{"op": "amend", "id": 1, "owner": "a"}',  # unknown op
        '{"op": "new", "owner": "a", "market": "BTC-USD", "side": "buy"}',  # no id
        '{"op": "cancel", "id": 1, "market": "BTC-USD"}',  # no owner
        '{"op": "new", "id": "", "owner": "a"}',  # empty id
        '{"op": "new", "id": 1, "owner": ""}',  # empty owner
        '{"op": "new", "id": [1], "owner": "a"}',
        '{"op": "new", "id": 1, "owner": 5}',
        '{"op": "new", "id": 1, "owner": "a"',
    ],
)
def test_malformed(line):
    with pytest.raises(MalformedCommand) as caught:
        decode_json_command(line)
    assert caught.value.detail
    assert Reason.MALFORMED in ENGINE_REASONS


def test_malformed_echoes_what_it_can():
    with pytest.raises(MalformedCommand) as caught:
        decode_json_command('{"op": "new", "id": 3, "market": "BTC-USD", "qty": "1"}')
    assert caught.value.echo == {"op": "new", "id": 3, "market": "BTC-USD"}


def test_well_formed_but_invalid_fields_are_not_malformed():
    """Fields the engine validates get their own reason, not `malformed`."""
    command = decode_json_command(
        json.dumps({"op": "new", "id": 1, "owner": "a", "market": "BTC-USD", "side": 3})
    )
    assert rejected(make_engine(), command) == "bad_side"
    command = decode_json_command(
        '{"op": "new", "id": 1, "owner": "a", "market": "BTC-USD", "side": "buy", "qty": 0.1,'
        ' "price": 100}'
    )
    events = make_engine().process_all([command])
    assert [type(event) for event in events] == [Accepted, Rested]
    assert (events[1].price, events[1].qty) == (200, 10)


# -- validation order --------------------------------------------------------------------------


def test_checks_run_in_the_documented_order():
    """Start with a command wrong in every way and repair one thing at a time: each repair must
    reveal the next reason in the documented order."""
    engine = make_engine()
    accepted(engine, new(id=9, owner="b", side="sell", price="100", qty="0.1"))
    accepted(engine, new(id=1, owner="a", side="buy", price="90", qty="0.1"))
    fields = {
        "id": 1,
        "owner": "a",
        "market": "XRP-USD",
        "side": "up",
        "type": "stop",
        "tif": "DAY",
        "stp": "maybe",
        "qty": "lots",
        "price": "cheap",
    }
    repairs = [
        ("unknown_market", {"market": "BTC-USD"}),
        ("bad_side", {"side": "buy"}),
        ("bad_type", {"type": "limit"}),
        ("bad_tif", {"tif": "POST_ONLY"}),
        ("bad_stp", {"stp": "none"}),
        ("bad_qty", {"qty": "1.015"}),  # off lot, above max, above max notional
        ("bad_price", {"price": "100.25"}),
        ("off_tick", {"price": "100"}),
        ("off_lot", {"qty": "0.01"}),
        ("qty_below_min", {"qty": "1.01"}),
        ("qty_above_max", {"qty": "0.6"}),
        ("notional_above_max", {"qty": "0.1"}),
        ("duplicate_id", {"id": 2}),
        ("would_cross", {"price": "99.5"}),
    ]
    for reason, repair in repairs:
        assert rejected(engine, NewOrder(**fields)) == reason, fields
        fields.update(repair)
    accepted(engine, NewOrder(**fields))
    # the enum lists the engine's reasons in the order validation really checks them
    assert [reason for reason, _ in repairs] == list(ENGINE_REASONS[: len(repairs)])


def test_fill_or_kill_is_checked_last():
    """The same repairs for a FOK order: `fok_unfillable` comes after every other check (it
    takes the place of `would_cross`, which only a post-only order gets)."""
    engine = make_engine()
    accepted(engine, new(id=9, owner="b", side="sell", price="100", qty="0.1"))
    accepted(engine, new(id=1, owner="a", side="buy", price="90", qty="0.1"))
    fields = {"id": 1, "owner": "a", "market": "XRP-USD", "side": "up", "type": "stop",
              "tif": "DAY", "stp": "maybe", "qty": "lots", "price": "cheap"}  # fmt: skip
    repairs = {
        Reason.UNKNOWN_MARKET: {"market": "BTC-USD"},
        Reason.BAD_SIDE: {"side": "buy"},
        Reason.BAD_TYPE: {"type": "limit"},
        Reason.BAD_TIF: {"tif": "FOK"},
        Reason.BAD_STP: {"stp": "none"},
        Reason.BAD_QTY: {"qty": "1.015"},
        Reason.BAD_PRICE: {"price": "100.25"},
        Reason.OFF_TICK: {"price": "100"},
        Reason.OFF_LOT: {"qty": "0.01"},
        Reason.QTY_BELOW_MIN: {"qty": "1.01"},
        Reason.QTY_ABOVE_MAX: {"qty": "0.2"},
        Reason.DUPLICATE_ID: {"id": 2},
        Reason.FOK_UNFILLABLE: {"qty": "0.1"},
    }
    revealed = []
    for reason, repair in repairs.items():
        revealed.append(rejected(engine, NewOrder(**fields)))
        assert revealed[-1] == reason, fields
        fields.update(repair)
    accepted(engine, NewOrder(**fields))
    assert revealed == [reason for reason in ENGINE_REASONS if reason in repairs]


def test_replace_checks_run_in_the_enums_order():
    """A replace of an order that does not rest, repaired one thing at a time: its checks are
    the new order's that apply, in the same order, then `unknown_order`."""
    engine = make_engine()
    fields = {"market": "XRP-USD", "qty": "abc", "price": "x"}
    repairs = {
        Reason.UNKNOWN_MARKET: {"market": "BTC-USD"},
        Reason.BAD_QTY: {"qty": "0.015"},
        Reason.BAD_PRICE: {"price": "100.25"},
        Reason.OFF_TICK: {"price": "100"},
        Reason.OFF_LOT: {"qty": "0.01"},
        Reason.QTY_BELOW_MIN: {"qty": "2"},
        Reason.QTY_ABOVE_MAX: {"qty": "0.6"},
        Reason.NOTIONAL_ABOVE_MAX: {"qty": "0.1"},
        Reason.UNKNOWN_ORDER: {},
    }
    revealed = []
    for reason, repair in repairs.items():
        revealed.append(rejected(engine, replace(**fields)))
        assert revealed[-1] == reason, fields
        fields.update(repair)
    assert revealed == [reason for reason in ENGINE_REASONS if reason in repairs]


def test_fok_check_comes_after_duplicate_id():
    engine = make_engine()
    accepted(engine, new(price="90"))
    assert rejected(engine, new(tif="FOK", price="100")) == "duplicate_id"
    assert rejected(engine, new(id=2, tif="FOK", price="100")) == "fok_unfillable"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"qty": "0", "price": "x"}, "bad_qty"),
        ({"qty": None, "price": None}, "bad_qty"),
        ({"qty": "0.015", "price": "x"}, "bad_price"),
        ({"qty": "0.015", "price": "100.25"}, "off_tick"),
        ({"qty": "0.001", "price": "100"}, "off_lot"),
        ({"qty": "5.005", "price": "100"}, "off_lot"),
        ({"qty": "5", "price": "100"}, "qty_above_max"),
        ({"qty": "0.01", "price": "10000"}, "qty_below_min"),
        ({"market": "XRP-USD", "side": "x"}, "unknown_market"),
        ({"side": "x", "type": "x", "tif": "x", "stp": "x"}, "bad_side"),
        ({"type": "x", "tif": "x", "stp": "x", "qty": "0"}, "bad_type"),
        ({"tif": "x", "stp": "x", "qty": "0"}, "bad_tif"),
        ({"stp": "x", "qty": "0"}, "bad_stp"),
    ],
)
def test_first_failing_check_wins(fields, reason):
    assert rejected(make_engine(), new(**fields)) == reason


def test_market_order_skips_price_checks_but_not_quantity_checks():
    engine = make_engine()
    assert rejected(engine, new(type="market", price="x", qty="0.015")) == "off_lot"
    assert rejected(engine, new(type="market", price="x", qty="0.01")) == "qty_below_min"


# -- replace validation ------------------------------------------------------------------------


def replace(**fields) -> ReplaceOrder:
    return ReplaceOrder(**{"id": 1, "owner": "a", "market": "BTC-USD", **fields})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"qty": "0", "price": "x"}, "bad_qty"),
        ({"qty": "abc"}, "bad_qty"),
        ({"price": "-1"}, "bad_price"),
        ({"qty": "0.015", "price": "x"}, "bad_price"),
        ({"qty": "0.015", "price": "100.25"}, "off_tick"),
        ({"qty": "0.015", "price": "100"}, "off_lot"),
        ({"qty": "0.01"}, "qty_below_min"),
        ({"qty": "1.5", "price": "1"}, "qty_above_max"),
        ({"qty": "0.6", "price": "100"}, "notional_above_max"),
        ({"qty": "0.6"}, "notional_above_max"),  # price taken from the resting order
        ({"price": "101"}, "notional_above_max"),  # quantity taken from the resting order
    ],
)
def test_replace_checks(fields, reason):
    engine = make_engine()
    accepted(engine, new(price="99.5", qty="0.5"))
    before = snapshot(engine)
    assert rejected(engine, replace(**fields)) == reason
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"qty": "0"}, "bad_qty"),
        ({"price": "x"}, "bad_price"),
        ({"price": "100.25"}, "off_tick"),
        ({"qty": "0.015"}, "off_lot"),
        ({"qty": "0.01"}, "qty_below_min"),
        ({"qty": "2"}, "qty_above_max"),
        ({"qty": "0.6", "price": "100"}, "notional_above_max"),  # both given: checked first
        ({"qty": "0.6"}, "unknown_order"),  # no resting order to take the price from
        ({"price": "1000"}, "unknown_order"),
        ({"qty": "0.1", "price": "100"}, "unknown_order"),
        ({}, "unknown_order"),
    ],
)
def test_replace_of_unknown_order_checks_fields_first(fields, reason):
    engine = make_engine()
    assert rejected(engine, replace(**fields)) == reason
    assert rejected(engine, replace(market="XRP-USD", **fields)) == "unknown_market"


def test_replace_notional_uses_remaining_quantity():
    engine = make_engine()
    accepted(engine, new(id=9, owner="b", side="sell", price="100", qty="0.4"))
    accepted(engine, new(price="100", qty="0.5"))  # 0.4 fills, 0.1 rests
    # 0.1 x 200 = 20 is within the maximum though the original 0.5 x 200 = 100 is not.
    events = accepted(engine, replace(price="200"))
    assert events[1].qty == 10 and not events[1].in_place


# -- refused orders leave the book alone -------------------------------------------------------


def busy_book() -> Engine:
    engine = make_engine()
    accepted(
        engine,
        new(id=1, owner="a", side="sell", price="100", qty="0.05"),
        new(id=2, owner="b", side="sell", price="100", qty="0.05"),
        new(id=3, owner="c", side="sell", price="100.5", qty="0.1"),
        new(id=4, owner="a", side="sell", price="101", qty="0.1"),
        new(id=5, owner="b", side="buy", price="99.5", qty="0.1"),
        new(id=6, owner="a", side="buy", price="99", qty="0.1"),
        new(id=7, owner="c", side="buy", price="99.5", qty="0.02"),
    )
    return engine


@pytest.mark.parametrize(
    "command",
    [
        new(id=10, owner="z", tif="FOK", price="100.5", qty="0.21"),  # 0.2 up to 100.5
        new(id=10, owner="z", tif="FOK", type="market", price=None, qty="0.31"),
        new(id=10, tif="FOK", price="101", qty="0.3", stp="cancel_oldest"),  # a's own skipped
        new(id=10, tif="FOK", price="101", qty="0.1", stp="decrement"),  # meets a's first
        new(id=10, tif="FOK", price="101", qty="0.1", stp="cancel_both"),
        new(id=10, tif="FOK", price="101", qty="0.1", stp="cancel_newest"),
        new(id=10, owner="c", side="sell", tif="FOK", price="99.5", qty="0.13"),
        new(id=10, tif="POST_ONLY", price="100"),
        new(id=10, tif="POST_ONLY", price="105"),
        new(id=10, side="sell", tif="POST_ONLY", price="99.5"),
        new(id=10, side="sell", tif="POST_ONLY", type="market", price=None),
        new(id=10, owner="b", tif="POST_ONLY", price="100", stp="cancel_oldest"),
    ],
)
def test_refused_fok_and_post_only_leave_the_book_untouched(command):
    engine = busy_book()
    before, seq = snapshot(engine), engine.seq
    assert rejected(engine, command) in ("fok_unfillable", "would_cross")
    assert snapshot(engine) == before
    assert engine.seq == seq + 1
    # The same book still matches as before: a sweep takes the asks in price-time order.
    events = engine.process_all([new(id=11, owner="z", price="101", qty="0.3")])
    assert [(e.maker_id, e.qty) for e in events if type(e) is Trade] == [
        (1, 5),
        (2, 5),
        (3, 10),
        (4, 10),
    ]


def test_rejected_commands_change_nothing_but_the_sequence():
    engine = busy_book()
    before, seq = snapshot(engine), engine.seq
    commands = [
        new(id=1, side="sell", price="100"),  # duplicate
        new(id=10, qty="0.015"),
        new(id=10, price="0"),
        CancelOrder(99, "a", market="BTC-USD"),
        replace(id=1, qty="0.6"),
        replace(id=6, price="100.25"),
    ]
    events = engine.process_all(commands)
    assert all(type(event) is Rejected for event in events)
    assert [event.seq for event in events] == list(range(seq + 1, seq + 1 + len(commands)))
    assert snapshot(engine) == before


# -- markets without size bounds ---------------------------------------------------------------

TINY = "0." + "0" * 37 + "1"  # 1e-38, as fine a step as a 40-character decimal allows
FINE = MarketSpec("FINE-USD", "FINE", "USD", tick_size=TINY, lot_size=TINY)
HUGE = "9" * 40


def steps(count: int) -> str:
    """`count` steps of FINE-USD's 1e-38 as decimal text."""
    digits = str(count).rjust(39, "0")
    return f"{digits[:-38]}.{digits[-38:]}"


@pytest.mark.parametrize(
    ("price", "qty", "outcome"),
    [
        (steps(1), steps(MAX_UNITS), ["Accepted", "Rested"]),  # the node's bound, exactly
        (steps(2), steps(2**62 - 1), ["Accepted", "Rested"]),
        (steps(1), steps(MAX_UNITS + 1), ["Rejected", Reason.QTY_ABOVE_MAX]),
        (steps(2), steps(2**62), ["Rejected", Reason.NOTIONAL_ABOVE_MAX]),
        (HUGE, TINY, ["Rejected", Reason.NOTIONAL_ABOVE_MAX]),  # about 1e78 ticks x 1 lot
        (HUGE, "1", ["Rejected", Reason.QTY_ABOVE_MAX]),  # 1e78 ticks x 1e38 lots
        ("1", HUGE, ["Rejected", Reason.QTY_ABOVE_MAX]),  # about 1e78 lots
        (HUGE, HUGE, ["Rejected", Reason.QTY_ABOVE_MAX]),
    ],
)
def test_a_market_without_bounds_takes_sizes_up_to_the_node_s_own(price, qty, outcome):
    """Without max_qty and max_notional a market still refuses more than 2**63 - 1 lots, or
    ticks x lots: an order's record in the store and the wire's integers are 64-bit, and such
    an order used to be accepted and then fail its commit, stopping the node."""
    engine = Engine([FINE])
    command = NewOrder(1, "a", market="FINE-USD", side="buy", price=price, qty=qty)
    events = engine.process_all([command])
    got = [type(event).__name__ for event in events]
    if got[0] == "Rejected":
        got[1:] = [events[0].reason]
    assert got == outcome, events


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"qty": steps(MAX_UNITS)}, ["Accepted", "Replaced", "Rested"]),
        ({"price": steps(MAX_UNITS)}, ["Accepted", "Replaced", "Rested"]),
        ({"qty": steps(MAX_UNITS + 1)}, ["Rejected"]),
        ({"price": steps(MAX_UNITS + 1)}, ["Rejected"]),
        ({"price": HUGE}, ["Rejected"]),
        ({"qty": HUGE}, ["Rejected"]),
    ],
)
def test_a_replace_in_a_market_without_bounds_stays_within_the_node_s_own(fields, outcome):
    engine = Engine([FINE])
    accepted(engine, NewOrder(1, "a", market="FINE-USD", side="buy", price=steps(1), qty=TINY))
    events = engine.process_all([ReplaceOrder(1, "a", market="FINE-USD", **fields)])
    assert [type(event).__name__ for event in events] == outcome, events


def test_engine_doc_lists_the_engine_reasons_in_validation_order():
    """docs/engine.md's table of reject reasons is ENGINE_REASONS, row by row."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "engine.md").read_text()
    table = doc.split("## Reject reasons", 1)[1].split("\n\n")[2]
    rows = [line.split("|")[1].strip().strip("`") for line in table.splitlines()[2:]]
    assert rows == list(ENGINE_REASONS)

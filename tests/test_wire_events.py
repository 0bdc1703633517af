"""Wire events are derived from the core's events: the bytes peers and `mnode replay` get are
the ones the hand-declared wire structs gave, and a field added to a core event reaches the wire
(converted to text if it is a price or quantity, left out if it is the node's own)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from marketnode.node.core.engine import Engine
from marketnode.node.core.events import (
    Accepted,
    Cancelled,
    Lots,
    PeerName,
    Rejected,
    Replaced,
    Rested,
    Ticks,
    Trade,
)
from marketnode.node.home.config import default_markets
from marketnode.node.protocol.messages import PROTOCOL_VERSION, Reply, node_reply_decoder
from marketnode.node.protocol.wire_events import (
    WIRE_FORMS,
    WireTrade,
    derive_wire_events,
    event_record,
    wire_event,
)
from marketnode.node.tools.flow import generate_flow

# -- the wire format as it was declared by hand, field by field ---------------------------------


class DeclaredTrade(msgspec.Struct, tag="trade", tag_field="event", gc=False):
    seq: int
    market: str
    price: str
    qty: str
    maker_id: Any
    maker_owner: str
    taker_id: Any
    taker_owner: str
    aggressor: str
    maker_remaining: str
    taker_remaining: str


class DeclaredRested(msgspec.Struct, tag="rested", tag_field="event", gc=False):
    seq: int
    market: str
    id: Any
    owner: str
    side: str
    price: str
    qty: str


class DeclaredCancelled(msgspec.Struct, tag="cancelled", tag_field="event", gc=False):
    seq: int
    market: str
    id: Any
    owner: str
    reason: str
    qty: str
    remaining: str


class DeclaredReplaced(msgspec.Struct, tag="replaced", tag_field="event", gc=False):
    seq: int
    market: str
    id: Any
    owner: str
    side: str
    price: str
    qty: str
    in_place: bool


def declared(event: Any, books: dict) -> Any:
    """The event in the hand-declared structs, converted field by field as it used to be."""
    kind = type(event)
    if kind is Accepted or kind is Rejected:
        return event
    market = books[event.market].market
    tick, lot = market.tick.text_of, market.lot.text_of
    e = event
    if kind is Trade:
        return DeclaredTrade(
            e.seq, e.market, tick(e.price), lot(e.qty), e.maker_id, e.maker_owner, e.taker_id,
            e.taker_owner, e.aggressor, lot(e.maker_remaining), lot(e.taker_remaining),
        )  # fmt: skip
    if kind is Rested:
        return DeclaredRested(
            e.seq, e.market, e.id, e.owner, e.side, tick(e.price), lot(e.qty)
        )  # fmt: skip
    if kind is Cancelled:
        return DeclaredCancelled(
            e.seq, e.market, e.id, e.owner, e.reason, lot(e.qty), lot(e.remaining)
        )  # fmt: skip
    assert kind is Replaced
    return DeclaredReplaced(
        e.seq, e.market, e.id, e.owner, e.side, tick(e.price), lot(e.qty), e.in_place
    )  # fmt: skip


@pytest.fixture(scope="module")
def flow_events() -> tuple[list, dict]:
    """A seeded flow's events, with peers named on its orders (which must not reach the wire)."""
    engine = Engine(default_markets())
    commands = list(generate_flow(3_000, seed=11))
    for number, command in enumerate(commands):
        if hasattr(command, "peer"):
            command.peer = f"peer-{number % 3}"
    return engine.process_all(commands), engine.books


def test_the_flow_has_every_event_kind(flow_events):
    events, _ = flow_events
    assert {type(event) for event in events} == set(WIRE_FORMS)
    assert any(getattr(event, "peer", None) for event in events)


@pytest.mark.parametrize("encode", [msgspec.msgpack.encode, msgspec.json.encode])
def test_every_event_encodes_as_the_declared_structs_did(flow_events, encode):
    events, books = flow_events
    for event in events:
        assert encode(wire_event(event, books)) == encode(declared(event, books)), event


@pytest.mark.parametrize(
    ("kind", "old"),
    [
        (Trade, DeclaredTrade),
        (Rested, DeclaredRested),
        (Cancelled, DeclaredCancelled),
        (Replaced, DeclaredReplaced),
    ],
)
def test_derived_structs_have_the_declared_fields_tags_and_types(kind, old):
    form = WIRE_FORMS[kind]
    assert form.__name__ == old.__name__.replace("Declared", "Wire")
    assert form.__struct_config__.tag == old.__struct_config__.tag
    assert form.__struct_config__.tag_field == "event"
    assert [(f.name, f.type, f.required) for f in msgspec.structs.fields(form)] == [
        (f.name, f.type, f.required) for f in msgspec.structs.fields(old)
    ]


def test_accepted_and_rejected_leave_as_they_are(flow_events):
    events, books = flow_events
    assert WIRE_FORMS[Accepted] is Accepted and WIRE_FORMS[Rejected] is Rejected
    answer = next(event for event in events if type(event) is Rejected)
    assert wire_event(answer, books) is answer


def test_a_reply_of_wire_events_decodes_back(flow_events):
    events, books = flow_events
    wire = [wire_event(event, books) for event in events[:200]]
    decoded = node_reply_decoder.decode(msgspec.msgpack.encode(Reply(PROTOCOL_VERSION, wire, 7)))
    assert decoded.events == wire
    assert {type(event) for event in decoded.events} >= {Accepted, WireTrade}


def test_event_record_is_the_wire_event_as_a_dict(flow_events):
    events, books = flow_events
    trade = next(event for event in events if type(event) is Trade)
    record = event_record(trade, books)
    assert list(record)[:3] == ["event", "seq", "market"]
    assert record["event"] == "trade" and isinstance(record["price"], str)
    assert "maker_peer" not in record and "taker_peer" not in record


def test_something_that_is_not_an_event_is_refused(flow_events):
    _, books = flow_events
    with pytest.raises(TypeError, match="not an event"):
        wire_event(object(), books)


# -- a field added to a core event ---------------------------------------------------------------


class Settled(msgspec.Struct, tag="settled", tag_field="event", omit_defaults=True, gc=False):
    """A made-up event kind with a field of every sort, as a new core event would have."""

    seq: int
    market: str
    price: Ticks
    qty: Lots
    fee: Lots
    venue: str
    peer: PeerName = None


def test_a_new_field_reaches_the_wire_converted_by_its_role(flow_events):
    _, books = flow_events
    forms, convert = derive_wire_events((Accepted, Settled))
    form = forms[Settled]
    assert form.__name__ == "WireSettled" and form.__struct_config__.tag == "settled"
    fields = [(f.name, f.type) for f in msgspec.structs.fields(form)]
    assert fields == [
        ("seq", int), ("market", str), ("price", str), ("qty", str), ("fee", str), ("venue", str)
    ]  # fmt: skip
    market = next(iter(books.values())).market
    event = Settled(5, market.symbol, 3, 7, 2, "otc", peer="peer-1")
    wire = convert(event, books)
    assert type(wire) is form
    assert msgspec.to_builtins(wire) == {
        "event": "settled",
        "seq": 5,
        "market": market.symbol,
        "price": market.tick.text_of(3),
        "qty": market.lot.text_of(7),
        "fee": market.lot.text_of(2),
        "venue": "otc",
    }
    accepted = Accepted(6, "new", market.symbol, 1, "a")
    assert forms[Accepted] is Accepted and convert(accepted, books) is accepted
    with pytest.raises(TypeError, match="not an event"):
        convert(Trade(1, market.symbol, 1, 1, 1, "a", 2, "b", "buy", 0, 0), books)


def test_a_price_without_a_market_is_refused_when_derived():
    class Quoted(msgspec.Struct, tag="quoted", tag_field="event"):
        seq: int
        price: Ticks

    with pytest.raises(TypeError, match="no market"):
        derive_wire_events((Quoted,))

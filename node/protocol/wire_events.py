"""Results: events in engine units turned into wire records with decimal text.

`accepted` and `rejected` carry no prices and leave as they are; the others are rebuilt with
prices and quantities as canonical decimal strings (the per-market text caches make this a dict
hit), and without the placing peer's name, which is the node's business, not the counterparty's.
The same records are encoded as msgpack for peers and as JSON by `mnode replay`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..core.book import OrderBook
from ..core.events import Accepted, Cancelled, Rejected, Replaced, Rested, Trade


class WireTrade(msgspec.Struct, tag="trade", tag_field="event", gc=False):
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


class WireRested(msgspec.Struct, tag="rested", tag_field="event", gc=False):
    seq: int
    market: str
    id: Any
    owner: str
    side: str
    price: str
    qty: str


class WireCancelled(msgspec.Struct, tag="cancelled", tag_field="event", gc=False):
    seq: int
    market: str
    id: Any
    owner: str
    reason: str
    qty: str
    remaining: str


class WireReplaced(msgspec.Struct, tag="replaced", tag_field="event", gc=False):
    seq: int
    market: str
    id: Any
    owner: str
    side: str
    price: str
    qty: str
    in_place: bool


WireEvent = Accepted | Rejected | WireTrade | WireRested | WireCancelled | WireReplaced


def wire_event(event: Any, books: dict[str, OrderBook]) -> WireEvent:
    """The event as peers and files see it: decimal text, no peer names."""
    kind = type(event)
    if kind is Accepted or kind is Rejected:
        return event
    market = books[event.market].market
    lot = market.lot.text_of
    if kind is Trade:
        return WireTrade(
            event.seq,
            event.market,
            market.tick.text_of(event.price),
            lot(event.qty),
            event.maker_id,
            event.maker_owner,
            event.taker_id,
            event.taker_owner,
            event.aggressor,
            lot(event.maker_remaining),
            lot(event.taker_remaining),
        )
    if kind is Rested:
        return WireRested(
            event.seq,
            event.market,
            event.id,
            event.owner,
            event.side,
            market.tick.text_of(event.price),
            lot(event.qty),
        )
    if kind is Cancelled:
        return WireCancelled(
            event.seq,
            event.market,
            event.id,
            event.owner,
            event.reason,
            lot(event.qty),
            lot(event.remaining),
        )
    if kind is Replaced:
        return WireReplaced(
            event.seq,
            event.market,
            event.id,
            event.owner,
            event.side,
            market.tick.text_of(event.price),
            lot(event.qty),
            event.in_place,
        )
    raise TypeError(f"not an event: {event!r}")


def event_record(event: Any, books: dict[str, OrderBook]) -> dict[str, Any]:
    """The event as a plain dict (`event` first), as JSON and msgpack render it."""
    return msgspec.to_builtins(wire_event(event, books))

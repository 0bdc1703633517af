"""Events: what the engine reports, in engine units (ticks, lots).

Every event carries `seq`, the engine's sequence number: one counter over all events, gapless and
increasing, so a consumer detects a gap and a replay reproduces the numbers exactly. The first
event of every command is its answer, `accepted` or `rejected`.

Prices and quantities are annotated `Ticks` and `Lots`, and the placing peers' names `PeerName`:
`node/protocol/wire_events.py` derives the events as peers see them from these annotations
(decimal text, no peer names), so a field added here reaches the wire without a second edit.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import msgspec


class Role(Enum):
    """What an event field holds beyond its type, for those who show events to the outside."""

    TICKS = "ticks"
    """A price in whole ticks of the event's market."""
    LOTS = "lots"
    """A quantity in whole lots of the event's market."""
    NODE_ONLY = "node_only"
    """The node's own business, never shown to a peer (who placed an order)."""


Ticks = Annotated[int, Role.TICKS]
Lots = Annotated[int, Role.LOTS]
PeerName = Annotated[str | None, Role.NODE_ONLY]


class Accepted(msgspec.Struct, tag="accepted", tag_field="event", gc=False):
    seq: int
    op: str
    market: str
    id: Any
    owner: str


class Rejected(msgspec.Struct, tag="rejected", tag_field="event", omit_defaults=True, gc=False):
    """A command refused with `reason`; `seq` is None only for input never sequenced (malformed)."""

    seq: int | None
    op: Any
    market: Any
    id: Any
    owner: Any
    reason: str
    detail: str | None = None


class Trade(msgspec.Struct, tag="trade", tag_field="event", omit_defaults=True, gc=False):
    """A fill at the maker's price; `aggressor` is the taker's side. `maker_peer` and
    `taker_peer` name the peers that placed the two orders, so the node can report to them."""

    seq: int
    market: str
    price: Ticks
    qty: Lots
    maker_id: Any
    maker_owner: str
    taker_id: Any
    taker_owner: str
    aggressor: str
    maker_remaining: Lots
    taker_remaining: Lots
    maker_peer: PeerName = None
    taker_peer: PeerName = None


class Rested(msgspec.Struct, tag="rested", tag_field="event", omit_defaults=True, gc=False):
    """An order (or its remainder) now rests on the book; its priority is this `seq`."""

    seq: int
    market: str
    id: Any
    owner: str
    side: str
    price: Ticks
    qty: Lots
    peer: PeerName = None


class Cancelled(msgspec.Struct, tag="cancelled", tag_field="event", omit_defaults=True, gc=False):
    """`qty` was taken off an order for `reason` (user, ioc, stp); `remaining` 0 means it is gone.

    A self-trade `decrement` is the one case where `remaining` stays above 0. `peer` names the
    peer that placed the order.
    """

    seq: int
    market: str
    id: Any
    owner: str
    reason: str
    qty: Lots
    remaining: Lots
    peer: PeerName = None


class Replaced(msgspec.Struct, tag="replaced", tag_field="event", omit_defaults=True, gc=False):
    """A replace applied: in place (priority kept) or by re-entry (its events follow)."""

    seq: int
    market: str
    id: Any
    owner: str
    side: str
    price: Ticks
    qty: Lots
    in_place: bool
    peer: PeerName = None


Event = Accepted | Rejected | Trade | Rested | Cancelled | Replaced

"""The admin requests of a market's move between nodes (`mnode markets move`): the source
halts the market and exports its book, the destination imports it, each journaled.

`market_export` (on the source): the market is halted (as `halt` does, so it stays halted
across restarts), then `ExportMarket` is journaled and committed, taking every resting order
off; the answer is the book as it left, in time priority, with the market's rules and its hash.
`market_import` (on the destination, the market halted there and its book empty): the book is
checked against its hash and the rules against this node's, then `ImportMarket` is journaled and
committed, and the answer carries the hash of the book now resting here, so the mover compares
the two. The market stays halted until the mover resumes it. Both publish the book's change
like any batch. Peers are not told: their orders did not change, only the node holding them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..core.book import Order
from ..core.commands import ExportMarket, ImportMarket, MovedOrder
from ..core.markets import MarketSpec
from ..core.moving import MarketMoveRefused, check_import, moved_orders
from ..protocol.messages import AdminRequest
from ..store.statehash import format_hash, hash_records, order_key, order_value
from .view import NodeView

Refusal = type[Exception]
"""The exception the admin desk answers as a refusal (its `AdminRefused`), passed in by it."""


class MovedBook(msgspec.Struct, forbid_unknown_fields=True):
    """A market's book in transit: what `market_export` answers and `market_import` takes."""

    market: str
    source: str
    spec: MarketSpec
    orders: list[MovedOrder]
    hash: str


def market_hash(market: str, orders: list[MovedOrder]) -> str:
    """The state hash of a market's book, its orders numbered by their place in time priority
    rather than by the seq they rested at (which differs from node to node): equal on both
    ends of a move when the book arrived whole and in order."""
    ranked = (
        Order(market, o.id, o.owner, o.is_buy, o.price, o.remaining, rank, o.stp, o.peer,
              o.expiry, o.order_hash)
        for rank, o in enumerate(orders)
    )  # fmt: skip
    return format_hash(hash_records((order_key(order), order_value(order)) for order in ranked))


def market_export(view: NodeView, request: AdminRequest, refused: Refusal) -> dict[str, Any]:
    market = request.market
    book = view.books.get(market) if market is not None else None
    if book is None:
        raise refused(f"unknown market {market!r}")
    if book.market.spec.signatures != "off":
        raise refused(
            f"market {market!r} takes signed orders: moving it (its owners' used nonces "
            "with it) is not supported yet"
        )
    params = request.params or []
    if len(params) != 1 or not isinstance(params[0], str) or not params[0]:
        raise refused("market_export takes params [DESTINATION_NODE]")
    orders = moved_orders(view.durable.engine, market)
    view.set_halted(market, True)
    _journal(view, ExportMarket(market, params[0]))
    moved = MovedBook(market, view.config.node.name, book.market.spec, orders,
                      market_hash(market, orders))  # fmt: skip
    return {**msgspec.to_builtins(moved), "seq": view.seq}


def market_import(view: NodeView, request: AdminRequest, refused: Refusal) -> dict[str, Any]:
    params = request.params or []
    try:
        if len(params) != 1:
            raise msgspec.ValidationError("params must be [BOOK] (what market_export answered)")
        moved = msgspec.convert(params[0], MovedBook)
    except (msgspec.ValidationError, TypeError) as error:
        raise refused(f"market_import: {error}") from None
    market = moved.market
    if request.market != market:
        raise refused(f"market_import: the book is of {market!r}, not {request.market!r}")
    if market_hash(market, moved.orders) != moved.hash:
        raise refused(f"market_import: the book of {market!r} does not match its hash")
    if market in view.books and market not in view.halted:
        raise refused(f"market {market!r} is trading here: halt it before importing its book")
    command = ImportMarket(market, moved.source, moved.orders)
    try:
        check_import(view.durable.engine, command, moved.spec)
    except MarketMoveRefused as error:
        raise refused(str(error)) from None
    _journal(view, command)
    resting = moved_orders(view.durable.engine, market)
    return {"market": market, "orders": len(resting), "hash": market_hash(market, resting),
            "seq": view.seq}  # fmt: skip


def _journal(view: NodeView, command: object) -> None:
    """Apply, journal and commit one command of the node's own, and publish the book's change
    (CommitFailed, a StoreError, is the admin desk's `store_unavailable` answer)."""
    out: list = []
    view.durable.process(command, out)
    changed = view.durable.commit()
    view.market_data.publish(view.books, {}, changed)

"""A market's book moving between nodes: taken off the source, rested on the destination.

Both ends are journaled commands (`ExportMarket`, `ImportMarket` in commands.py) so that a
replay of either node's journal reaches the same books and state hash; the compiled core runs
them through the same handlers as the Python engine (they are rare, like market configuration),
so the two cores cannot differ on them. Time priority survives the move: the orders travel in
priority order and each takes the destination's next seq as its priority, which keeps them in
that order ahead of anything placed there later, across restarts too (a restore sorts by
priority).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Protocol

from .book import Order, OrderBook
from .commands import ExportMarket, ImportMarket, MovedOrder
from .events import Cancelled, Rested
from .markets import MarketSpec
from .reasons import CancelReason


class Engine(Protocol):
    """What of the engine a move reads and changes (engine.py's `Engine`, which imports this
    module to dispatch the two commands)."""

    books: dict[str, OrderBook]
    seq: int
    open_orders: defaultdict[str, int]
    touched: set[Order]
    expiries: list[tuple[int, int, Order]]


class MarketMoveRefused(ValueError):
    """A move this node cannot take part in (one line for the operator)."""


def orders_in_priority(book: OrderBook) -> list[Order]:
    """The book's live orders, oldest first."""
    return sorted(book.orders.values(), key=lambda order: order.priority)


def moved_orders(engine: Engine, market: str) -> list[MovedOrder]:
    """What an export of `market` carries: its resting orders in time priority."""
    book = engine.books.get(market)
    if book is None:
        raise MarketMoveRefused(f"unknown market {market!r}")
    return [
        MovedOrder(o.owner, o.id, o.is_buy, o.price, o.remaining, o.stp, o.peer, o.expiry,
                   o.order_hash, None if o.nonce is None else str(o.nonce))
        for o in orders_in_priority(book)
    ]  # fmt: skip


def check_import(engine: Engine, command: ImportMarket, spec: MarketSpec) -> None:
    """Refuse an import unless the market is configured here with the rules it was exported
    under (`spec`: prices and quantities travel in its ticks and lots) and its book is empty."""
    book = engine.books.get(command.market)
    if book is None:
        raise MarketMoveRefused(f"market {command.market!r} is not configured on this node")
    if book.market.spec != spec:
        raise MarketMoveRefused(
            f"market {command.market!r} has other rules here than on {command.source!r}"
        )
    if book.orders:
        raise MarketMoveRefused(
            f"market {command.market!r} already has {len(book.orders)} resting orders here"
        )
    keys = {(order.owner, order.id) for order in command.orders}
    if len(keys) != len(command.orders):
        raise MarketMoveRefused(f"the export of {command.market!r} lists an order twice")


def export_market(engine: Engine, command: ExportMarket, out: list) -> None:
    """Take every resting order of the market off its book, oldest first, each reported
    `cancelled` with reason `moved` (its whole remaining quantity)."""
    book = engine.books.get(command.market)
    if book is None:
        return
    for order in orders_in_priority(book):
        engine.seq += 1
        out.append(
            Cancelled(engine.seq, book.symbol, order.id, order.owner, CancelReason.MOVED,
                      order.remaining, 0, order.peer)
        )  # fmt: skip
        book.take_off(order)
        engine.open_orders[order.owner] -= 1
        engine.touched.add(order)


def import_market(engine: Engine, command: ImportMarket, out: list) -> None:
    """Rest the arriving orders in the order given, each with the next seq as its priority,
    each reported `rested`."""
    book = engine.books[command.market]
    for moved in command.orders:
        seq = engine.seq = engine.seq + 1
        nonce = None if moved.nonce is None else int(moved.nonce)
        order = Order(book.symbol, moved.id, moved.owner, moved.is_buy, moved.price,
                      moved.remaining, seq, moved.stp, moved.peer, moved.expiry,
                      moved.order_hash, nonce)  # fmt: skip
        book.rest(order)
        engine.open_orders[order.owner] += 1
        engine.touched.add(order)
        if order.expiry:
            heapq.heappush(engine.expiries, (order.expiry, order.priority, order))
        side = "buy" if order.is_buy else "sell"
        out.append(Rested(seq, book.symbol, order.id, order.owner, side, order.price,
                          order.remaining, order.peer))  # fmt: skip

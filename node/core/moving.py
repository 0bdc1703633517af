"""A market's book moving between nodes: taken off the source, rested on the destination.

Both ends are journaled commands (`ExportMarket`, `ImportMarket` in commands.py) so that a
replay of either node's journal reaches the same books and state hash; the compiled core runs
them through the same handlers as the Python engine (they are rare, like market configuration),
so the two cores cannot differ on them. Time priority survives the move: the orders travel in
priority order and each takes the destination's next seq as its priority, which keeps them in
that order ahead of anything placed there later, across restarts too (a restore sorts by
priority).

A market taking signed orders moves with its owners' used nonces, so that what holds on the
source holds on the destination:

- a signed order resting on the source rests on the destination with its signature's facts
  (order hash, nonce, expiry): it matches, expires and is cancelled by its owner's signed
  cancel (which names its order hash) there as it would have been at home; it travels with the
  journaled signed `new` that placed it (`MovedOrder.placed`: the signature, the signed
  quantity and fee), so the destination's journal holds what a relayer needs to settle its
  trades, as the same order (the contract knows it by its hash);
- a signed order already used on the source (filled, cancelled, or resting and moved) cannot
  be placed again on the destination (`nonce_used`), and an owner's raised minimum nonce holds
  there: the import merges the nonces.

Nonces are per owner across markets, and the node's nonce book does not say in which market a
nonce was used (a signed order names its tokens, not a market), so the export carries the used
nonces of every owner the source knows, not only of those with orders in the market: an owner
whose order here was filled and who has none resting would otherwise be free to replay it on
the destination. `ImportMarket` merges them into the destination's book before the orders
rest (each floor only upward, each used nonce above it added), journaled with the import, so a
replay of the destination's journal, and `mnode verify`, rebuild the same book and hash. The
merge cancels nothing: a floor also rises by counting up, and tells no raised minimum from
used nonces; an order resting on the destination below a minimum raised on chain is cancelled
when the destination hears of the raise. The source keeps its whole nonce book (a nonce is used
for ever, and a move back merges the same nonces again, a no-op).

On chain the contract is the last word either way: it keys the fills of an order by its hash
(`filled`, at most the signed quantity over every node that matched it) and refuses orders
below the owner's minimum nonce, so a replay that slipped past the nodes still could not settle
twice; the merge keeps the nodes from matching it at all.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Protocol

from .book import Order, OrderBook
from .commands import ExportMarket, ImportMarket, MovedNonces, MovedOrder
from .events import Cancelled, Rested
from .markets import MarketSpec
from .nonces import NonceBook
from .reasons import CancelReason


class Engine(Protocol):
    """What of the engine a move reads and changes (engine.py's `Engine`, which imports this
    module to dispatch the two commands)."""

    books: dict[str, OrderBook]
    seq: int
    open_orders: defaultdict[str, int]
    touched: set[Order]
    expiries: list[tuple[int, int, Order]]
    nonces: NonceBook


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


def moved_nonces(engine: Engine, market: str) -> list[MovedNonces] | None:
    """What an export of a signed market carries besides its orders: the used nonces of every
    owner this node knows (the module's docstring says why every owner); None for a market
    taking no signed orders and holding none (one whose signatures were turned off may)."""
    book = engine.books[market]
    if book.market.spec.signatures == "off" and not any(
        order.nonce is not None for order in book.orders.values()
    ):
        return None
    moved = []
    for owner in engine.nonces.owners():
        floor, above = engine.nonces.state_of(owner)
        moved.append(MovedNonces(owner, str(floor), [str(nonce) for nonce in above]))
    return moved


def nonce_state(moved: MovedNonces) -> tuple[str, int, list[int]]:
    """(owner, floor, used nonces above it) of a moved owner's nonces, as numbers."""
    return moved.owner, int(moved.floor), [int(nonce) for nonce in moved.above]


def nonce_book_of(nonces: list[MovedNonces]) -> NonceBook:
    book = NonceBook()
    for moved in nonces:
        book.restore(*nonce_state(moved))
    return book


def nonces_held(engine: Engine, nonces: list[MovedNonces]) -> bool:
    """Whether this node holds used every nonce `nonces` say are (after their import)."""
    return all(engine.nonces.holds(*nonce_state(moved)) for moved in nonces)


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
    signed = [order for order in command.orders if order.nonce is not None]
    if command.nonces is None:
        if signed:
            raise MarketMoveRefused(f"the export of {command.market!r} carries signed orders "
                                    "without their owners' used nonces")  # fmt: skip
        return
    if len({moved.owner for moved in command.nonces}) != len(command.nonces):
        raise MarketMoveRefused(f"the export of {command.market!r} lists an owner's nonces twice")
    carried = nonce_book_of(command.nonces)
    for order in signed:
        lacking = _lacking(order, carried)
        if lacking:
            raise MarketMoveRefused(f"the export of {command.market!r} carries order "
                                    f"{order.id!r} of {order.owner} without {lacking}")  # fmt: skip


def _lacking(order: MovedOrder, carried: NonceBook) -> str | None:
    """What a moved signed order lacks: its nonce used among the carried ones, or the signed
    `new` that placed it (the same owner, id and order hash, with its signature)."""
    if not carried.is_used(order.owner, int(str(order.nonce))):
        return "its nonce used"
    placed = order.placed
    facts = (order.owner, order.id, order.order_hash)
    if placed is None or placed.sig is None or (placed.owner, placed.id, placed.order_hash) \
            != facts:  # fmt: skip
        return "the signed order placing it"
    return None


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
    """Merge the arriving used nonces into this node's (a signed market's move), then rest the
    arriving orders in the order given, each with the next seq as its priority, each reported
    `rested`."""
    for owner_nonces in command.nonces or ():
        engine.nonces.merge(*nonce_state(owner_nonces))
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

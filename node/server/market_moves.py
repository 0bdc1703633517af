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

Both can be asked again, so a mover that lost an answer (a time-out, its command killed) asks
instead of guessing. An export names its move (params [DESTINATION, MOVE]); the node keeps the
book it exported beside its store, and the same move asked again while the market is still
halted and empty here is answered that book again (`again`: true), not a second, empty export.
An import of a book carrying its move is kept the same way: the same book asked again is
answered `again` (it was imported here, whatever was traded since) rather than refused.

A market taking signed orders travels with the used nonces of every owner the source knows
(node/core/moving.py says why), and each signed order with the journaled `new` that placed it
(found in the journal, newest first). The book's hash covers the nonces; the destination's
answer hashes them too once it holds each of them used, so an import that lost one answers
another hash and the mover takes the book back.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..core.book import Order
from ..core.commands import ExportMarket, ImportMarket, MovedNonces, MovedOrder, NewOrder
from ..core.markets import MarketSpec
from ..core.moving import (
    MarketMoveRefused,
    check_import,
    moved_nonces,
    moved_orders,
    nonce_state,
    nonces_held,
)
from ..protocol.messages import AdminRequest
from ..store.statehash import (
    format_hash,
    hash_records,
    nonce_key,
    nonce_value,
    order_key,
    order_value,
)
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
    move: str | None = None
    """The move carrying it (its id in the directory), which makes asking twice safe."""
    nonces: list[MovedNonces] | None = None
    """A signed market's: the used nonces of every owner the source knows."""


def market_hash(
    market: str, orders: list[MovedOrder], nonces: list[MovedNonces] | None = None
) -> str:
    """The state hash of a market's book, its orders numbered by their place in time priority
    rather than by the seq they rested at (which differs from node to node), with the used
    nonces it carries: equal on both ends of a move when the book arrived whole and in order
    (and an unsigned market's the same as before signed markets moved)."""
    ranked = (
        Order(market, o.id, o.owner, o.is_buy, o.price, o.remaining, rank, o.stp, o.peer,
              o.expiry, o.order_hash)
        for rank, o in enumerate(orders)
    )  # fmt: skip
    records = [(order_key(order), order_value(order)) for order in ranked]
    for moved in nonces or ():
        owner, floor, above = nonce_state(moved)
        records.append((nonce_key(owner), nonce_value(floor, above)))
    return format_hash(hash_records(records))


def market_export(view: NodeView, request: AdminRequest, refused: Refusal) -> dict[str, Any]:
    market = request.market
    book = view.books.get(market) if market is not None else None
    if market is None or book is None:
        raise refused(f"unknown market {market!r}")
    params = request.params or []
    if not 1 <= len(params) <= 2 or not all(isinstance(p, str) and p for p in params):
        raise refused("market_export takes params [DESTINATION_NODE] or [DESTINATION_NODE, MOVE]")
    destination, move = params[0], (params[1] if len(params) == 2 else None)
    kept = _kept(view, EXPORTED, market)
    if move is not None and kept[:2] == [destination, move] and market in view.halted \
            and not book.orders:  # fmt: skip
        return {**msgspec.json.decode(kept[2]), "seq": view.seq, "again": True}
    engine = view.durable.engine
    orders = moved_orders(engine, market)
    unplaced = with_their_signed_new(view, orders)
    if unplaced:
        raise refused(f"market {market!r}: the journal has no signed `new` for its resting "
                      f"signed order {unplaced[0].id!r} of {unplaced[0].owner}")  # fmt: skip
    nonces = moved_nonces(engine, market)
    moved = MovedBook(market, view.config.node.name, book.market.spec, orders,
                      market_hash(market, orders, nonces), move, nonces)  # fmt: skip
    answer = msgspec.to_builtins(moved)
    if move is not None:  # kept first: once journaled, a repeat must find it
        _keep(view, EXPORTED, market, [destination, move, msgspec.json.encode(answer).decode()])
    view.set_halted(market, True)
    _journal(view, ExportMarket(market, destination))
    _keep(view, IMPORTED, market, [])
    return {**answer, "seq": view.seq, "again": False}


JOURNAL_WINDOW = 65_536
"""Commands read at a time, newest first, looking for the signed `new` of resting orders."""


def with_their_signed_new(view: NodeView, orders: list[MovedOrder]) -> list[MovedOrder]:
    """Give each signed order among `orders` the journaled `new` that placed it (`placed`),
    or that an import brought it with; the signed orders none was found for. The journal is
    read from its end back, a window at a time: the orders resting now were mostly placed of
    late. A `new` refused as a duplicate id of the same signed order matches too: its signed
    fields are the same, its signature verified like the first's."""
    wanted = {(o.owner, o.id, o.order_hash): o for o in orders if o.nonce is not None}
    durable = view.durable
    end = durable.journal_length
    while wanted and end > 0:
        start = max(0, end - JOURNAL_WINDOW)
        for _, command in durable.store.journal(start, end):
            if type(command) is NewOrder and command.sig is not None:
                placing = [command]
            elif type(command) is ImportMarket:
                placing = [moved.placed for moved in command.orders if moved.placed is not None]
            else:
                continue
            for new in placing:
                order = wanted.get((new.owner, new.id, new.order_hash))
                if order is not None:
                    order.placed = new
        wanted = {key: order for key, order in wanted.items() if order.placed is None}
        end = start
    return list(wanted.values())


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
    if market_hash(market, moved.orders, moved.nonces) != moved.hash:
        raise refused(f"market_import: the book of {market!r} does not match its hash")
    if moved.move is not None and _kept(view, IMPORTED, market) == [moved.move, moved.hash]:
        return {"market": market, "orders": len(moved.orders), "hash": moved.hash,
                "seq": view.seq, "again": True}  # fmt: skip
    if market in view.books and market not in view.halted:
        raise refused(f"market {market!r} is trading here: halt it before importing its book")
    command = ImportMarket(market, moved.source, moved.orders, moved.nonces)
    engine = view.durable.engine
    try:
        check_import(engine, command, moved.spec)
    except MarketMoveRefused as error:
        raise refused(str(error)) from None
    _journal(view, command)
    resting = moved_orders(engine, market)
    held = moved.nonces if moved.nonces and nonces_held(engine, moved.nonces) else None
    arrived = market_hash(market, resting, held)
    _keep(view, EXPORTED, market, [])  # the market is here again: its last export is history
    if moved.move is not None:  # what a repeat is answered: the hash as it arrived
        _keep(view, IMPORTED, market, [moved.move, arrived])
    return {"market": market, "orders": len(resting), "hash": arrived, "seq": view.seq,
            "again": False}  # fmt: skip


EXPORTED = b"move_exported:"
"""Per market, beside the books: [DESTINATION, MOVE, BOOK_JSON] of its last export."""
IMPORTED = b"move_imported:"
"""Per market, beside the books: [MOVE, HASH] of the last book imported here."""


def _kept(view: NodeView, kind: bytes, market: str) -> list[str]:
    return view.durable.store.get_meta_list(kind + market.encode())


def _keep(view: NodeView, kind: bytes, market: str, values: list[str]) -> None:
    view.durable.store.put_meta_list(kind + market.encode(), values)


def _journal(view: NodeView, command: object) -> None:
    """Apply, journal and commit one command of the node's own, and publish the book's change
    (CommitFailed, a StoreError, is the admin desk's `store_unavailable` answer)."""
    out: list = []
    view.durable.process(command, out)
    changed = view.durable.commit()
    view.market_data.publish(view.books, {}, changed)

"""The matching engine: sequence, validate, match, report. One thread, no I/O, no locks, no floats.

Commands go in through `process`; events come out in the caller's list. The engine remembers which
orders it changed since the last `take_changes()` so the store can write exactly those, and the
same command sequence always yields the same events and the same book (and so the same state hash).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .book import Order, OrderBook
from .commands import (
    CancelOrder,
    Clock,
    ConfigureMarkets,
    ExportMarket,
    ImportMarket,
    NewOrder,
    RaiseMinNonce,
    ReplaceOrder,
)
from .decimals import parse_decimal
from .events import Accepted, Cancelled, Rejected, Replaced, Rested
from .markets import Market, MarketSpec
from .matching import match
from .moving import export_market, import_market
from .nonces import NonceBook
from .reasons import CancelReason, Reason
from .validation import book_for, validate_new, validate_replace


class MarketChangeRefused(ValueError):
    """A market change that would reinterpret or orphan resting orders."""


class Engine:
    """All markets' books and the event sequence counter."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Engine:
        """`Engine(...)` builds the core that MARKETNODE_CORE or `[engine] core` chooses
        (node/core/compiled: the compiled one where it built); a subclass is built as itself."""
        if cls is Engine:
            from .compiled import compiled_engine_class

            cls = compiled_engine_class() or cls
        return super().__new__(cls)

    def __init__(self, markets: Sequence[MarketSpec] = ()) -> None:
        self.books: dict[str, OrderBook] = {}
        self.seq = 0
        self.touched: set[Order] = set()
        self.open_orders: defaultdict[str, int] = defaultdict(int)
        """Resting orders per owner, across markets (the node limits it)."""
        self.now = 0
        """The node's clock as last journaled (a `Clock` command), unix seconds."""
        self.nonces = NonceBook()
        self.expiries: list[tuple[int, int, Order]] = []
        """Resting signed orders as a heap of (expiry, priority, order): the next to expire
        first. Orders that left the book stay until they reach the top."""
        self.handlers: dict[type, Callable[[Any, list], None]] = {
            NewOrder: self._new,
            CancelOrder: self._cancel,
            ReplaceOrder: self._replace,
            ConfigureMarkets: lambda command, _out: self.configure(command.markets),
            Clock: self._clock,
            ExportMarket: lambda command, out: export_market(self, command, out),
            ImportMarket: lambda command, out: import_market(self, command, out),
            RaiseMinNonce: self._raise_min_nonce,
        }
        if markets:
            self.configure(markets)

    # -- configuration ------------------------------------------------------------------------

    def market_specs(self) -> list[MarketSpec]:
        return [book.market.spec for book in self.books.values()]

    def check_configure(self, specs: Sequence[MarketSpec]) -> None:
        """Refuse a market list that changes the units of, or removes, a market with orders."""
        wanted = {spec.symbol: spec for spec in specs}
        for symbol, book in self.books.items():
            if not book.orders:
                continue
            spec = wanted.get(symbol)
            if spec is None:
                raise MarketChangeRefused(
                    f"market {symbol!r} has {len(book.orders)} resting orders and is missing "
                    "from the configuration; cancel them before removing the market"
                )
            old = book.market.spec
            for key in ("tick_size", "lot_size"):
                if parse_decimal(getattr(old, key)) != parse_decimal(getattr(spec, key)):
                    raise MarketChangeRefused(
                        f"market {symbol!r}: {key} cannot change from {getattr(old, key)!r} to "
                        f"{getattr(spec, key)!r} while {len(book.orders)} orders rest"
                    )

    def configure(self, specs: Sequence[MarketSpec]) -> None:
        """Make `specs` the market list (deterministic: journaled and replayed like a command)."""
        self.check_configure(specs)
        books: dict[str, OrderBook] = {}
        for spec in specs:
            book = self.books.get(spec.symbol) or OrderBook(Market(spec))
            if book.market.spec != spec:
                book.market = Market(spec)
            books[spec.symbol] = book
        self.books = books

    # -- commands -----------------------------------------------------------------------------

    def process(self, command: object, out: list) -> None:
        """Apply one command, appending its events to `out`."""
        handler = self.handlers.get(type(command))
        if handler is None:
            raise TypeError(f"not a command: {command!r}")
        handler(command, out)

    def process_batch(self, commands: Iterable[object], out: list) -> None:
        """Apply commands in order, appending their events to `out`."""
        handlers = self.handlers
        for command in commands:
            handler = handlers.get(type(command))
            if handler is None:
                raise TypeError(f"not a command: {command!r}")
            handler(command, out)

    def process_all(self, commands: Iterable[object]) -> list:
        """Apply commands and return all their events."""
        out: list = []
        self.process_batch(commands, out)
        return out

    def _reject(self, op: str, command, reason: Reason, out: list) -> None:
        self.seq += 1
        out.append(Rejected(self.seq, op, command.market, command.id, command.owner, reason))

    def _clock(self, command: Clock, _out: list) -> None:
        self.now = command.now

    def _new(self, command: NewOrder, out: list) -> None:
        plan = validate_new(self.books, command)
        if type(plan) is Reason:
            self._reject("new", command, plan, out)
            return
        book, order, limit_key, never_rests = plan
        if command.sig is not None:
            reason = self._signed_reason(command)
            if reason is not None:
                self._reject("new", command, reason, out)
                return
            order.nonce = int(command.nonce)
            self.nonces.use(command.owner, order.nonce)
            order.expiry = command.expiry
            order.order_hash = command.order_hash
        self.seq += 1
        out.append(Accepted(self.seq, "new", book.symbol, command.id, command.owner))
        self._enter(book, order, limit_key, never_rests, out)

    def _signed_reason(self, command: NewOrder) -> Reason | None:
        """The engine's checks of a signed order, after the market's: its signature must have
        been verified by the node (`order_hash`: an order from a file is refused), it must not
        have expired by the journaled clock, nor its nonce have been used by its owner."""
        if command.order_hash is None or command.expiry is None or command.nonce is None:
            return Reason.MALFORMED
        if command.expiry <= self.now:
            return Reason.EXPIRED
        if self.nonces.is_used(command.owner, int(command.nonce)):
            return Reason.NONCE_USED
        return None

    def _enter(
        self, book: OrderBook, taker: Order, limit_key: int, never_rests: bool, out: list
    ) -> None:
        """Match an incoming order, then cancel or rest what is left of it."""
        opposite = book.asks if taker.is_buy else book.bids
        stopped = False
        if opposite.keys and opposite.keys[-1] >= limit_key:
            stopped = match(self, book, taker, limit_key, out)
            if not taker.remaining:
                return
        seq = self.seq = self.seq + 1
        if stopped or never_rests:
            reason = CancelReason.STP if stopped else CancelReason.IOC
            out.append(
                Cancelled(
                    seq, book.symbol, taker.id, taker.owner, reason, taker.remaining, 0, taker.peer
                )
            )
            return
        taker.priority = seq
        side = "buy" if taker.is_buy else "sell"
        out.append(
            Rested(
                seq,
                book.symbol,
                taker.id,
                taker.owner,
                side,
                taker.price,
                taker.remaining,
                taker.peer,
            )
        )
        book.orders[taker.owner, taker.id] = taker
        (book.bids if taker.is_buy else book.asks).add(taker)
        self.open_orders[taker.owner] += 1
        self.touched.add(taker)
        if taker.expiry:
            heapq.heappush(self.expiries, (taker.expiry, taker.priority, taker))

    def _cancel(self, command: CancelOrder, out: list) -> None:
        book = book_for(self.books, command.market)
        if book is None:
            self._reject("cancel", command, Reason.UNKNOWN_MARKET, out)
            return
        order = book.orders.get((command.owner, command.id))
        if order is None:
            self._reject("cancel", command, Reason.UNKNOWN_ORDER, out)
            return
        self.seq += 1
        out.append(Accepted(self.seq, "cancel", book.symbol, command.id, command.owner))
        self.seq += 1
        out.append(
            Cancelled(
                self.seq,
                book.symbol,
                order.id,
                order.owner,
                command.reason or CancelReason.USER,
                order.remaining,
                0,
                order.peer,
            )
        )
        self._take_off(book, order)

    def _raise_min_nonce(self, command: RaiseMinNonce, out: list) -> None:
        """Raise the owner's nonce floor to `min_nonce` and cancel its resting signed orders
        whose nonce is below it, oldest first, each reported `cancelled` (reason `min_nonce`).
        A minimum at or below one raised before finds no such order (they were cancelled, and
        a new one below it is refused `nonce_used`): it changes nothing."""
        owner, floor = command.owner, int(command.min_nonce)
        self.nonces.raise_floor(owner, floor)
        below = sorted(
            (order for book in self.books.values() for order in book.orders.values()
             if order.owner == owner and order.nonce is not None and order.nonce < floor),
            key=lambda order: order.priority,
        )  # fmt: skip
        for order in below:
            book = self.books[order.market]
            self.seq += 1
            out.append(
                Cancelled(self.seq, book.symbol, order.id, owner, CancelReason.MIN_NONCE,
                          order.remaining, 0, order.peer)
            )  # fmt: skip
            self._take_off(book, order)

    def _replace(self, command: ReplaceOrder, out: list) -> None:
        valid = validate_replace(self.books, command)
        if type(valid) is Reason:
            self._reject("replace", command, valid, out)
            return
        book, order = valid.book, valid.order
        self.seq += 1
        out.append(Accepted(self.seq, "replace", book.symbol, command.id, command.owner))
        in_place = valid.price == order.price and valid.qty <= order.remaining
        self.seq += 1
        out.append(
            Replaced(
                self.seq,
                book.symbol,
                order.id,
                order.owner,
                "buy" if order.is_buy else "sell",
                valid.price,
                valid.qty,
                in_place,
                order.peer,
            )
        )
        if in_place:
            book.side_of(order).levels[order.price].qty -= order.remaining - valid.qty
            order.remaining = valid.qty
            self.touched.add(order)
            return
        self._take_off(book, order)
        incoming = Order(
            book.symbol,
            order.id,
            order.owner,
            order.is_buy,
            valid.price,
            valid.qty,
            0,
            order.stp,
            order.peer,
        )
        opposite = book.asks if incoming.is_buy else book.bids
        self._enter(book, incoming, incoming.price * opposite.sign, False, out)

    def _take_off(self, book: OrderBook, order: Order) -> None:
        book.take_off(order)
        self.open_orders[order.owner] -= 1
        self.touched.add(order)

    # -- state --------------------------------------------------------------------------------

    def expired_orders(self, now: int) -> list[Order]:
        """The resting signed orders whose expiry is at or before `now`, for the node to
        cancel (journaled cancels, reason `expired`)."""
        expiries = self.expiries
        found = []
        while expiries and expiries[0][0] <= now:
            order = heapq.heappop(expiries)[2]
            book = self.books.get(order.market)
            if (
                order.remaining
                and book is not None
                and book.orders.get((order.owner, order.id)) is order
            ):
                found.append(order)
        return found

    def next_expiry(self) -> int | None:
        """The earliest expiry of a resting signed order (or of one that left the book)."""
        return self.expiries[0][0] if self.expiries else None

    def take_changes(self) -> set[Order]:
        """Orders changed since the last call: live ones to write, dead ones to delete."""
        changed, self.touched = self.touched, set()
        return changed

    def resting_orders(self) -> Iterable[Order]:
        """Every live order in a stable order (market, side, best price first, time priority)."""
        for book in self.books.values():
            for side in (book.bids, book.asks):
                for level in side.levels_best_first():
                    for order in level.orders:
                        if order.remaining:
                            yield order

    def restore(self, seq: int, orders: Iterable[Order]) -> None:
        """Load a stored book: orders re-rest in priority order, so time priority survives."""
        self.seq = seq
        for order in sorted(orders, key=lambda order: order.priority):
            self.books[order.market].rest(order)
            self.open_orders[order.owner] += 1
            if order.expiry:
                self.expiries.append((order.expiry, order.priority, order))
        heapq.heapify(self.expiries)


class PythonEngine(Engine):
    """The Python reference engine by name, whichever core `Engine(...)` would choose."""

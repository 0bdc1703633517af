"""The matching engine: sequence, validate, match, report. One thread, no I/O, no locks, no floats.

Commands go in through `process`; events come out in the caller's list. The engine remembers which
orders it changed since the last `take_changes()` so the store can write exactly those, and the
same command sequence always yields the same events and the same book (and so the same state hash).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .book import Order, OrderBook
from .commands import CancelOrder, ConfigureMarkets, NewOrder, ReplaceOrder
from .decimals import parse_decimal
from .events import Accepted, Cancelled, Rejected, Replaced, Rested
from .markets import Market, MarketSpec
from .matching import STP, match
from .validation import (
    FOK,
    IOC,
    UNKNOWN_MARKET,
    UNKNOWN_ORDER,
    book_for,
    validate_new,
    validate_replace,
)


class MarketChangeRefused(ValueError):
    """A market change that would reinterpret or orphan resting orders."""


class Engine:
    """All markets' books and the event sequence counter."""

    def __init__(self, markets: Sequence[MarketSpec] = ()) -> None:
        self.books: dict[str, OrderBook] = {}
        self.seq = 0
        self.touched: set[Order] = set()
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
        kind = type(command)
        if kind is NewOrder:
            self._new(command, out)  # type: ignore[arg-type]
        elif kind is CancelOrder:
            self._cancel(command, out)  # type: ignore[arg-type]
        elif kind is ReplaceOrder:
            self._replace(command, out)  # type: ignore[arg-type]
        elif kind is ConfigureMarkets:
            self.configure(command.markets)  # type: ignore[attr-defined]
        else:
            raise TypeError(f"not a command: {command!r}")

    def process_all(self, commands: Iterable[object]) -> list:
        out: list = []
        for command in commands:
            self.process(command, out)
        return out

    def _reject(self, op: str, command, reason: str, out: list) -> None:
        self.seq += 1
        out.append(Rejected(self.seq, op, command.market, command.id, command.owner, reason))

    def _new(self, command: NewOrder, out: list) -> None:
        valid = validate_new(self.books, command)
        if type(valid) is str:
            self._reject("new", command, valid, out)
            return
        book = valid.book
        self.seq += 1
        out.append(Accepted(self.seq, "new", book.symbol, command.id, command.owner))
        self._enter(
            book, valid.order, valid.limit_key, valid.is_market or valid.tif in (IOC, FOK), out
        )

    def _enter(
        self, book: OrderBook, taker: Order, limit_key: int, never_rests: bool, out: list
    ) -> None:
        """Match an incoming order, then cancel or rest what is left of it."""
        stopped = match(self, book, taker, limit_key, out)
        if not taker.remaining:
            return
        if stopped or never_rests:
            self.seq += 1
            reason = STP if stopped else "ioc"
            out.append(
                Cancelled(self.seq, book.symbol, taker.id, taker.owner, reason, taker.remaining, 0)
            )
            return
        self.seq += 1
        taker.priority = self.seq
        out.append(
            Rested(
                self.seq,
                book.symbol,
                taker.id,
                taker.owner,
                "buy" if taker.is_buy else "sell",
                taker.price,
                taker.remaining,
            )
        )
        book.rest(taker)
        self.touched.add(taker)

    def _cancel(self, command: CancelOrder, out: list) -> None:
        book = book_for(self.books, command.market)
        if book is None:
            self._reject("cancel", command, UNKNOWN_MARKET, out)
            return
        order = book.orders.get((command.owner, command.id))
        if order is None:
            self._reject("cancel", command, UNKNOWN_ORDER, out)
            return
        self.seq += 1
        out.append(Accepted(self.seq, "cancel", book.symbol, command.id, command.owner))
        self.seq += 1
        out.append(
            Cancelled(self.seq, book.symbol, order.id, order.owner, "user", order.remaining, 0)
        )
        book.take_off(order)
        self.touched.add(order)

    def _replace(self, command: ReplaceOrder, out: list) -> None:
        valid = validate_replace(self.books, command)
        if type(valid) is str:
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
            )
        )
        self.touched.add(order)
        if in_place:
            book.side_of(order).levels[order.price].qty -= order.remaining - valid.qty
            order.remaining = valid.qty
            return
        book.take_off(order)
        incoming = Order(
            book.symbol, order.id, order.owner, order.is_buy, valid.price, valid.qty, 0, order.stp
        )
        opposite = book.asks if incoming.is_buy else book.bids
        self._enter(book, incoming, incoming.price * opposite.sign, False, out)

    # -- state --------------------------------------------------------------------------------

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

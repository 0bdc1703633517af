"""Validation: the first engine step. Checks a command against its market's rules, in the
documented order, and converts decimal text to ticks and lots. It reads the book (for
duplicate ids, post-only crossing and fill-or-kill) but never changes it.
"""

from __future__ import annotations

from typing import Any

from .book import Order, OrderBook
from .commands import NewOrder, ReplaceOrder
from .decimals import Unit, as_decimal_text
from .markets import STP_MODES
from .reasons import Reason

GTC, IOC, FOK, POST_ONLY = range(4)
TIF_CODES = {"GTC": GTC, "IOC": IOC, "FOK": FOK, "POST_ONLY": POST_ONLY}
STP_CODES = {mode: code for code, mode in enumerate(STP_MODES)}
STP_NONE = STP_CODES["none"]
STP_CANCEL_NEWEST = STP_CODES["cancel_newest"]
STP_CANCEL_OLDEST = STP_CODES["cancel_oldest"]
STP_CANCEL_BOTH = STP_CODES["cancel_both"]
"""The modes matching tells apart by code (`decrement` is what is left)."""

NO_LIMIT_KEY = -(1 << 200)
"""Crossing threshold of a market order: below every level key, so it crosses any price."""


def book_for(books: dict[str, OrderBook], market: Any) -> OrderBook | None:
    return books.get(market) if type(market) is str else None


NOT_A_NUMBER = Unit.NOT_A_NUMBER
OFF_STEP = Unit.OFF_STEP


def units_of(unit: Unit, value: Any) -> int:
    """Whole units of a wire value, or NOT_A_NUMBER / OFF_STEP."""
    text = value if type(value) is str else as_decimal_text(value)
    return unit.units(text) if text is not None else Unit.NOT_A_NUMBER


NewOrderPlan = tuple[OrderBook, Order, int, bool]
"""A new order that passed every check: its book, the order in engine units, the level key it
may cross down to (NO_LIMIT_KEY for market orders), and whether it never rests (market, IOC,
FOK)."""


def validate_new(books: dict[str, OrderBook], command: NewOrder) -> NewOrderPlan | Reason:
    """The checks of a new order in the documented order; the first failure's reason wins.

    Written for the hot path: equality tests instead of dict look-ups where a value may be of any
    type, and the parsed-text caches read directly.
    """
    market_name = command.market
    book = books.get(market_name) if type(market_name) is str else None
    if book is None:
        return Reason.UNKNOWN_MARKET
    market = book.market
    side = command.side
    is_buy = side == "buy"
    if not is_buy and side != "sell":
        return Reason.BAD_SIDE
    order_type = command.type
    is_market = order_type == "market"
    if not is_market and order_type != "limit":
        return Reason.BAD_TYPE
    tif_text = command.tif
    if tif_text == "GTC":
        tif = GTC
    else:
        tif = TIF_CODES.get(tif_text) if type(tif_text) is str else None
        if tif is None:
            return Reason.BAD_TIF
    if command.stp is None:
        stp = market.default_stp
    else:
        stp = STP_CODES.get(command.stp) if type(command.stp) is str else None
        if stp is None:
            return Reason.BAD_STP
    qty = command.qty
    lots = market.lot.cache.get(qty) if type(qty) is str else None
    if lots is None:
        lots = units_of(market.lot, qty)
    if lots == NOT_A_NUMBER:
        return Reason.BAD_QTY
    if is_market:
        ticks = 0
    else:
        price = command.price
        ticks = market.tick.cache.get(price) if type(price) is str else None
        if ticks is None:
            ticks = units_of(market.tick, price)
        if ticks == NOT_A_NUMBER:
            return Reason.BAD_PRICE
        if ticks == OFF_STEP:
            return Reason.OFF_TICK
    if lots == OFF_STEP:
        return Reason.OFF_LOT
    if lots < market.min_lots:
        return Reason.QTY_BELOW_MIN
    if lots > market.max_lots:
        return Reason.QTY_ABOVE_MAX
    if not is_market and ticks * lots > market.max_notional_units:
        return Reason.NOTIONAL_ABOVE_MAX
    owner = command.owner
    if (owner, command.id) in book.orders:
        return Reason.DUPLICATE_ID
    opposite = book.asks if is_buy else book.bids
    limit_key = NO_LIMIT_KEY if is_market else ticks * opposite.sign
    order = Order(book.symbol, command.id, owner, is_buy, ticks, lots, 0, stp, command.peer)
    if tif == POST_ONLY and opposite.keys and opposite.keys[-1] >= limit_key:
        return Reason.WOULD_CROSS
    if tif == FOK and not fok_fillable(book, order, limit_key):
        return Reason.FOK_UNFILLABLE
    return book, order, limit_key, is_market or tif in (IOC, FOK)


def fok_fillable(book: OrderBook, taker: Order, limit_key: int) -> bool:
    """Would one matching pass fill the whole quantity in trades? Self-trade prevention counts:
    a resting order of the same owner is traded (`none`), skipped (`cancel_oldest`, it would be
    cancelled), or ends the pass short of a full fill (every other mode)."""
    opposite = book.asks if taker.is_buy else book.bids
    needed = taker.remaining
    for key in reversed(opposite.keys):
        if key < limit_key:
            return False
        for maker in opposite.levels[key * opposite.sign].orders:
            if not maker.remaining:
                continue
            if maker.owner == taker.owner and taker.stp != STP_NONE:
                if taker.stp == STP_CANCEL_OLDEST:
                    continue
                return False
            needed -= maker.remaining
            if needed <= 0:
                return True
    return False


class ValidReplace:
    """A replace that passed every check: the order and its new price and remaining quantity."""

    __slots__ = ("book", "order", "price", "qty")

    def __init__(self, book: OrderBook, order: Order, price: int, qty: int) -> None:
        self.book = book
        self.order = order
        self.price = price
        self.qty = qty


def validate_replace(books: dict[str, OrderBook], command: ReplaceOrder) -> ValidReplace | Reason:
    """Checks a new order's price and quantity would get, then that the order exists.

    The notional check needs both values; a missing one is taken from the resting order, so for an
    unknown order with only one of them given the answer is `unknown_order`.
    """
    book = book_for(books, command.market)
    if book is None:
        return Reason.UNKNOWN_MARKET
    market = book.market
    order = book.orders.get((command.owner, command.id))
    lots = ticks = None
    if command.qty is not None:
        lots = units_of(market.lot, command.qty)
        if lots == NOT_A_NUMBER:
            return Reason.BAD_QTY
    if command.price is not None:
        ticks = units_of(market.tick, command.price)
        if ticks == NOT_A_NUMBER:
            return Reason.BAD_PRICE
        if ticks == OFF_STEP:
            return Reason.OFF_TICK
    if lots is not None:
        if lots == OFF_STEP:
            return Reason.OFF_LOT
        if lots < market.min_lots:
            return Reason.QTY_BELOW_MIN
        if lots > market.max_lots:
            return Reason.QTY_ABOVE_MAX
    if order is not None:
        ticks = order.price if ticks is None else ticks
        lots = order.remaining if lots is None else lots
    if ticks is not None and lots is not None and ticks * lots > market.max_notional_units:
        return Reason.NOTIONAL_ABOVE_MAX
    if order is None:
        return Reason.UNKNOWN_ORDER
    return ValidReplace(book, order, ticks, lots)

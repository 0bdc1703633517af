# cython: language_level=3
"""The compiled engine: `Engine`'s hot paths in C, on the Python engine's own books and events.

What runs here: dispatch of a batch, the checks of a new order, matching, resting and cancelling
(node/core/validation.py, matching.py and engine.py say what each does and in which order; this
file does the same steps in the same order). What is left to the Python engine, because it is
rare and a copy would only be a second place to keep right: signed orders' checks, fill-or-kill
look-ahead, replaces' checks, market configuration, the clock, restore and the expiry heap.
The books, orders and events are the Python classes themselves, so the store, the state hash
and replay read this engine exactly as they read the reference.
"""

from bisect import insort
from collections import deque
from heapq import heappush

from ..book import Level, Order
from ..commands import CancelOrder, NewOrder
from ..engine import Engine
from ..events import Accepted, Cancelled, Rejected, Rested, Trade
from ..reasons import CancelReason, Reason
from ..validation import (
    FOK,
    IOC,
    NO_LIMIT_KEY,
    NOT_A_NUMBER,
    OFF_STEP,
    POST_ONLY,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    STP_CODES,
    TIF_CODES,
    fok_fillable,
    units_of,
)

cdef object STP_REASON = CancelReason.STP
cdef object IOC_REASON = CancelReason.IOC
cdef object USER_REASON = CancelReason.USER
cdef Py_ssize_t COMPACT_SLACK = Level.COMPACT_SLACK
cdef long long TIF_GTC = 0, TIF_IOC = IOC, TIF_FOK = FOK, TIF_POST_ONLY = POST_ONLY
cdef long long CANCEL_NEWEST = STP_CANCEL_NEWEST, CANCEL_OLDEST = STP_CANCEL_OLDEST
cdef long long CANCEL_BOTH = STP_CANCEL_BOTH


class CompiledEngine(Engine):
    """`Engine` with its hot paths compiled: same commands in, same events, books and state."""

    core = "compiled"

    def process(self, command, list out):
        """Apply one command, appending its events to `out`."""
        _dispatch(self, command, out)

    def process_batch(self, commands, list out):
        """Apply commands in order, appending their events to `out`."""
        for command in commands:
            _dispatch(self, command, out)

    def _new(self, command, list out):
        _new_order(self, command, out)

    def _cancel(self, command, list out):
        _cancel_order(self, command, out)

    def _enter(self, book, taker, limit_key, never_rests, list out):
        _enter(self, book, taker, limit_key, never_rests, out)

    def _take_off(self, book, order):
        _take_off(self, book, order)


cdef inline void _dispatch(engine, command, list out) except *:
    command_type = type(command)
    if command_type is NewOrder:
        _new_order(engine, command, out)
    elif command_type is CancelOrder:
        _cancel_order(engine, command, out)
    else:
        handler = engine.handlers.get(command_type)
        if handler is None:
            raise TypeError(f"not a command: {command!r}")
        handler(command, out)


cdef void _reject(engine, str op, command, reason, list out) except *:
    cdef long long seq = engine.seq + 1
    engine.seq = seq
    out.append(Rejected(seq, op, command.market, command.id, command.owner, reason))


cdef void _new_order(engine, command, list out) except *:
    """validation.validate_new and Engine._new, step for step."""
    cdef bint is_buy, is_market
    cdef long long tif, stp, seq
    market_name = command.market
    book = engine.books.get(market_name) if type(market_name) is str else None
    if book is None:
        _reject(engine, "new", command, Reason.UNKNOWN_MARKET, out)
        return
    market = book.market
    side = command.side
    is_buy = side == "buy"
    if not is_buy and not (side == "sell"):
        _reject(engine, "new", command, Reason.BAD_SIDE, out)
        return
    order_type = command.type
    is_market = order_type == "market"
    if not is_market and not (order_type == "limit"):
        _reject(engine, "new", command, Reason.BAD_TYPE, out)
        return
    tif_text = command.tif
    if tif_text == "GTC":
        tif = TIF_GTC
    else:
        tif_code = TIF_CODES.get(tif_text) if type(tif_text) is str else None
        if tif_code is None:
            _reject(engine, "new", command, Reason.BAD_TIF, out)
            return
        tif = tif_code
    stp_text = command.stp
    if stp_text is None:
        stp = market.default_stp
    else:
        stp_code = STP_CODES.get(stp_text) if type(stp_text) is str else None
        if stp_code is None:
            _reject(engine, "new", command, Reason.BAD_STP, out)
            return
        stp = stp_code
    qty = command.qty
    lots = market.lot.cache.get(qty) if type(qty) is str else None
    if lots is None:
        lots = units_of(market.lot, qty)
    if lots == NOT_A_NUMBER:
        _reject(engine, "new", command, Reason.BAD_QTY, out)
        return
    if is_market:
        ticks = 0
    else:
        price = command.price
        ticks = market.tick.cache.get(price) if type(price) is str else None
        if ticks is None:
            ticks = units_of(market.tick, price)
        if ticks == NOT_A_NUMBER:
            _reject(engine, "new", command, Reason.BAD_PRICE, out)
            return
        if ticks == OFF_STEP:
            _reject(engine, "new", command, Reason.OFF_TICK, out)
            return
    if lots == OFF_STEP:
        _reject(engine, "new", command, Reason.OFF_LOT, out)
        return
    if lots < market.min_lots:
        _reject(engine, "new", command, Reason.QTY_BELOW_MIN, out)
        return
    if lots > market.max_lots:
        _reject(engine, "new", command, Reason.QTY_ABOVE_MAX, out)
        return
    if not is_market and ticks * lots > market.max_notional_units:
        _reject(engine, "new", command, Reason.NOTIONAL_ABOVE_MAX, out)
        return
    owner = command.owner
    order_id = command.id
    orders = book.orders
    if (owner, order_id) in orders:
        _reject(engine, "new", command, Reason.DUPLICATE_ID, out)
        return
    opposite = book.asks if is_buy else book.bids
    limit_key = NO_LIMIT_KEY if is_market else ticks * opposite.sign
    symbol = book.symbol
    order = Order(symbol, order_id, owner, is_buy, ticks, lots, 0, stp, command.peer)
    if tif == TIF_POST_ONLY:
        keys = opposite.keys
        if keys and keys[-1] >= limit_key:
            _reject(engine, "new", command, Reason.WOULD_CROSS, out)
            return
    if tif == TIF_FOK and not fok_fillable(book, order, limit_key):
        _reject(engine, "new", command, Reason.FOK_UNFILLABLE, out)
        return
    if command.sig is not None:
        reason = engine._signed_reason(command)
        if reason is not None:
            _reject(engine, "new", command, reason, out)
            return
        engine.nonces.use(owner, int(command.nonce))
        order.expiry = command.expiry
        order.order_hash = command.order_hash
    seq = engine.seq + 1
    engine.seq = seq
    out.append(Accepted(seq, "new", symbol, order_id, owner))
    _enter(engine, book, order, limit_key, is_market or tif == TIF_IOC or tif == TIF_FOK, out)


cdef void _enter(engine, book, taker, limit_key, bint never_rests, list out) except *:
    """Engine._enter: match an incoming order, then cancel or rest what is left of it."""
    cdef bint stopped = False
    cdef bint is_buy = taker.is_buy
    cdef long long seq
    opposite = book.asks if is_buy else book.bids
    keys = opposite.keys
    if keys and keys[-1] >= limit_key:
        stopped = _match(engine, book, taker, limit_key, out)
        if not taker.remaining:
            return
    seq = engine.seq + 1
    engine.seq = seq
    if stopped or never_rests:
        out.append(
            Cancelled(
                seq,
                book.symbol,
                taker.id,
                taker.owner,
                STP_REASON if stopped else IOC_REASON,
                taker.remaining,
                0,
                taker.peer,
            )
        )
        return
    taker.priority = seq
    owner = taker.owner
    price = taker.price
    remaining = taker.remaining
    out.append(
        Rested(
            seq,
            book.symbol,
            taker.id,
            owner,
            "buy" if is_buy else "sell",
            price,
            remaining,
            taker.peer,
        )
    )
    book.orders[owner, taker.id] = taker
    side = book.bids if is_buy else book.asks
    levels = side.levels
    level = levels.get(price)
    if level is None:
        level = levels[price] = Level(price)
        insort(side.keys, price * side.sign)
    level.orders.append(taker)
    level.qty += remaining
    level.count += 1
    engine.open_orders[owner] += 1
    engine.touched.add(taker)
    if taker.expiry:
        heappush(engine.expiries, (taker.expiry, taker.priority, taker))


cdef bint _match(engine, book, taker, limit_key, list out) except -1:
    """matching.match: trade `taker` while it crosses `limit_key`; True if STP stopped it."""
    cdef bint is_buy = taker.is_buy
    cdef long long stp = taker.stp
    cdef long long seq = engine.seq
    cdef bint stopped = False
    opposite = book.asks if is_buy else book.bids
    keys = opposite.keys
    levels = opposite.levels
    sign = opposite.sign
    index = book.orders
    open_orders = engine.open_orders
    touched = engine.touched
    symbol = book.symbol
    owner = taker.owner
    taker_id = taker.id
    taker_peer = taker.peer
    aggressor = "buy" if is_buy else "sell"
    remaining = taker.remaining
    while keys:
        key = keys[-1]
        if key < limit_key:
            break
        level = levels[key * sign]
        queue = level.orders
        level_price = level.price
        while queue:
            maker = queue[0]
            maker_remaining = maker.remaining
            if not maker_remaining:
                queue.popleft()
                continue
            if stp and maker.owner == owner:
                if stp == CANCEL_NEWEST:
                    stopped = True
                    break
                if stp == CANCEL_OLDEST or stp == CANCEL_BOTH:
                    seq += 1
                    out.append(
                        Cancelled(
                            seq, symbol, maker.id, owner, STP_REASON, maker_remaining, 0,
                            maker.peer,
                        )
                    )
                    _drop_head(queue, level, index, open_orders, maker, touched)
                    if stp == CANCEL_BOTH:
                        stopped = True
                        break
                    continue
                cut = remaining if remaining < maker_remaining else maker_remaining
                remaining = remaining - cut
                maker_remaining = maker_remaining - cut
                seq += 1
                out.append(
                    Cancelled(
                        seq, symbol, maker.id, owner, STP_REASON, cut, maker_remaining, maker.peer
                    )
                )
                seq += 1
                out.append(
                    Cancelled(seq, symbol, taker_id, owner, STP_REASON, cut, remaining, taker_peer)
                )
                if maker_remaining:
                    maker.remaining = maker_remaining
                    level.qty -= cut
                    touched.add(maker)
                else:
                    _drop_head(queue, level, index, open_orders, maker, touched)
                if not remaining:
                    break
                continue
            fill = remaining if remaining < maker_remaining else maker_remaining
            remaining = remaining - fill
            maker_remaining = maker_remaining - fill
            seq += 1
            out.append(
                Trade(
                    seq,
                    symbol,
                    level_price,
                    fill,
                    maker.id,
                    maker.owner,
                    taker_id,
                    owner,
                    aggressor,
                    maker_remaining,
                    remaining,
                    maker.peer,
                    taker_peer,
                )
            )
            touched.add(maker)
            if maker_remaining:
                maker.remaining = maker_remaining
                level.qty -= fill
            else:
                _drop_head(queue, level, index, open_orders, maker, touched)
            if not remaining:
                break
        if not level.count:
            del levels[level_price]
            keys.pop()
        if stopped or not remaining:
            break
    engine.seq = seq
    taker.remaining = remaining
    return stopped


cdef inline void _drop_head(queue, level, dict index, open_orders, maker, touched) except *:
    """matching._drop_head: remove the order at the front of its level."""
    queue.popleft()
    level.qty -= maker.remaining
    level.count -= 1
    maker.remaining = 0
    del index[maker.owner, maker.id]
    open_orders[maker.owner] -= 1
    touched.add(maker)


cdef void _cancel_order(engine, command, list out) except *:
    """Engine._cancel."""
    cdef long long seq
    market_name = command.market
    book = engine.books.get(market_name) if type(market_name) is str else None
    if book is None:
        _reject(engine, "cancel", command, Reason.UNKNOWN_MARKET, out)
        return
    order = book.orders.get((command.owner, command.id))
    if order is None:
        _reject(engine, "cancel", command, Reason.UNKNOWN_ORDER, out)
        return
    symbol = book.symbol
    seq = engine.seq + 1
    out.append(Accepted(seq, "cancel", symbol, command.id, command.owner))
    seq += 1
    engine.seq = seq
    out.append(
        Cancelled(
            seq,
            symbol,
            order.id,
            order.owner,
            command.reason or USER_REASON,
            order.remaining,
            0,
            order.peer,
        )
    )
    _take_off(engine, book, order)


cdef void _take_off(engine, book, order) except *:
    """Engine._take_off with OrderBook.take_off and BookSide.remove."""
    owner = order.owner
    price = order.price
    del book.orders[owner, order.id]
    side = book.bids if order.is_buy else book.asks
    level = side.levels[price]
    level.qty -= order.remaining
    level.count -= 1
    order.remaining = 0
    if not level.count:
        side.drop_level(level)
    elif len(level.orders) > 2 * level.count + COMPACT_SLACK:
        level.orders = deque(level.live_orders())
    engine.open_orders[owner] -= 1
    engine.touched.add(order)

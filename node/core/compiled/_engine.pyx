# cython: language_level=3
"""The compiled engine: `Engine`'s hot paths in C, on the Python engine's own books and events.

What runs here: dispatch, the checks of new orders and replaces, matching (`_match.pxi`),
resting, replacing (`_replace.pxi`) and cancelling, the store's per-commit record plan for the
orders changed and their digests (`_records.pxi`, `_digest.pxi`), a batch's journal entry
(`_journal.pxi`, for node/store/lmdb_store.py), a submit's reply and a batch's market data
written as msgpack (`_answers.pxi`, `_market_data.pxi`, for node/server/answers.py and
marketdata.py), and a message's commands admitted and applied (`_intake.pxi`, for
node/server/taking.py); node/core/validation.py, matching.py and engine.py say what each step
does and in which order, and these files do the same steps in the same order. Left to the Python
engine, because it is rare and a copy would only be a second place to keep right: signed orders'
checks, a raised minimum nonce's cancels, decimal text not seen before, market configuration,
the clock, restore and the expiry heap. The books, orders and events are the Python classes
themselves, so the store, the state hash and replay read this engine exactly as they read the
reference; their fields are reached through `_slots.pxi`. The fill-or-kill look-ahead, a new
level and dropping an empty one are copied here too: they are on the path of about one command
in seven, and a call into Python code cost more than the step itself.
"""

from bisect import bisect_left, insort
from collections import deque
from heapq import heappush

from ..book import BookSide, Level, Order, OrderBook
from ..commands import CancelOrder, NewOrder, ReplaceOrder
from ..decimals import Unit
from ..engine import Engine
from ..events import Accepted, Cancelled, Rejected, Replaced, Rested, Trade
from ..markets import Market
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
    units_of,
)

from cpython.unicode cimport PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_KIND
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.string cimport memcmp


cdef extern from *:
    bint __builtin_mul_overflow(long long a, long long b, long long* product) nogil

include "_slots.pxi"

cdef object STP_REASON = CancelReason.STP
cdef object IOC_REASON = CancelReason.IOC
cdef object USER_REASON = CancelReason.USER
cdef Py_ssize_t COMPACT_SLACK = Level.COMPACT_SLACK
cdef long long TIF_GTC = 0, TIF_IOC = IOC, TIF_FOK = FOK, TIF_POST_ONLY = POST_ONLY
cdef long long CANCEL_NEWEST = STP_CANCEL_NEWEST, CANCEL_OLDEST = STP_CANCEL_OLDEST
cdef long long CANCEL_BOTH = STP_CANCEL_BOTH
cdef long long C_OFF_STEP = OFF_STEP

# where each field the hot paths touch lives in its object (_slots.pxi)
cdef Py_ssize_t N_ID = slot_offset(NewOrder, "id"), N_OWNER = slot_offset(NewOrder, "owner")
cdef Py_ssize_t N_MARKET = slot_offset(NewOrder, "market"), N_SIDE = slot_offset(NewOrder, "side")
cdef Py_ssize_t N_TYPE = slot_offset(NewOrder, "type"), N_PRICE = slot_offset(NewOrder, "price")
cdef Py_ssize_t N_QTY = slot_offset(NewOrder, "qty"), N_TIF = slot_offset(NewOrder, "tif")
cdef Py_ssize_t N_STP = slot_offset(NewOrder, "stp"), N_PEER = slot_offset(NewOrder, "peer")
cdef Py_ssize_t N_SIG = slot_offset(NewOrder, "sig")
cdef Py_ssize_t C_ID = slot_offset(CancelOrder, "id"), C_OWNER = slot_offset(CancelOrder, "owner")
cdef Py_ssize_t C_MARKET = slot_offset(CancelOrder, "market")
cdef Py_ssize_t C_REASON = slot_offset(CancelOrder, "reason")
cdef Py_ssize_t R_ID = slot_offset(ReplaceOrder, "id"), R_OWNER = slot_offset(ReplaceOrder, "owner")
cdef Py_ssize_t R_MARKET = slot_offset(ReplaceOrder, "market")
cdef Py_ssize_t R_PRICE = slot_offset(ReplaceOrder, "price")
cdef Py_ssize_t R_QTY = slot_offset(ReplaceOrder, "qty")
cdef Py_ssize_t B_MARKET = slot_offset(OrderBook, "market"), B_SYMBOL = slot_offset(OrderBook, "symbol")
cdef Py_ssize_t B_ORDERS = slot_offset(OrderBook, "orders"), B_BIDS = slot_offset(OrderBook, "bids")
cdef Py_ssize_t B_ASKS = slot_offset(OrderBook, "asks")
cdef Py_ssize_t S_KEYS = slot_offset(BookSide, "keys"), S_LEVELS = slot_offset(BookSide, "levels")
cdef Py_ssize_t S_SIGN = slot_offset(BookSide, "sign")
cdef Py_ssize_t L_ORDERS = slot_offset(Level, "orders"), L_QTY = slot_offset(Level, "qty")
cdef Py_ssize_t L_COUNT = slot_offset(Level, "count"), L_PRICE = slot_offset(Level, "price")
cdef Py_ssize_t M_LOT = slot_offset(Market, "lot"), M_TICK = slot_offset(Market, "tick")
cdef Py_ssize_t M_MIN_LOTS = slot_offset(Market, "min_lots")
cdef Py_ssize_t M_MAX_LOTS = slot_offset(Market, "max_lots")
cdef Py_ssize_t M_MAX_NOTIONAL = slot_offset(Market, "max_notional_units")
cdef Py_ssize_t M_DEFAULT_STP = slot_offset(Market, "default_stp")
cdef Py_ssize_t U_CACHE = slot_offset(Unit, "cache")
cdef Py_ssize_t O_ID = slot_offset(Order, "id"), O_OWNER = slot_offset(Order, "owner")
cdef Py_ssize_t O_IS_BUY = slot_offset(Order, "is_buy"), O_PRICE = slot_offset(Order, "price")
cdef Py_ssize_t O_REMAINING = slot_offset(Order, "remaining")
cdef Py_ssize_t O_PRIORITY = slot_offset(Order, "priority"), O_STP = slot_offset(Order, "stp")
cdef Py_ssize_t O_PEER = slot_offset(Order, "peer"), O_EXPIRY = slot_offset(Order, "expiry")


class CompiledEngine(Engine):
    """`Engine` with its hot paths compiled: same commands in, same events, books and state.
    Its state lives in slots, so the compiled code reaches it at fixed offsets."""

    __slots__ = ("books", "expiries", "handlers", "now", "open_orders", "seq", "touched")

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

    def _replace(self, command, list out):
        _replace_order(self, command, out)


cdef Py_ssize_t E_SEQ = slot_offset(CompiledEngine, "seq")
cdef Py_ssize_t E_BOOKS = slot_offset(CompiledEngine, "books")
cdef Py_ssize_t E_TOUCHED = slot_offset(CompiledEngine, "touched")
cdef Py_ssize_t E_OPEN_ORDERS = slot_offset(CompiledEngine, "open_orders")
cdef Py_ssize_t E_HANDLERS = slot_offset(CompiledEngine, "handlers")


cdef inline object _dispatch(engine, command, list out):
    command_type = type(command)
    if command_type is NewOrder:
        _new_order(engine, command, out)
    elif command_type is CancelOrder:
        _cancel_order(engine, command, out)
    elif command_type is ReplaceOrder:
        _replace_order(engine, command, out)
    else:
        handler = (<dict>get(engine, E_HANDLERS)).get(command_type)
        if handler is None:
            raise TypeError(f"not a command: {command!r}")
        handler(command, out)


cdef inline object _next_seq(engine):
    """The next sequence number, one int object for both the engine's slot and the event."""
    seq = get(engine, E_SEQ) + 1
    put(engine, E_SEQ, seq)
    return seq


cdef object _reject(engine, str op, command, reason, list out):
    out.append(Rejected(_next_seq(engine), op, command.market, command.id, command.owner, reason))


cdef object _book_of(engine, market_name):
    """validation.book_for, with the check that makes the slot reads below safe."""
    if type(market_name) is not str:
        return None
    book = (<dict>get(engine, E_BOOKS)).get(market_name)
    if book is not None and type(book) is not OrderBook:
        raise TypeError(f"not an OrderBook: {book!r}")
    return book


cdef inline bint _equals(value, str word) except -1:
    """`value == word`, compared in C when `value` is a str, as a decoded command's text is."""
    if value is word:
        return True
    cdef int kind = PyUnicode_KIND(value) if type(value) is str else 0
    if kind == 0:  # not a str, or (before Python 3.12) a legacy one not made ready
        return value == word
    cdef Py_ssize_t length = PyUnicode_GET_LENGTH(value)
    return (
        length == PyUnicode_GET_LENGTH(word)
        and kind == PyUnicode_KIND(word)
        and memcmp(PyUnicode_DATA(value), PyUnicode_DATA(word), length * kind) == 0
    )


cdef object _units(unit, value):
    """Whole units of a wire value, from the unit's cache of parsed text where it is there."""
    units = (<dict>get(unit, U_CACHE)).get(value) if type(value) is str else None
    return units_of(unit, value) if units is None else units


cdef object _new_order(engine, command, list out):
    """validation.validate_new and Engine._new, step for step."""
    cdef bint is_buy, is_market
    cdef long long tif, stp
    book = _book_of(engine, get(command, N_MARKET))
    if book is None:
        return _reject(engine, "new", command, Reason.UNKNOWN_MARKET, out)
    market = get(book, B_MARKET)
    side = get(command, N_SIDE)
    is_buy = _equals(side, "buy")
    if not is_buy and not _equals(side, "sell"):
        return _reject(engine, "new", command, Reason.BAD_SIDE, out)
    order_type = get(command, N_TYPE)
    is_market = _equals(order_type, "market")
    if not is_market and not _equals(order_type, "limit"):
        return _reject(engine, "new", command, Reason.BAD_TYPE, out)
    tif_text = get(command, N_TIF)
    if _equals(tif_text, "GTC"):
        tif = TIF_GTC
    else:
        tif_code = TIF_CODES.get(tif_text) if type(tif_text) is str else None
        if tif_code is None:
            return _reject(engine, "new", command, Reason.BAD_TIF, out)
        tif = tif_code
    stp_text = get(command, N_STP)
    if stp_text is None:
        stp = get(market, M_DEFAULT_STP)
    else:
        stp_code = STP_CODES.get(stp_text) if type(stp_text) is str else None
        if stp_code is None:
            return _reject(engine, "new", command, Reason.BAD_STP, out)
        stp = stp_code
    lots = _units(get(market, M_LOT), get(command, N_QTY))
    if lots == NOT_A_NUMBER:
        return _reject(engine, "new", command, Reason.BAD_QTY, out)
    if is_market:
        ticks = 0
    else:
        ticks = _units(get(market, M_TICK), get(command, N_PRICE))
        if ticks == NOT_A_NUMBER:
            return _reject(engine, "new", command, Reason.BAD_PRICE, out)
        if ticks == OFF_STEP:
            return _reject(engine, "new", command, Reason.OFF_TICK, out)
    reason = _size_reason(market, lots, None if is_market else ticks)
    if reason is not None:
        return _reject(engine, "new", command, reason, out)
    owner = get(command, N_OWNER)
    order_id = get(command, N_ID)
    key = (owner, order_id)
    if key in <dict>get(book, B_ORDERS):
        return _reject(engine, "new", command, Reason.DUPLICATE_ID, out)
    opposite = get(book, B_ASKS if is_buy else B_BIDS)
    limit_key = NO_LIMIT_KEY if is_market else ticks * get(opposite, S_SIGN)
    symbol = get(book, B_SYMBOL)
    order = Order(symbol, order_id, owner, is_buy, ticks, lots, 0, stp, get(command, N_PEER))
    if tif == TIF_POST_ONLY and _crosses(opposite, limit_key):
        return _reject(engine, "new", command, Reason.WOULD_CROSS, out)
    if tif == TIF_FOK and not _fok_fillable(book, order, limit_key):
        return _reject(engine, "new", command, Reason.FOK_UNFILLABLE, out)
    if get(command, N_SIG) is not None:
        reason = engine._signed_reason(command)
        if reason is not None:
            return _reject(engine, "new", command, reason, out)
        order.nonce = int(command.nonce)
        engine.nonces.use(owner, order.nonce)
        order.expiry = command.expiry
        order.order_hash = command.order_hash
    out.append(Accepted(_next_seq(engine), "new", symbol, order_id, owner))
    _enter(engine, book, order, key, limit_key, is_market or tif == TIF_IOC or tif == TIF_FOK, out)


cdef object _size_reason(market, lots, ticks):
    """The quantity checks of a new order or a replace, then the notional one (ticks None: a
    market order, which has none): in C where the numbers fit 64 bits, as they do but for
    absurd input, else on the Python ints."""
    cdef int overflow = 0
    cdef long long count, price, notional
    if type(lots) is int and (ticks is None or type(ticks) is int):
        count = PyLong_AsLongLongAndOverflow(lots, &overflow)
        price = 0 if ticks is None or overflow else PyLong_AsLongLongAndOverflow(ticks, &overflow)
        if not overflow and not __builtin_mul_overflow(price, count, &notional):
            if count == C_OFF_STEP:
                return Reason.OFF_LOT
            if _below(count, get(market, M_MIN_LOTS)):
                return Reason.QTY_BELOW_MIN
            if _above(count, get(market, M_MAX_LOTS)):
                return Reason.QTY_ABOVE_MAX
            if ticks is not None and _above(notional, get(market, M_MAX_NOTIONAL)):
                return Reason.NOTIONAL_ABOVE_MAX
            return None
    if lots == OFF_STEP:
        return Reason.OFF_LOT
    if lots < get(market, M_MIN_LOTS):
        return Reason.QTY_BELOW_MIN
    if lots > get(market, M_MAX_LOTS):
        return Reason.QTY_ABOVE_MAX
    if ticks is not None and ticks * lots > get(market, M_MAX_NOTIONAL):
        return Reason.NOTIONAL_ABOVE_MAX
    return None


cdef inline bint _below(long long value, bound) except -1:
    """value < bound, for a market's bound (a positive int, perhaps past 64 bits: unbounded)."""
    cdef int overflow = 0
    cdef long long limit = PyLong_AsLongLongAndOverflow(bound, &overflow)
    return overflow > 0 or (overflow == 0 and value < limit)


cdef inline bint _above(long long value, bound) except -1:
    """value > bound, for a market's bound (a positive int, perhaps past 64 bits: unbounded)."""
    cdef int overflow = 0
    cdef long long limit = PyLong_AsLongLongAndOverflow(bound, &overflow)
    return overflow < 0 or (overflow == 0 and value > limit)


cdef inline bint _crosses(side, limit_key) except -1:
    keys = <list>get(side, S_KEYS)
    return bool(keys) and keys[len(keys) - 1] >= limit_key


cdef bint _fok_fillable(book, taker, limit_key) except -1:
    """validation.fok_fillable: would one matching pass fill the whole quantity in trades?"""
    cdef long long stp = get(taker, O_STP)
    opposite = get(book, B_ASKS if get(taker, O_IS_BUY) else B_BIDS)
    levels = <dict>get(opposite, S_LEVELS)
    sign = get(opposite, S_SIGN)
    owner = get(taker, O_OWNER)
    needed = get(taker, O_REMAINING)
    for key in reversed(<list>get(opposite, S_KEYS)):
        if key < limit_key:
            return False
        for maker in get(levels[key * sign], L_ORDERS):
            maker_remaining = get(maker, O_REMAINING)
            if not maker_remaining:
                continue
            if stp and get(maker, O_OWNER) == owner:
                if stp == CANCEL_OLDEST:
                    continue
                return False
            needed -= maker_remaining
            if needed <= 0:
                return True
    return False


cdef object _new_level(price):
    """Level(price), its slots set here rather than by its Python `__init__`."""
    level = Level.__new__(Level)
    put(level, L_PRICE, price)
    put(level, L_ORDERS, deque())
    put(level, L_QTY, 0)
    put(level, L_COUNT, 0)
    return level


cdef object _drop_level(side, level):
    """BookSide.drop_level."""
    price = get(level, L_PRICE)
    del (<dict>get(side, S_LEVELS))[price]
    keys = <list>get(side, S_KEYS)
    key = price * get(side, S_SIGN)
    if keys[len(keys) - 1] == key:
        keys.pop()
    else:
        del keys[bisect_left(keys, key)]


cdef object _enter(engine, book, taker, key, limit_key, bint never_rests, list out):
    """Engine._enter: match an incoming order, then cancel or rest what is left of it (`key`:
    its (owner, id) in the book's index, or None to make it here)."""
    cdef bint stopped = False
    cdef bint is_buy = get(taker, O_IS_BUY)
    if _crosses(get(book, B_ASKS if is_buy else B_BIDS), limit_key):
        stopped = _match(engine, book, taker, limit_key, out)
        if not get(taker, O_REMAINING):
            return
    seq = _next_seq(engine)
    symbol = get(book, B_SYMBOL)
    owner = get(taker, O_OWNER)
    remaining = get(taker, O_REMAINING)
    if stopped or never_rests:
        out.append(
            Cancelled(
                seq,
                symbol,
                get(taker, O_ID),
                owner,
                STP_REASON if stopped else IOC_REASON,
                remaining,
                0,
                get(taker, O_PEER),
            )
        )
        return
    put(taker, O_PRIORITY, seq)
    price = get(taker, O_PRICE)
    side_name = "buy" if is_buy else "sell"
    out.append(
        Rested(seq, symbol, get(taker, O_ID), owner, side_name, price, remaining, get(taker, O_PEER))
    )
    (<dict>get(book, B_ORDERS))[(owner, get(taker, O_ID)) if key is None else key] = taker
    side = get(book, B_BIDS if is_buy else B_ASKS)
    levels = <dict>get(side, S_LEVELS)
    level = levels.get(price)
    if level is None:
        level = levels[price] = _new_level(price)
        insort(get(side, S_KEYS), price * get(side, S_SIGN))
    (<object>get(level, L_ORDERS)).append(taker)
    put(level, L_QTY, get(level, L_QTY) + remaining)
    put(level, L_COUNT, get(level, L_COUNT) + 1)
    open_orders = get(engine, E_OPEN_ORDERS)
    open_orders[owner] += 1
    (<set>get(engine, E_TOUCHED)).add(taker)
    if get(taker, O_EXPIRY):
        heappush(engine.expiries, (taker.expiry, seq, taker))


cdef object _cancel_order(engine, command, list out):
    """Engine._cancel."""
    book = _book_of(engine, get(command, C_MARKET))
    if book is None:
        return _reject(engine, "cancel", command, Reason.UNKNOWN_MARKET, out)
    owner = get(command, C_OWNER)
    order_id = get(command, C_ID)
    key = (owner, order_id)
    order = (<dict>get(book, B_ORDERS)).get(key)
    if order is None:
        return _reject(engine, "cancel", command, Reason.UNKNOWN_ORDER, out)
    symbol = get(book, B_SYMBOL)
    out.append(Accepted(_next_seq(engine), "cancel", symbol, order_id, owner))
    out.append(
        Cancelled(
            _next_seq(engine),
            symbol,
            get(order, O_ID),
            get(order, O_OWNER),
            get(command, C_REASON) or USER_REASON,
            get(order, O_REMAINING),
            0,
            get(order, O_PEER),
        )
    )
    _take_off(engine, book, order, key)


cdef object _take_off(engine, book, order, key):
    """Engine._take_off with OrderBook.take_off and BookSide.remove (`key`: the order's entry
    in the book's index, as the command that found it made it)."""
    cdef Py_ssize_t count
    owner = get(order, O_OWNER)
    price = get(order, O_PRICE)
    del (<dict>get(book, B_ORDERS))[key]
    side = get(book, B_BIDS if get(order, O_IS_BUY) else B_ASKS)
    level = (<dict>get(side, S_LEVELS))[price]
    put(level, L_QTY, get(level, L_QTY) - get(order, O_REMAINING))
    count = get(level, L_COUNT)
    count -= 1
    put(level, L_COUNT, count)
    put(order, O_REMAINING, 0)
    if not count:
        _drop_level(side, level)
    elif len(get(level, L_ORDERS)) > 2 * count + COMPACT_SLACK:
        put(level, L_ORDERS, deque(level.live_orders()))
    open_orders = get(engine, E_OPEN_ORDERS)
    open_orders[owner] -= 1
    (<set>get(engine, E_TOUCHED)).add(order)


include "_match.pxi"
include "_replace.pxi"
include "_records.pxi"
include "_answers.pxi"
include "_journal.pxi"
include "_market_data.pxi"
include "_intake.pxi"

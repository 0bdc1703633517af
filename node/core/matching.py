"""Matching: the second engine step. Crosses a validated incoming order with the opposite side
in price-time priority, applies self-trade prevention, and reports trades and cancellations.
The trade price is always the resting (maker) order's price.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from .book import Order, OrderBook
from .events import Cancelled, Trade
from .reasons import CancelReason
from .validation import STP_CANCEL_BOTH, STP_CANCEL_NEWEST, STP_CANCEL_OLDEST


class MatchState(Protocol):
    """What matching reads and advances of its engine: the event sequence, the resting orders
    per owner and the orders changed since the last commit. The engine is one; stating it here
    keeps this module from importing the engine that imports it."""

    seq: int
    open_orders: defaultdict[str, int]
    touched: set[Order]


def match(engine: MatchState, book: OrderBook, taker: Order, limit_key: int, out: list) -> bool:
    """Trade `taker` against the book while it crosses `limit_key`; True if STP stopped it.

    On return `taker.remaining` is what is left for the caller to rest or cancel.
    """
    opposite = book.asks if taker.is_buy else book.bids
    keys = opposite.keys
    levels = opposite.levels
    sign = opposite.sign
    index = book.orders
    open_orders = engine.open_orders
    touched = engine.touched
    symbol = book.symbol
    owner = taker.owner
    stp = taker.stp
    aggressor = "buy" if taker.is_buy else "sell"
    remaining = taker.remaining
    seq = engine.seq
    stopped = False
    while keys:
        key = keys[-1]
        if key < limit_key:
            break
        level = levels[key * sign]
        queue = level.orders
        while queue:
            maker = queue[0]
            maker_remaining = maker.remaining
            if not maker_remaining:
                queue.popleft()
                continue
            if stp and maker.owner == owner:
                if stp == STP_CANCEL_NEWEST:
                    stopped = True
                    break
                why = CancelReason.STP  # looked up here, off the common path
                if stp in (STP_CANCEL_OLDEST, STP_CANCEL_BOTH):
                    seq += 1
                    out.append(
                        Cancelled(seq, symbol, maker.id, owner, why, maker_remaining, 0, maker.peer)
                    )
                    _drop_head(queue, level, index, open_orders, maker, touched)
                    if stp == STP_CANCEL_BOTH:
                        stopped = True
                        break
                    continue
                # decrement: both lose the smaller remaining quantity, nobody trades
                cut = remaining if remaining < maker_remaining else maker_remaining
                remaining -= cut
                maker_remaining -= cut
                seq += 1
                out.append(
                    Cancelled(seq, symbol, maker.id, owner, why, cut, maker_remaining, maker.peer)
                )
                seq += 1
                out.append(Cancelled(seq, symbol, taker.id, owner, why, cut, remaining, taker.peer))
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
            remaining -= fill
            maker_remaining -= fill
            seq += 1
            out.append(
                Trade(
                    seq,
                    symbol,
                    level.price,
                    fill,
                    maker.id,
                    maker.owner,
                    taker.id,
                    owner,
                    aggressor,
                    maker_remaining,
                    remaining,
                    maker.peer,
                    taker.peer,
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
            del levels[level.price]
            keys.pop()
        if stopped or not remaining:
            break
    engine.seq = seq
    taker.remaining = remaining
    return stopped


def _drop_head(queue, level, index, open_orders: dict, maker: Order, touched: set) -> None:
    """Remove the order at the front of its level (filled, or cancelled by STP)."""
    queue.popleft()
    level.qty -= maker.remaining
    level.count -= 1
    maker.remaining = 0
    del index[maker.owner, maker.id]
    open_orders[maker.owner] -= 1
    touched.add(maker)

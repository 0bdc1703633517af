"""The order book of one market: price levels in price-time priority.

Each side keeps a dict of levels by price and a sorted list of level keys whose last element is
the best price (bids key by price, asks by -price), so finding, taking and removing the best level
are O(1) and adding a level is a short C-level insort. A level is a FIFO queue; a cancelled order
is marked dead (remaining 0) and skipped when it reaches the front, which keeps cancel O(1).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from typing import Any

import msgspec

from .markets import Market


class Order(msgspec.Struct, eq=False, gc=False):
    """A resting or incoming order in engine units. `remaining` 0 means it is gone (dead)."""

    market: str
    id: Any
    owner: str
    is_buy: bool
    price: int
    remaining: int
    priority: int
    stp: int
    peer: str | None = None
    """Name of the peer that placed the order (None outside a node), kept for its reports."""
    expiry: int = 0
    """A signed order's expiry (unix seconds, at least 1); 0 for an unsigned order."""
    order_hash: str | None = None
    """A signed order's digest (`0x` and 64 hex digits), what a signed cancel names."""
    nonce: int | None = None
    """A signed order's nonce, which a raised minimum nonce judges (`RaiseMinNonce`); None
    for an unsigned order."""


class Level:
    """All orders at one price, oldest first; `qty` and `count` cover live orders only."""

    __slots__ = ("count", "orders", "price", "qty")

    COMPACT_SLACK = 16
    """Dead entries tolerated beyond the live count before the queue is rebuilt."""

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: deque[Order] = deque()
        self.qty = 0
        self.count = 0

    def live_orders(self) -> list[Order]:
        return [order for order in self.orders if order.remaining]


class BookSide:
    """One side of a book. `sign` maps a price to its key so that the best key sorts last."""

    __slots__ = ("is_bid", "keys", "levels", "sign")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.sign = 1 if is_bid else -1
        self.levels: dict[int, Level] = {}
        self.keys: list[int] = []

    def best_price(self) -> int | None:
        return self.keys[-1] * self.sign if self.keys else None

    def add(self, order: Order) -> None:
        level = self.levels.get(order.price)
        if level is None:
            level = self.levels[order.price] = Level(order.price)
            insort(self.keys, order.price * self.sign)
        level.orders.append(order)
        level.qty += order.remaining
        level.count += 1

    def remove(self, order: Order) -> None:
        """Take a live order off its level (the caller reports why)."""
        level = self.levels[order.price]
        level.qty -= order.remaining
        level.count -= 1
        order.remaining = 0
        if not level.count:
            self.drop_level(level)
        elif len(level.orders) > 2 * level.count + Level.COMPACT_SLACK:
            level.orders = deque(level.live_orders())

    def drop_level(self, level: Level) -> None:
        del self.levels[level.price]
        keys = self.keys
        key = level.price * self.sign
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]

    def levels_best_first(self) -> list[Level]:
        return [self.levels[key * self.sign] for key in reversed(self.keys)]


class OrderBook:
    """A market's book: both sides and the live orders by (owner, client id)."""

    __slots__ = ("asks", "bids", "market", "orders", "symbol")

    def __init__(self, market: Market) -> None:
        self.market = market
        self.symbol = market.symbol
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)
        self.orders: dict[tuple[str, Any], Order] = {}

    def side_of(self, order: Order) -> BookSide:
        return self.bids if order.is_buy else self.asks

    def rest(self, order: Order) -> None:
        self.orders[order.owner, order.id] = order
        (self.bids if order.is_buy else self.asks).add(order)

    def take_off(self, order: Order) -> None:
        del self.orders[order.owner, order.id]
        (self.bids if order.is_buy else self.asks).remove(order)

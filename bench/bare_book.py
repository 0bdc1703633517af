"""The floor of bench/peers.py: a bare dict + deque + heap book, the interpreter's limit.

No checks, no events, no owners: what matching by price and time costs in CPython when nothing
else is done, to read marketnode's and the peers' rates against.
"""

from __future__ import annotations

import heapq
from collections import deque
from functools import partial

from peer_adapter_base import FAR_PRICE, Adapter, Call, Fills, Step


class BareBook(Adapter):
    """The floor: a dict + deque + heap book with no checks, no events, one counter of fills.

    Price-time priority, fills at the maker's price; cancels are lazy (the entry's quantity is
    zeroed, the level drops it when it reaches the front), as marketnode's levels do.
    """

    name = "bare-book"
    distribution = "marketnode"
    modules = ()
    native = frozenset({"limit", "cancel", "ioc", "market"})

    def __init__(self, markets: int) -> None:
        super().__init__(markets)
        # per market: [bid prices as a max-heap of negatives, ask prices as a min-heap]
        self.heaps: list[tuple[list[int], list[int]]] = [([], []) for _ in range(markets)]
        self.levels: list[dict[int, deque[list[int]]]] = [{} for _ in range(markets)]
        self.orders: dict[int, list[int]] = {}
        self.trades = 0
        self.traded = 0

    def limit(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return partial(self._enter, market, order_id, is_buy, price, qty, True)

    def ioc(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return partial(self._enter, market, order_id, is_buy, price, qty, False)

    def market(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return self.ioc(market, order_id, is_buy, FAR_PRICE if is_buy else 1, qty)

    def cancel(self, market: int, order_id: int) -> Call:
        return partial(self._cancel, order_id)

    def _enter(
        self, market: int, order_id: int, is_buy: bool, price: int, qty: int, rest: bool
    ) -> None:
        bids, asks = self.heaps[market]
        levels = self.levels[market]
        opposite = asks if is_buy else bids
        sign = 1 if is_buy else -1
        while qty and opposite and (best := sign * opposite[0]) * sign <= price * sign:
            level = levels[best]
            while qty and level:
                maker = level[0]
                if maker[1] == 0:
                    level.popleft()
                    continue
                fill = min(qty, maker[1])
                qty -= fill
                maker[1] -= fill
                self.trades += 1
                self.traded += fill
                if maker[1] == 0:
                    del self.orders[maker[0]]
                    level.popleft()
            while level and not level[0][1]:
                level.popleft()
            if not level:
                del levels[best]
                heapq.heappop(opposite)
        if qty and rest:
            entry = [order_id, qty]
            self.orders[order_id] = entry
            level = levels.get(price)
            if level is None:
                level = levels[price] = deque()
                heapq.heappush(bids if is_buy else asks, -price if is_buy else price)
            level.append(entry)

    def _cancel(self, order_id: int) -> None:
        entry = self.orders.pop(order_id, None)
        if entry is not None:
            entry[1] = 0

    def fills(self, step: Step, result: object) -> Fills:
        trades, traded = self.trades, self.traded
        self.trades = self.traded = 0
        return trades, traded

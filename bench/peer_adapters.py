"""One adapter per peer matching engine on PyPI, for bench/peers.py, and the worker that runs
one of them in another interpreter.

Standard library only, so that the same file drives peers installed in another interpreter
(`limit-order-book` 3.x needs Python 3.13, `matching-engine` 3.12): bench/peers.py runs it there
as a worker (`python bench/peer_adapters.py --worker NAME --steps FILE [--check]`), which prints
one JSON object. How the flow is mapped to each peer's calls: bench/peer_adapter_base.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

from bare_book import BareBook
from peer_adapter_base import Adapter, Call, Fills, Step, step_fills, timed_run


class PyOrderBook(Adapter):
    """pyorderbook: one `Book` for every symbol; orders are objects made before the clock."""

    name = "pyorderbook"
    distribution = "pyorderbook"
    modules = ("pyorderbook",)

    def __init__(self, markets: int) -> None:
        super().__init__(markets)
        import pyorderbook

        self.module = pyorderbook
        self.book = pyorderbook.Book()
        self.orders: dict[int, Any] = {}

    def limit(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        side = self.module.Side.BID if is_buy else self.module.Side.ASK
        order = self.orders[order_id] = self.module.Order(side, str(market), price, qty)
        return partial(self.book.match, order)

    def cancel(self, market: int, order_id: int) -> Call:
        order = self.orders.get(order_id)
        return partial(self._cancel, order) if order is not None else _nothing

    def _cancel(self, order: Any) -> None:
        # the peer raises on an order no longer resting; the flow cancels filled ones too
        if order.id in self.book.order_map:
            self.book.cancel(order)

    def fills(self, step: Step, result: Any) -> Fills:
        if result is None:
            return 0, 0
        return len(result.trades), sum(trade.fill_quantity for trade in result.trades)


class LightMatchingEngine(Adapter):
    """lightmatchingengine: numbers its own orders in sequence, so their ids are known ahead."""

    name = "lightmatchingengine"
    distribution = "lightmatchingengine"
    modules = ("lightmatchingengine.lightmatchingengine",)

    def __init__(self, markets: int) -> None:
        super().__init__(markets)
        from lightmatchingengine.lightmatchingengine import LightMatchingEngine as Engine

        self.engine = Engine()
        self.engine_ids: dict[int, int] = {}
        self.next_engine_id = 0

    def limit(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        self.next_engine_id += 1
        self.engine_ids[order_id] = self.next_engine_id
        return partial(self.engine.add_order, market, price, qty, 1 if is_buy else 2)

    def cancel(self, market: int, order_id: int) -> Call:
        engine_id = self.engine_ids.get(order_id)
        return partial(self._cancel, engine_id, market) if engine_id is not None else _nothing

    def _cancel(self, engine_id: int, market: int) -> None:
        # the peer keeps filled orders in its id map and asserts when their level is gone
        with contextlib.suppress(AssertionError):
            self.engine.cancel_order(engine_id, market)

    def fills(self, step: Step, result: Any) -> Fills:
        if result is None:
            return 0, 0
        order, trades = result
        makers = [trade for trade in trades if trade.order_id != order.order_id]
        return len(makers), sum(trade.trade_qty for trade in makers)


class CythonOrderBook(Adapter):
    """cython-orderbook: a book per market; fills are read from its trade log."""

    name = "cython-orderbook"
    distribution = "cython-orderbook"
    modules = ("cython_orderbook",)
    native = frozenset({"limit", "cancel", "market"})

    def __init__(self, markets: int) -> None:
        super().__init__(markets)
        import cython_orderbook

        self.module = cython_orderbook
        self.books = [cython_orderbook.OrderBook() for _ in range(markets)]
        self.peer_ids: dict[int, str] = {}
        self.logged = [0] * markets
        """Per market: how much of its trade log the agreement check has read."""

    def _order(self, order_id: int, is_buy: bool, price: int | None, qty: int) -> Any:
        side = self.module.OrderSide.BID if is_buy else self.module.OrderSide.ASK
        order = self.module.Order(side, qty, price)
        self.peer_ids[order_id] = order.order_id
        return order

    def limit(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return partial(
            self.books[market].add_limit_order, self._order(order_id, is_buy, price, qty)
        )

    def market(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return partial(
            self.books[market].add_market_order, self._order(order_id, is_buy, None, qty)
        )

    def cancel(self, market: int, order_id: int) -> Call:
        peer_id = self.peer_ids.get(order_id)
        return partial(self.books[market].cancel_order, peer_id) if peer_id else _nothing

    def fills(self, step: Step, result: object) -> Fills:
        market = step[1]
        log = self.books[market].trade_log
        new = log[self.logged[market] :]
        self.logged[market] = len(log)
        return len(new), sum(trade.quantity_filled for trade in new)


class LimitOrderBook(Adapter):
    """limit-order-book (C++ behind ctypes in 2.x, behind Cython in 3.x): a book per market;
    it reports no fills, so the agreement check reads traded lots from its volumes."""

    name = "limit-order-book"
    distribution = "limit-order-book"
    modules = ("limit_order_book",)
    native = frozenset({"limit", "cancel", "market"})

    def __init__(self, markets: int) -> None:
        super().__init__(markets)
        from limit_order_book import LimitOrderBook as Book

        self.books = [Book() for _ in range(markets)]
        self.volume = 0

    def limit(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return partial(self.books[market].limit, is_buy, order_id, qty, price)

    def market(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return partial(self.books[market].market, is_buy, order_id, qty)

    def cancel(self, market: int, order_id: int) -> Call:
        return partial(self._cancel, self.books[market], order_id)

    @staticmethod
    def _cancel(book: Any, order_id: int) -> None:
        # 2.x does not check that the order is resting (3.x does, once more)
        if book.has(order_id):
            book.cancel(order_id)

    def fills(self, step: Step, result: object) -> Fills:
        volume = sum(book.volume_sell() + book.volume_buy() for book in self.books)
        change, self.volume = volume - self.volume, volume
        # a limit of q that trades t lots takes t off the other side and rests q - t
        return None, (step[5] - change) // 2 if step[0] == "limit" else 0


class MatchingEngine(Adapter):
    """matching-engine: an engine per market, sequenced commands made before the clock; one
    account and no self-trade prevention, like the other peers."""

    name = "matching-engine"
    distribution = "matching-engine"
    modules = ("matching_engine", "matching_engine.engine", "matching_engine.events")
    min_python = (3, 12)
    native = frozenset({"limit", "post", "ioc", "fok", "market", "cancel"})

    def __init__(self, markets: int) -> None:
        super().__init__(markets)
        import matching_engine as domain
        from matching_engine.engine import MatchingEngine as Engine
        from matching_engine.events import Trade

        self.domain, self.trade_type = domain, Trade
        self.engines = [Engine() for _ in range(markets)]
        self.seqs = [0] * markets

    def _call(self, market: int, command: Any) -> Call:
        self.seqs[market] += 1
        sequenced = self.domain.SequencedCommand(self.seqs[market], 0, command)
        return partial(self.engines[market].process, sequenced)

    def _new(
        self, market: int, order_id: int, is_buy: bool, price: int, qty: int, **kind: Any
    ) -> Call:
        d = self.domain
        side = d.Side.BUY if is_buy else d.Side.SELL
        order = d.NewOrder(order_id, 1, side, price, qty, stp=d.SelfTradePrevention.NONE, **kind)
        return self._call(market, order)

    def limit(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return self._new(market, order_id, is_buy, price, qty)

    def post(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return self._new(market, order_id, is_buy, price, qty, post_only=True)

    def ioc(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return self._new(market, order_id, is_buy, price, qty, tif=self.domain.TimeInForce.IOC)

    def fok(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        return self._new(market, order_id, is_buy, price, qty, tif=self.domain.TimeInForce.FOK)

    def market(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        d = self.domain
        return self._new(
            market, order_id, is_buy, 0, qty, order_type=d.OrderType.MARKET, tif=d.TimeInForce.IOC
        )

    def cancel(self, market: int, order_id: int) -> Call:
        return self._call(market, self.domain.CancelOrder(order_id, 1))

    def fills(self, step: Step, result: Any) -> Fills:
        trades = [event for event in result if type(event) is self.trade_type]
        return len(trades), sum(trade.qty for trade in trades)


def _nothing() -> None:
    """The call for a cancel of an order the peer never saw (the flow's first cancels)."""


PEERS: tuple[type[Adapter], ...] = (
    PyOrderBook,
    LightMatchingEngine,
    CythonOrderBook,
    LimitOrderBook,
    MatchingEngine,
)
BY_NAME = {adapter.name: adapter for adapter in (BareBook, *PEERS)}


def worker_main(argv: Sequence[str] | None = None) -> None:
    """Run one peer here, on the steps of a file bench/peers.py wrote; print one JSON object."""
    parser = argparse.ArgumentParser(description="Run one peer for bench/peers.py.")
    parser.add_argument("--worker", required=True, choices=sorted(BY_NAME))
    parser.add_argument("--steps", required=True, help="JSON file: markets and steps")
    parser.add_argument("--check", action="store_true", help="per-step fills, not a timed run")
    parser.add_argument("--describe", action="store_true", help="only say whether it can run")
    args = parser.parse_args(argv)
    adapter = BY_NAME[args.worker]
    reason = adapter.unavailable()
    if args.describe or reason is not None:
        print(
            json.dumps(
                {
                    "unavailable": reason,
                    "version": adapter.version(),
                    "python": sys.version.split()[0],
                }
            )
        )
        return
    with open(args.steps, encoding="utf-8") as file:
        flow = json.load(file)
    steps = [tuple(step) for step in flow["steps"]]
    if args.check:
        print(json.dumps({"fills": step_fills(adapter, steps, flow["markets"])}))
    else:
        print(json.dumps(timed_run(adapter, steps, flow["markets"])))


if __name__ == "__main__":
    worker_main()

"""Market data: level-2 changes and trades per market, and full book snapshots.

One message per market a batch changed, numbered per topic within the node's run. A level
change carries the level's new absolute total, so applying one twice, or on top of a snapshot
that already holds it, changes nothing: resynchronising is "take a snapshot, then apply every
message with a higher topic seq".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import zmq

from ..core.book import Level, Order, OrderBook
from ..protocol.messages import (
    PROTOCOL_VERSION,
    BookLevel,
    LevelChange,
    MarketData,
    TapeTrade,
    encoder,
    market_topic,
)


class MarketDataPublisher:
    """The market-data socket's topics: their seqs (in memory: they count from 1 again in each
    run of the node) and what is published on them.

    With the compiled core the messages are written by its `MarketDataWriter`, the same bytes
    as the structs below give; the Python engine's node builds them here, the reference."""

    def __init__(self, socket: zmq.Socket, run: int, writer_class: type | None = None) -> None:
        self.socket = socket
        self.topic_seq: defaultdict[str, int] = defaultdict(int)
        self.run = run
        """This run's id (its start, ms since the epoch): market-data seqs count within it."""
        self.writer = None
        if writer_class is not None:
            self.writer = writer_class(
                MarketData, TapeTrade, LevelChange, PROTOCOL_VERSION, encoder.encode
            )

    def publish(
        self,
        books: dict[str, OrderBook],
        trades: dict[str, list[TapeTrade]],
        changed: Iterable[Order],
    ) -> None:
        """One message per market a batch touched: its trades, its levels' new totals."""
        for market, payload in self.messages(books, trades, changed):
            self.socket.send_multipart([market_topic(market), payload])

    def messages(
        self,
        books: dict[str, OrderBook],
        trades: dict[str, list[TapeTrade]],
        changed: Iterable[Order],
    ) -> list[tuple[str, bytes]]:
        """The batch's messages as (market, encoded message), markets in order; each takes
        its topic's next seq."""
        if self.writer is not None:
            return self.writer.messages(books, trades, changed, self.topic_seq, self.run)
        levels = level_changes(books, changed)
        topic_seq = self.topic_seq
        messages = []
        for market in sorted(trades.keys() | levels.keys()):
            topic_seq[market] += 1
            payload = MarketData(
                PROTOCOL_VERSION,
                market,
                topic_seq[market],
                trades.get(market, []),
                levels.get(market, []),
                self.run,
            )
            messages.append((market, encoder.encode(payload)))
        return messages

    def send(self, topic: bytes, payload: bytes) -> None:
        """A message of another topic (alerts, scaling advice), already encoded."""
        self.socket.send_multipart([topic, payload])


def level_changes(
    books: dict[str, OrderBook], changed: Iterable[Order]
) -> dict[str, list[LevelChange]]:
    """The current totals of every price level the changed orders sit (or sat) on."""
    touched = {(order.market, order.is_buy, order.price) for order in changed}
    changes: dict[str, list[LevelChange]] = {}
    for market, is_buy, price in sorted(touched, key=lambda key: (key[0], not key[1], key[2])):
        book = books.get(market)
        if book is None:
            continue
        level = (book.bids if is_buy else book.asks).levels.get(price)
        units = book.market
        changes.setdefault(market, []).append(
            LevelChange(
                "buy" if is_buy else "sell",
                units.tick.text_of(price),
                units.lot.text_of(level.qty if level else 0),
                level.count if level else 0,
            )
        )
    return changes


def book_levels(
    book: OrderBook, depth: int | None = None
) -> tuple[list[BookLevel], list[BookLevel]]:
    """Bids and asks by level, best first, `depth` levels a side (all if None)."""
    market = book.market

    def view(level: Level) -> BookLevel:
        return BookLevel(
            market.tick.text_of(level.price), market.lot.text_of(level.qty), level.count
        )

    return (
        [view(level) for level in book.bids.levels_best_first()[:depth]],
        [view(level) for level in book.asks.levels_best_first()[:depth]],
    )

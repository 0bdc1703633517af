"""The dashboard's data sources: what each asks the node, how often, which panels render its
answer and which message carries it. The app schedules its workers and routes the answers
from this one table.

A source is asked in a thread worker of its own (`Source.fetch`), through `NodeReader`, which
holds what the asking needs between rounds: the connections, the market the Book panel
watches, the per-second samples seen so far.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from textual.message import Message

from marketnode.node.client import ClientError
from marketnode.node.core.markets import ConfigError
from marketnode.node.home.keys import KeyFileError

from .links import ANALYTICS_TIMEOUT_S, REQUEST_TIMEOUT_S, NodeLinks
from .messages import (
    AlertsFetched,
    BookFetched,
    Fetched,
    MarketsFetched,
    MarketStatsFetched,
    MetricsFetched,
    PeersFetched,
    Refused,
    ScaleFetched,
    SettlementProgressFetched,
    StatusFetched,
    TapeFetched,
    Unreachable,
)
from .panels.integrity import ALERTS_QUERY
from .panels.markets import DAY_STATS_QUERY
from .panels.settlement import PROGRESS_QUERY
from .screens import TRADES_SHOWN

BOOK_DEPTH = 15
CLOSING_SEEN_S = 0.1
"""The tape listens in slices this long, so a dashboard closing never waits a whole refresh
period for it."""
SECONDS_KEPT = 300
ANALYTICS_SLOW = (
    f"the analytics process did not answer within {ANALYTICS_TIMEOUT_S:g} s (scanning or "
    "catching up); the last answer is shown"
)
EVIDENCE_TRADES_QUERY = f"""
SELECT seq, strftime(time, '%Y-%m-%d %H:%M:%S') AS time, seller, buyer, price, qty FROM trades
WHERE seq IN (SELECT unnest(trades) FROM alerts WHERE id = ?) ORDER BY seq LIMIT {TRADES_SHOWN}
"""


class NodeReader:
    """What the sources ask the node, from their workers' threads. Each source asks over a
    connection of its own, named after it."""

    def __init__(self, links: NodeLinks, period: Callable[[], float]) -> None:
        """`period`: the dashboard's refresh period now (the tape listens that long)."""
        self.links = links
        self.period = period
        self.closing = False
        self.book_market: str | None = None
        """The market chosen in the Markets panel, if any."""
        self.market_names: list[str] = []
        self.seconds: deque[dict] = deque(maxlen=SECONDS_KEPT)
        """The node's per-second samples the dashboard has seen, newest last."""

    def call(
        self, connection: str, cmd: str, timeout_s: float = REQUEST_TIMEOUT_S, **arguments: Any
    ) -> Any:
        """One admin request over `connection`'s link."""
        with self.links.admin(connection, timeout_s) as client:
            return client.call(cmd, **arguments)

    def watched_market(self) -> str | None:
        """The market of the Book panel: the one chosen in Markets, else the first."""
        return self.book_market or (self.market_names[0] if self.market_names else None)

    def markets(self, connection: str) -> list[dict]:
        """The markets, their names kept to find the Book panel's first market."""
        markets = self.call(connection, "markets")
        self.market_names = sorted(market["market"] for market in markets)
        return markets

    def book(self, connection: str) -> dict | None:
        market = self.watched_market()
        if market is None:
            return None
        return self.call(connection, "book", market=market, depth=BOOK_DEPTH)

    def metrics(self, connection: str) -> dict:
        """The node's metrics, asking only for the samples not seen yet; the answer carries
        the last `SECONDS_KEPT` of them."""
        since = self.seconds[-1]["time"] if self.seconds else None
        data = self.call(connection, "metrics", **({} if since is None else {"since": since}))
        self.seconds.extend(data.get("history", []))
        return {**data, "history": list(self.seconds)}

    def tape(self, connection: str) -> dict | None:
        """The watched market's trades from the market-data socket over one refresh period,
        the last message's `seq` and `run`, and whether messages were `lost` (a seq gap or a
        new run: the Book panel then holds its ladder stale until the next snapshot)."""
        market = self.watched_market()
        deadline = time.monotonic() + self.period()
        if market is None:
            while not self.closing and (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, CLOSING_SEEN_S))
            return None
        trades: list[dict] = []
        seq = run = None
        with self.links.market_data(connection, market) as subscriber:
            gaps = subscriber.gaps
            while (left := deadline - time.monotonic()) > 0 and not self.closing:
                message = subscriber.receive(int(min(left, CLOSING_SEEN_S) * 1000) + 1)
                if message is not None:
                    trades.extend(msgspec.to_builtins(message.trades))
                    seq, run = message.seq, message.run
            lost = subscriber.gaps > gaps
        return {"market": market, "time": time.time(), "trades": trades, "seq": seq,
                "run": run, "lost": lost}  # fmt: skip

    def evidence(self, alert_id: str) -> dict:
        """The trades an alert names (a SQL result)."""
        return self.call("evidence", "sql", ANALYTICS_TIMEOUT_S,
                         query=EVIDENCE_TRADES_QUERY, params=[alert_id])  # fmt: skip

    def close(self) -> None:
        self.closing = True
        self.links.close()


Ask = Callable[[NodeReader, str], Any]
"""What a source asks, given the reader and the name of the source's connection; None when
there is nothing to ask yet (no market to watch)."""


def admin(cmd: str, timeout_s: float = REQUEST_TIMEOUT_S, **arguments: Any) -> Ask:
    """A source that sends one admin request."""
    return lambda reader, connection: reader.call(connection, cmd, timeout_s, **arguments)


@dataclass(frozen=True)
class Source:
    """Something the dashboard asks the node again and again: every `every` refreshes, while
    one of `panels` or `also_for` is shown (or `always`); its answer comes as a `fetched`
    message and `panels` render it.
    `analytics`: the node relays it to its analytics process; when that is slow to answer the
    panels say so, and the node is not taken for gone."""

    name: str
    fetched: type[Fetched]
    ask: Ask
    every: float
    panels: tuple[str, ...]
    also_for: tuple[str, ...] = ()
    always: bool = False
    analytics: bool = False

    def wanted(self, shown_panel: str) -> bool:
        return self.always or shown_panel in self.panels or shown_panel in self.also_for

    def fetch(self, reader: NodeReader) -> Message | None:
        """Ask (in the source's worker thread): the message to post, None if nothing was
        asked."""
        try:
            answer = self.ask(reader, self.name)
        except ClientError as error:
            if not error.unreachable:
                return Refused(self.name, str(error))
            if self.analytics:
                return Refused(self.name, ANALYTICS_SLOW)
            return Unreachable(self.name, str(error))
        except (ConfigError, KeyFileError) as error:  # the home changed underneath
            return Unreachable(self.name, str(error))
        return None if answer is None else self.fetched(answer)


SOURCES = (
    Source("status", StatusFetched, admin("status"), 2, ("overview", "settlement", "liquidity"),
           always=True),  # the title too
    Source("metrics", MetricsFetched, NodeReader.metrics, 1, ("overview", "markets", "resources"),
           always=True),  # the charts keep every second
    Source("peers", PeersFetched, admin("peers"), 2, ("overview",)),
    Source("markets", MarketsFetched, NodeReader.markets, 1, ("markets",),
           also_for=("book",)),  # the Book panel's first market
    Source("book", BookFetched, NodeReader.book, 1, ("book",)),
    Source("tape", TapeFetched, NodeReader.tape, 0, ("book",)),  # waits a refresh period itself
    Source("market_stats", MarketStatsFetched,
           admin("sql", ANALYTICS_TIMEOUT_S, query=DAY_STATS_QUERY), 5, ("markets",),
           analytics=True),
    Source("alerts", AlertsFetched, admin("sql", ANALYTICS_TIMEOUT_S, query=ALERTS_QUERY), 2,
           ("integrity",), analytics=True),
    Source("scale", ScaleFetched, admin("scale"), 1, ("scaling",)),
    Source("settlement_progress", SettlementProgressFetched,  # a relayer beside the node's
           admin("sql", ANALYTICS_TIMEOUT_S, query=PROGRESS_QUERY), 2, ("settlement",),
           analytics=True),
)  # fmt: skip
SOURCE_NAMED = {source.name: source for source in SOURCES}
SOURCE_OF = {source.fetched: source for source in SOURCES}
"""The source whose answer a message carries."""

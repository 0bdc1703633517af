"""The dashboard's data sources: what each asks the node, how often, which panels render its
answer and which message carries it. The app schedules its workers and routes the answers
from this one table.

A source is asked in a thread worker of its own (`Source.fetch`), through `NodeReader`, which
holds what the asking needs between rounds: the connections, the market the Book panel
watches, the per-second samples seen so far, and the cluster the node is a member of.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from textual.message import Message

from marketnode.node.client import AdminClient, ClientError
from marketnode.node.core.markets import ConfigError
from marketnode.node.home.keys import KeyFileError

from .links import ANALYTICS_TIMEOUT_S, REQUEST_TIMEOUT_S, NodeLinks
from .messages import (
    AlertsFetched,
    BookFetched,
    ClusterFetched,
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


class ClusterUnavailable(Exception):
    """The cluster's directory cannot be read now (its servers down, its folder's record
    gone): one line for the Cluster panel."""


@dataclass(frozen=True)
class ClusterLink:
    """The cluster the dashboard's node is a member of, as whoever opened the dashboard found
    it: the dashboard does not talk to the directory's store itself (`mnode dashboard` hands
    it how, from the cluster folder the node's home is in).

    `directory()`: the market directory now as plain data (`version`; `nodes`, each with its
    `orders`, `market_data` and `admin` endpoints and `server_key`; `markets`, each with its
    `node` and, while it moves, `moving_to` and `move`), ClusterUnavailable when it cannot be
    read. `admin(node, timeout_s)`: an admin connection to a node of the cluster, with that
    node's operator key."""

    folder: Path
    node: str
    """The name of the dashboard's own node in the directory."""
    directory: Callable[[], dict]
    admin: Callable[[str, float], AdminClient]


class NodeReader:
    """What the sources ask the node, from their workers' threads. Each source asks over a
    connection of its own, named after it."""

    def __init__(
        self, links: NodeLinks, period: Callable[[], float], cluster: ClusterLink | None = None
    ) -> None:
        """`period`: the dashboard's refresh period now (the tape listens that long);
        `cluster`: the node's cluster, None when it is in none."""
        self.links = links
        self.period = period
        self.cluster_link = cluster
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

    def cluster(self, _connection: str) -> dict:
        """The cluster's directory and each of its nodes' load, asked of every node in turn
        over a connection made for the round (the nodes are not the dashboard's node, whose
        connections `links` keeps); `folder` None when the node is in no cluster."""
        link = self.cluster_link
        if link is None:
            return {"folder": None}
        view = {"folder": str(link.folder), "node": link.node, "time": time.time()}
        try:
            directory = link.directory()
        except ClusterUnavailable as error:
            return {**view, "error": str(error)}
        load = {name: node_load(link, name) for name in sorted(directory["nodes"])}
        return {**view, "directory": directory, "load": load}

    def evidence(self, alert_id: str) -> dict:
        """The trades an alert names (a SQL result)."""
        return self.call("evidence", "sql", ANALYTICS_TIMEOUT_S,
                         query=EVIDENCE_TRADES_QUERY, params=[alert_id])  # fmt: skip

    def close(self) -> None:
        self.closing = True
        self.links.close()


def node_load(link: ClusterLink, name: str) -> dict:
    """Node `name`'s load from its own answers: orders/s and the matching thread's busy share
    from its latest per-second sample (None with its sampler off, `sampler_on` False, or before
    its first sample), resting orders, seq and halted markets from its status. A node that
    does not answer is `answering` False with why: no figure is carried over from an older
    round."""
    try:
        with link.admin(name, REQUEST_TIMEOUT_S) as client:
            status = client.call("status")
            metrics = client.call("metrics", since=time.time())
    except (ClientError, ConfigError, KeyFileError) as error:
        return {"answering": False, "why": str(error)}
    latest = metrics.get("latest")
    return {"answering": True, "seq": status["seq"], "resting_orders": status["resting_orders"],
            "halted": status["halted"], "sampler_on": "latest" in metrics,
            "orders_per_s": None if latest is None else latest["orders_per_s"],
            "matching_busy": None if latest is None else latest["matching_busy"]}  # fmt: skip


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
    panels say so, and the node is not taken for gone.
    `from_the_node`: False for an answer asked elsewhere (the cluster's directory and nodes),
    which says nothing of whether the dashboard's node answers."""

    name: str
    fetched: type[Fetched]
    ask: Ask
    every: float
    panels: tuple[str, ...]
    also_for: tuple[str, ...] = ()
    always: bool = False
    analytics: bool = False
    from_the_node: bool = True

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
    Source("cluster", ClusterFetched, NodeReader.cluster, 2, ("cluster",), from_the_node=False),
)  # fmt: skip
SOURCE_NAMED = {source.name: source for source in SOURCES}
SOURCE_OF = {source.fetched: source for source in SOURCES}
"""The source whose answer a message carries."""

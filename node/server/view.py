"""The node as its answers and its operator see it: a narrow interface over the state the
matching thread keeps, so the code answering peers' requests and admin commands reads what it
needs (books, halted markets, topic seqs, limits, peers, metrics) and does what it may (halt,
resume, disable a peer and cancel its orders, shut down) without reaching into the engine or
the loop.

Only the matching thread uses it, between batches: nothing here needs a lock.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .. import __version__
from ..core.book import Order, OrderBook
from ..core.compiled import choose_core
from ..home.config import LimitsConfig, NodeConfig
from ..home.peers import AllowlistFile
from ..ops.metrics import LoopMetrics
from ..ops.sampler import MetricsSampler
from ..ops.scaling import Scaler
from ..store.durable import DurableEngine
from .connections import Connections
from .marketdata import MarketDataPublisher
from .subscribers import Subscribers

log = logging.getLogger("marketnode.node")


@dataclass
class NodeView:
    """What answers to peers' requests and admin commands may read and do."""

    config: NodeConfig
    durable: DurableEngine
    halted: set[str]
    """Halted markets (shared with the gateway, which refuses their new orders)."""
    market_data: MarketDataPublisher
    connections: Connections
    allowlist: AllowlistFile
    metrics: LoopMetrics
    endpoints: dict[str, str]
    server_public_key: str
    analytics_status: Callable[[], Any]
    """The analytics process's last known lag, or why there is none."""
    settlement_status: Callable[[], Any]
    """The settlement relayer's state ("off", or its process and batches in flight)."""
    liquidity_status: Callable[[], Any]
    """The liquidity process's state ("off", or its process and each instance's report)."""
    admission_status: Callable[[], Any]
    """The order socket's connection admission (admission.py): state, rate, share dropped."""
    cancel_orders_of: Callable[[str, str], int]
    """Cancel every resting order a peer placed (journaled, reported, published): its count."""
    stop: Callable[[], None]
    """Ask the loop to stop after the batch in flight."""
    sampler: MetricsSampler | None = None
    scaler: Scaler | None = None
    subscribers: Subscribers | None = None
    """Who is behind each market-data connection (for revoking a peer)."""

    # -- reading ------------------------------------------------------------------------------

    @property
    def books(self) -> dict[str, OrderBook]:
        return self.durable.engine.books

    @property
    def seq(self) -> int:
        """The engine's last event seq."""
        return self.durable.engine.seq

    @property
    def run(self) -> int:
        return self.market_data.run

    @property
    def limits(self) -> LimitsConfig:
        return self.config.limits

    @property
    def curve(self) -> bool:
        return self.config.security.curve

    def md_seq(self, market: str) -> int:
        """The last market-data seq of a market's topic in this run (0: none yet)."""
        return self.market_data.topic_seq.get(market, 0)

    def resting_orders(self) -> Iterable[Order]:
        """Every resting order: market by market, bids then asks, best first, in time order."""
        return self.durable.engine.resting_orders()

    def peer_seen(self, name: str) -> bool:
        """Has peer `name` sent a message to the order socket since the start?"""
        return name in self.connections.identity_of

    def status(self) -> dict[str, Any]:
        books = self.books
        return {
            "name": self.config.node.name,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.metrics.started, 3),
            "endpoints": self.endpoints,
            "server_public_key": self.server_public_key,
            "seq": self.seq,
            "journal_length": self.durable.journal_length,
            "state_hash": f"{self.durable.book_hash.value:016x}",
            "markets": len(books),
            "halted": sorted(self.halted),
            "resting_orders": sum(len(book.orders) for book in books.values()),
            "peers_registered": len(self.allowlist.current.peers),
            "peers_seen": sorted(self.connections.identity_of),
            "analytics": self.analytics_status(),
            "settlement": self.settlement_status(),
            "liquidity": self.liquidity_status(),
            "admission": self.admission_status(),
            "core": asdict(choose_core()),
        }

    # -- acting -------------------------------------------------------------------------------

    def set_halted(self, market: str, halted: bool) -> None:
        """Halt or resume a market; kept in the store, so it holds across restarts."""
        (self.halted.add if halted else self.halted.discard)(market)
        self.durable.store.put_meta_list(b"halted", sorted(self.halted))
        log.info("market %s %s", market, "halted" if halted else "resumed")

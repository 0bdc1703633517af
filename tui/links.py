"""The dashboard's connections to the node: one per data source, kept between its requests.

A source's worker runs in a new thread each time, but never two at once, so the source's
socket passes from one to the next (ZeroMQ allows a socket to move between threads, never to
be shared). A connection that failed is closed and made again next time; one made for an
address the node no longer has (restarted on other ports) too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from marketnode.node.client import AdminClient, NodeAddress, Subscriber
from marketnode.node.home.keys import KeyPair

REQUEST_TIMEOUT_S = 2.0
ANALYTICS_TIMEOUT_S = 5.0
"""Requests the node relays to its analytics process, which answers between ingest steps and
scans: it may take longer."""


class Closable(Protocol):
    def close(self) -> None: ...


class NodeLinks:
    def __init__(self, locate: Callable[[], NodeAddress], key: KeyPair | None) -> None:
        self.locate = locate
        self.key = key
        self._lock = threading.Lock()
        self._idle: dict[str, tuple[Hashable, Closable]] = {}
        self._closed = False

    @contextmanager
    def admin(self, source: str, timeout_s: float = REQUEST_TIMEOUT_S) -> Iterator[AdminClient]:
        """The source's admin connection, for one request or a few."""
        address = self.locate()
        with self._lease(
            source, address, lambda: AdminClient(address, self.key, timeout_s)
        ) as client:
            yield client

    @contextmanager
    def market_data(self, source: str, market: str) -> Iterator[Subscriber]:
        """The source's subscription to one market's data: a new one when the market changes."""
        address = self.locate()
        with self._lease(
            source, (address, market), lambda: Subscriber(address, self.key, [market])
        ) as subscriber:
            yield subscriber

    @contextmanager
    def _lease(self, name: str, spec: Hashable, connect: Callable[[], Any]) -> Iterator[Any]:
        """`name`'s kept connection if it was made for `spec`, else a new one; kept again
        after a use that raised nothing."""
        with self._lock:
            kept = self._idle.pop(name, None)
        if kept is not None and kept[0] != spec:
            kept[1].close()
            kept = None
        connection = kept[1] if kept is not None else connect()
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        with self._lock:
            if not self._closed:
                self._idle[name] = (spec, connection)
                return
        connection.close()

    def close(self) -> None:
        """Close every idle connection; one in use is closed when its request ends."""
        with self._lock:
            self._closed = True
            gone = [connection for _, connection in self._idle.values()]
            self._idle.clear()
        for connection in gone:
            connection.close()

"""A peer's client of a cluster: each market's commands go to the node the market directory
names, and its market data comes from there, following the directory as it changes.

The directory itself is not this package's: whoever watches it (node/cluster/following.py over
NATS) hands each new version to `offer`, from any thread; the client applies it on its own
thread at its next call (ZeroMQ sockets belong to one thread). Applying a version in which a
market moved connects to its new node (a ping, so that node knows where to send this peer's
execution reports), moves the market's subscription there and resynchronises it from a
snapshot. Commands for a market being moved reach its old node, which answers
`market_halted`; `submit` then waits for the move to end and sends those commands again to the
node serving the market now, so a move costs the peer a delay, not its orders (the old node
applied none of them: never applied twice).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import zmq

from ..core.events import Accepted, Rejected
from ..core.reasons import Reason
from ..home.keys import KeyPair
from ..protocol.messages import MarketData, Reply, Report
from .address import DEFAULT_TIMEOUT_S, ClientError, NodeAddress
from .peer import Client
from .subscriber import Subscriber

MOVE_NOTICE_S = 2.0
"""How long a `market_halted` answer waits for the directory to show the market moving before
it is taken for an operator's halt (a move is marked in the directory before the market halts,
so the notice follows within the watch's delay)."""
WAIT_STEP_S = 0.005


@dataclass(frozen=True)
class Routes:
    """One version of the directory as a client needs it: where each node is, which node
    serves each market."""

    version: int
    nodes: Mapping[str, NodeAddress]
    markets: Mapping[str, str]
    moving: frozenset[str] = field(default_factory=frozenset)
    """Markets being moved (halted on their node until the move ends)."""


class RoutedClient:
    """Order entry and market data across a cluster's nodes, by market."""

    def __init__(
        self, routes: Routes, key: KeyPair | None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.key = key
        self.timeout_s = timeout_s
        self.context = zmq.Context.instance()
        self.routes = Routes(0, {}, {})
        self.clients: dict[str, Client] = {}
        self.subscribers: dict[str, Subscriber] = {}
        self.subscribed: set[str] = set()
        self.moves_followed = 0
        """Markets seen moving to another node since the start."""
        self.resent = 0
        """Commands answered `market_halted` during a move and sent again after it."""
        self._unread: list[Report] = []
        """Reports received on connections dropped since, not read yet."""
        self._offered: Routes | None = None
        self._lock = threading.Lock()
        self._apply(routes)

    def __enter__(self) -> RoutedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for connection in [*self.clients.values(), *self.subscribers.values()]:
            connection.close()
        self.clients.clear()
        self.subscribers.clear()

    # -- following the directory --------------------------------------------------------------

    def offer(self, routes: Routes) -> None:
        """A new version of the directory (safe from any thread): applied at the next call."""
        with self._lock:
            if self._offered is None or routes.version > self._offered.version:
                self._offered = routes

    def follow(self) -> None:
        """Apply the newest version offered, if it is newer than the one followed."""
        with self._lock:
            offered, self._offered = self._offered, None
        if offered is not None and offered.version > self.routes.version:
            self._apply(offered)

    def _apply(self, routes: Routes) -> None:
        """Follow `routes`. A node now at other addresses (it restarted elsewhere) has its
        connections dropped: the execution reports already received on them are kept for
        `reports`, those the node sent after are lost with the old connection (the node's
        journal has them), and every market followed there is subscribed again, from a
        snapshot of the node at its new addresses."""
        previous = self.routes
        self.routes = routes
        dropped = {name for name in [*self.clients, *self.subscribers]
                   if previous.nodes.get(name) != routes.nodes.get(name)}  # fmt: skip
        for name in dropped:
            self._drop(name)
        for market in sorted(self.subscribed):
            old, new = previous.markets.get(market), routes.markets.get(market)
            if new is not None and (old != new or new in dropped):
                if old in self.subscribers:
                    self.subscribers[old].unsubscribe(market)
                self._subscribe(market)
        moved = [m for m, node in routes.markets.items()
                 if previous.markets.get(m) not in (None, node)]  # fmt: skip
        self.moves_followed += len(moved)
        for market in moved:
            self.client_for(market)  # connected and pinged before the next command

    def _drop(self, name: str) -> None:
        client = self.clients.pop(name, None)
        if client is not None:
            while (report := client.next_report()) is not None:
                self._unread.append(report)
            client.close()
        subscriber = self.subscribers.pop(name, None)
        if subscriber is not None:
            subscriber.close()

    # -- order entry --------------------------------------------------------------------------

    def node_of(self, market: str) -> str:
        node = self.routes.markets.get(market)
        if node is None:
            raise ClientError(f"market {market!r} is not in the directory")
        return node

    def client_for(self, market: str) -> Client:
        """The connection to the node serving `market` (made, and pinged, the first time)."""
        name = self.node_of(market)
        client = self.clients.get(name)
        if client is None:
            address = self.routes.nodes[name]
            client = Client(address, self.key, self.timeout_s, self.context)
            self.clients[name] = client
            client.ping()  # from now on that node reports this peer's fills here
        return client

    def submit(self, market: str, commands: list[Any]) -> Reply:
        """Send commands of one market to the node serving it and wait for their reply; those
        answered `market_halted` because the market is being moved are sent again once the
        move has ended, their answers in their place in the reply."""
        self.follow()
        node = self.node_of(market)
        reply = self.client_for(market).submit(commands)
        answers = per_command(reply.events)
        halted = [index for index, events in enumerate(answers) if halted_answer(events[0])]
        if not halted or not self._wait_for_move(market, node):
            return reply
        again = self.client_for(market).submit([commands[index] for index in halted])
        self.resent += len(halted)
        for index, events in zip(halted, per_command(again.events), strict=True):
            answers[index] = events
        return Reply(reply.v, [event for events in answers for event in events], reply.ref)

    def _wait_for_move(self, market: str, node: str) -> bool:
        """After `node` answered `market_halted` for `market`: wait for a move of it to end
        (to another node, or undone); False if none is seen (an operator's halt) or it does
        not end within the client's time-out."""
        now = time.monotonic()
        notice, deadline = now + MOVE_NOTICE_S, now + self.timeout_s
        seen_moving = False
        while True:
            self.follow()
            if market in self.routes.moving:
                seen_moving = True
            elif seen_moving or self.routes.markets.get(market) != node:
                return True
            now = time.monotonic()
            if now > deadline or (not seen_moving and now > notice):
                return False
            time.sleep(WAIT_STEP_S)

    def reports(self) -> list[Report]:
        """The execution reports received so far from every node, oldest first per node."""
        found, self._unread = self._unread, []
        for client in self.clients.values():
            while (report := client.next_report()) is not None:
                found.append(report)
        return found

    # -- market data --------------------------------------------------------------------------

    def subscribe(self, market: str) -> None:
        """Follow `market`'s data from whichever node serves it, now and after moves."""
        self.follow()
        self.subscribed.add(market)
        self._subscribe(market)

    def _subscribe(self, market: str) -> None:
        name = self.node_of(market)
        subscriber = self.subscribers.get(name)
        if subscriber is None:
            address = self.routes.nodes[name]
            subscriber = Subscriber(address, self.key, [], self.context)
            self.subscribers[name] = subscriber
        subscriber.subscribe(market)
        subscriber.resynchronised(self.client_for(market).snapshot(market))

    def receive(self, timeout_ms: int) -> MarketData | None:
        """The next market-data message from any node followed, or None on time-out."""
        self.follow()
        poller = zmq.Poller()
        for subscriber in self.subscribers.values():
            poller.register(subscriber.socket, zmq.POLLIN)
        ready = dict(poller.poll(timeout_ms))
        for subscriber in self.subscribers.values():
            if subscriber.socket in ready:
                return subscriber.receive(0)
        return None


def halted_answer(event: Any) -> bool:
    return type(event) is Rejected and event.reason == Reason.MARKET_HALTED


def per_command(events: list) -> list[list]:
    """A reply's events cut per command: each command's answer (`accepted` or `rejected`)
    and the events after it, up to the next command's answer."""
    groups: list[list] = []
    for event in events:
        if type(event) is Accepted or type(event) is Rejected:
            groups.append([event])
        else:
            groups[-1].append(event)
    return groups

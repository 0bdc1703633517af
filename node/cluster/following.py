"""Peers following the directory: a thread watching its key in NATS hands every new version
to a `RoutedClient` (node/client/routed.py), which moves its connections and subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence

from ..client import NodeAddress
from ..client.routed import RoutedClient, Routes
from ..home.keys import KeyPair
from .directory import Directory, DirectoryStore, read_directory

STOP_WAIT_S = 5.0
RETRY_S = 0.5
"""The pause before a failed watch is started again."""


def routes_of(directory: Directory) -> Routes:
    """The directory as a client routes by it: a market being moved still goes to its node
    (which answers `market_halted` until the move ends) and is listed as moving."""
    nodes = {
        name: NodeAddress(entry.orders, entry.market_data, entry.admin,
                          entry.server_key.encode() if entry.server_key else None)
        for name, entry in directory.nodes.items()
    }  # fmt: skip
    markets = {market: entry.node for market, entry in directory.markets.items()}
    moving = frozenset(m for m, entry in directory.markets.items() if entry.moving_to)
    return Routes(directory.version, nodes, markets, moving)


class DirectoryFollower:
    """Watches the directory at `servers` in a thread of its own and offers each version to
    `client` (started by `start`, stopped by `stop`). A watch that fails (its server killed,
    a time-out on a loaded machine) is started again, on any of the servers, as long as the
    follower runs: a new watch begins with the directory as it is, so no change is missed."""

    def __init__(self, servers: Sequence[str], client: RoutedClient) -> None:
        self.servers = list(servers)
        self.client = client
        self.restarts = 0
        """Watches started again after a failure."""
        self.error: str | None = None
        """The last failure, if there was one."""
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task | None = None
        self._watching = threading.Event()
        self._thread = threading.Thread(target=self._run, name="directory-follower", daemon=True)

    def start(self) -> DirectoryFollower:
        """Start watching; returns once the first watch is set up (or STOP_WAIT_S * 2 later)."""
        self._thread.start()
        self._watching.wait(STOP_WAIT_S * 2)
        return self

    def stop(self) -> None:
        """Stop watching and wait for the thread (a second call finds it stopped)."""
        if self._task is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: it has ended
                self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT_S)

    def _run(self) -> None:
        self._task = self._loop.create_task(self._follow())
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._watching.set()
            self._loop.close()

    async def _follow(self) -> None:
        while True:
            try:
                await self._watch()
            except Exception as error:  # whatever ends a watch, the peer goes on following
                self.error = str(error) or type(error).__name__
            self.restarts += 1
            await asyncio.sleep(RETRY_S)

    async def _watch(self) -> None:
        store = await DirectoryStore.open(self.servers)
        try:
            changes = store.watch()
            self._watching.set()
            async for directory in changes:
                self.client.offer(routes_of(directory))
        finally:
            await store.close()


def follow_cluster(
    servers: Sequence[str], key: KeyPair | None
) -> tuple[RoutedClient, DirectoryFollower]:
    """A client routed by the directory as it is now, and the follower keeping it so."""
    client = RoutedClient(routes_of(read_directory(servers)), key)
    return client, DirectoryFollower(servers, client).start()

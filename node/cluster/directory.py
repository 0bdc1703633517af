"""The market directory: which node serves which market, at which endpoints, with which server
key, and the directory's version, in one key of a NATS JetStream key-value bucket.

The whole directory is one value, so its version is that key's revision and every change, a
move included, is one compare-and-set on it: two operators moving markets at once cannot both
win, and a reader never sees half a change. Peers watch the key and follow each new version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

BUCKET = "marketnode"
KEY = "directory"
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 5.0
WATCH_QUIET_S = 2.0
Result = TypeVar("Result")


class DirectoryError(RuntimeError):
    """The directory cannot be read or changed as asked (one line for the operator)."""


class DirectoryConflict(DirectoryError):
    """The directory changed since it was read: the compare-and-set lost."""


class NodeEntry(msgspec.Struct, frozen=True):
    """A node of the cluster as peers reach it."""

    orders: str
    market_data: str
    admin: str
    server_key: str | None
    """The node's CURVE public key (z85), None with CURVE off."""


class MarketEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where a market is served; `moving_to` names the destination while a move is under way
    (the market is halted on `node` then), `move` that move's id."""

    node: str
    moving_to: str | None = None
    move: str | None = None


class Directory(msgspec.Struct, frozen=True):
    """The nodes of the cluster and the node serving each market, at one version."""

    nodes: dict[str, NodeEntry] = {}
    markets: dict[str, MarketEntry] = {}
    version: int = 0
    """The key's revision this content was read at (0: not stored yet); not stored itself."""


class _Stored(msgspec.Struct):
    nodes: dict[str, NodeEntry]
    markets: dict[str, MarketEntry]


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Stored).decode


def _content(value: bytes, version: int) -> Directory:
    stored = _decode(value)
    return Directory(stored.nodes, stored.markets, version)


async def _connection_trouble(error: Exception) -> None:
    """A server of the directory lost or refusing (the client reconnects to another): one line,
    not the client library's default logging of it with its traceback."""
    log.warning("directory: %s", str(error).splitlines()[0] if str(error) else type(error).__name__)


class DirectoryStore:
    """The directory in a JetStream bucket, over one connection to the given servers."""

    def __init__(self, connection: nats.NATS, kv) -> None:
        self.connection = connection
        self.kv = kv

    @classmethod
    async def open(
        cls, servers: Sequence[str], replicas: int = 1, timeout_s: float = REQUEST_TIMEOUT_S
    ) -> DirectoryStore:
        """Connect (to any of `servers`) and open the bucket, creating it with `replicas`
        copies when it does not exist yet; each JetStream request waits `timeout_s`."""
        try:
            connection = await nats.connect(
                servers=list(servers), connect_timeout=CONNECT_TIMEOUT_S, max_reconnect_attempts=3,
                allow_reconnect=True, error_cb=_connection_trouble,
            )  # fmt: skip
        except (OSError, nats.errors.Error) as error:
            raise DirectoryError(f"cannot reach the directory at {', '.join(servers)}: "
                                 f"{error or type(error).__name__}") from None  # fmt: skip
        js = connection.jetstream(timeout=timeout_s)
        try:
            try:
                kv = await js.key_value(BUCKET)
            except nats.js.errors.BucketNotFoundError:
                kv = await js.create_key_value(
                    KeyValueConfig(bucket=BUCKET, history=16, replicas=replicas)
                )
        except (TimeoutError, nats.errors.Error) as error:
            await connection.close()
            raise DirectoryError(f"the directory's bucket cannot be opened: {error}") from None
        return cls(connection, kv)

    async def close(self) -> None:
        await self.connection.close()

    async def replicas(self) -> tuple[str | None, list[str]]:
        """The server leading the bucket's stream and those holding its other replicas (a
        single server: its name and none)."""
        try:
            info = await self.connection.jetstream().stream_info(f"KV_{BUCKET}")
        except (TimeoutError, nats.errors.Error) as error:
            raise DirectoryError(f"the directory's replicas cannot be read: {error}") from None
        if info.cluster is None:
            return None, []
        return info.cluster.leader, [replica.name for replica in info.cluster.replicas or []]

    async def read(self) -> Directory:
        """The directory now (an empty one at version 0 if nothing is stored)."""
        try:
            entry = await self.kv.get(KEY)
        except nats.js.errors.KeyNotFoundError:
            return Directory()
        except (TimeoutError, nats.errors.Error) as error:
            raise DirectoryError(f"the directory cannot be read: {error}") from None
        return _content(entry.value, entry.revision)

    async def write(self, directory: Directory) -> Directory:
        """Store `directory` if the stored one is still at `directory.version` (0: none
        stored yet); the stored content with its new version. DirectoryConflict otherwise."""
        value = _encode(_Stored(directory.nodes, directory.markets))
        try:
            if directory.version == 0:
                version = await self.kv.create(KEY, value)
            else:
                version = await self.kv.update(KEY, value, last=directory.version)
        except nats.js.errors.KeyWrongLastSequenceError as error:
            raise DirectoryConflict(
                f"the directory changed since version {directory.version} was read ({error})"
            ) from None
        except (TimeoutError, nats.errors.Error) as error:
            raise DirectoryError(f"the directory cannot be written: {error}") from None
        return Directory(directory.nodes, directory.markets, version)

    async def watch(self, quiet_s: float = WATCH_QUIET_S) -> AsyncIterator[Directory]:
        """The directory now (if stored), then each new version as it is written. After
        `quiet_s` without news the key is read: a watch whose server went away (its consumer
        with it) would otherwise wait for ever; the read then fails (DirectoryError), or gives
        a version the watch missed."""
        try:
            watcher = await self.kv.watch(KEY)
        except (TimeoutError, nats.errors.Error) as error:
            raise DirectoryError(f"the directory cannot be watched: {error}") from None
        last = 0
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=quiet_s)
                except TimeoutError:
                    current = await self.read()
                else:
                    if not isinstance(entry, KeyValue.Entry):
                        continue  # the end of the history, or the watch stopped
                    if not entry.value:
                        continue
                    current = _content(entry.value, entry.revision)
                if current.version > last:
                    last = current.version
                    yield current
        finally:
            await watcher.stop()


def with_directory(
    servers: Sequence[str],
    work: Callable[[DirectoryStore], Awaitable[Result]],
    replicas: int = 1,
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> Result:
    """Run `work` on the directory over a connection of its own (for the CLI and tools,
    which are not asyncio programs)."""

    async def run() -> Result:
        store = await DirectoryStore.open(servers, replicas, timeout_s)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def read_directory(servers: Sequence[str]) -> Directory:
    return with_directory(servers, lambda store: store.read())


def write_directory(servers: Sequence[str], directory: Directory) -> Directory:
    return with_directory(servers, lambda store: store.write(directory))

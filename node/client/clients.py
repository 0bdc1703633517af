"""A Python client for a marketnode: orders as a peer, market data, and the admin socket.

    from marketnode.node.client.clients import Client, address_of_home
    with Client(address_of_home(home), key) as client:
        reply = client.submit([{"op": "new", "market": "PUNK-ETH", "id": "a1", "owner": "0xab",
                                "side": "buy", "price": "101.25", "qty": "3"}])

`Client` is blocking; `AsyncClient` is the same over asyncio. Replies are matched to requests by
`ref`; execution reports that arrive meanwhile wait in `reports`. The `mnode` CLI uses this
module, and docs/protocol.md describes the messages it exchanges.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from ..home.config import NodeConfig
from ..home.keys import SERVER, KeyPair, load_public_key
from ..home.layout import Home
from ..protocol.messages import (
    PROTOCOL_VERSION,
    AdminReply,
    ErrorReply,
    MarketData,
    OpenOrdersReply,
    Pong,
    Reply,
    Report,
    SnapshotReply,
    admin_reply_decoder,
    encoder,
    market_data_decoder,
    market_topic,
    node_reply_decoder,
)

DEFAULT_TIMEOUT_S = 10.0


class ClientError(RuntimeError):
    """The node did not answer (`unreachable`), or answered with an error."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class NodeAddress:
    """Where a node listens and the key it proves itself with (None: CURVE off)."""

    orders: str
    market_data: str
    admin: str
    server_key: bytes | None


def address_of_home(home: Home, config: NodeConfig | None = None) -> NodeAddress:
    """The running node's address from its home: the endpoints it actually bound (node.json)
    when it runs, else the configured ones."""
    config = config or home.config()
    runtime_file = home.runtime_path
    endpoints = {
        "orders": config.endpoints.orders,
        "market_data": config.endpoints.market_data,
        "admin": config.endpoints.admin,
    }
    if runtime_file.exists():
        with contextlib.suppress(OSError, ValueError, KeyError):
            bound = json.loads(runtime_file.read_text())["endpoints"]
            endpoints.update({name: bound[name] for name in endpoints if name in bound})
    elif any("*" in endpoint for endpoint in endpoints.values()):
        raise ClientError(
            f"no node is running on {home.path} (its endpoints are picked when it starts)",
            unreachable=True,
        )
    server_key = None
    if config.security.curve:
        server_key = load_public_key(home.keys_path(config) / f"{SERVER}.key")
    return NodeAddress(server_key=server_key, **endpoints)


WILDCARD_HOSTS = ("*", "0.0.0.0", "::", "[::]")


class RemoteAddress:
    """A node known by its admin endpoint alone (`mnode dashboard --connect`): the other
    endpoints come from its `status`, asked again at most every `ttl_s` seconds so that a
    restart on other ports is followed. A wildcard host in them (the node binds every
    interface) is replaced by the admin endpoint's host."""

    def __init__(
        self, admin: str, server_key: bytes | None, key: KeyPair | None, ttl_s: float = 10.0
    ) -> None:
        self.probe = NodeAddress(orders="", market_data="", admin=admin, server_key=server_key)
        self.key = key
        self.ttl_s = ttl_s
        self._known: tuple[float, NodeAddress] | None = None

    def __call__(self) -> NodeAddress:
        now = time.monotonic()
        if self._known is not None and now - self._known[0] < self.ttl_s:
            return self._known[1]
        with AdminClient(self.probe, self.key, timeout_s=2.0) as client:
            endpoints = client.call("status")["endpoints"]
        host = _host_of(self.probe.admin)
        address = NodeAddress(
            orders=_reachable(endpoints["orders"], host),
            market_data=_reachable(endpoints["market_data"], host),
            admin=self.probe.admin,
            server_key=self.probe.server_key,
        )
        self._known = (now, address)
        return address


def _host_of(endpoint: str) -> str | None:
    transport, _, rest = endpoint.partition("://")
    return rest.rsplit(":", 1)[0] if transport == "tcp" else None


def _reachable(endpoint: str, host: str | None) -> str:
    if host is not None and _host_of(endpoint) in WILDCARD_HOSTS:
        return f"tcp://{host}:{endpoint.rsplit(':', 1)[1]}"
    return endpoint


def _socket(
    context: zmq.Context,
    kind: int,
    endpoint: str,
    address: NodeAddress,
    key: KeyPair | None,
    **options: int,
) -> zmq.Socket:
    """A socket set up (options, then CURVE when the node uses it) and connected."""
    sock = context.socket(kind)
    sock.linger = 0
    for name, value in options.items():
        setattr(sock, name, value)
    if address.server_key is not None:
        if key is None:
            sock.close(linger=0)
            raise ClientError("this node uses CURVE: a key pair is needed to connect")
        sock.curve_serverkey = address.server_key
        sock.curve_publickey = key.public
        sock.curve_secretkey = key.secret
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as error:
        sock.close(linger=0)
        raise ClientError(f"cannot connect to {endpoint}: {error}", unreachable=True) from None
    return sock


def command_dict(command: Any) -> Any:
    """A command as msgpack will carry it (dicts pass through, structs become dicts)."""
    return command if isinstance(command, dict) else msgspec.to_builtins(command)


def encode_submit(commands: Iterable[Any], ref: int) -> bytes:
    """A `submit` message carrying `commands`, its reply to carry `ref`."""
    cmds = [command_dict(command) for command in commands]
    return encoder.encode({"v": PROTOCOL_VERSION, "type": "submit", "cmds": cmds, "ref": ref})


def _answers(message: Any, ref: int) -> bool:
    """Is `message` the reply to request `ref`? (An error to a message too broken to carry a
    ref answers the oldest request, since replies come in request order.)"""
    return message.ref == ref or (type(message) is ErrorReply and message.ref is None)


class Client:
    """A peer's order-entry connection (DEALER), blocking."""

    def __init__(
        self,
        address: NodeAddress,
        key: KeyPair | None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        context: zmq.Context | None = None,
    ) -> None:
        self.address = address
        self.timeout_ms = int(timeout_s * 1000)
        self.context = context or zmq.Context.instance()
        self.socket = _socket(
            self.context, zmq.DEALER, address.orders, address, key, rcvhwm=0, sndhwm=0
        )
        self.reports: deque[Report] = deque()
        self._refs = itertools.count(1)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.socket.close(linger=0)

    # -- requests -----------------------------------------------------------------------------

    def send_submit(self, commands: list[Any]) -> int:
        """Send commands without waiting; returns the `ref` their reply will carry."""
        ref = next(self._refs)
        self.socket.send(encode_submit(commands, ref))
        return ref

    def submit(self, commands: list[Any]) -> Reply:
        """Send commands and wait for their reply (one answer per command, in order)."""
        return self._expect(self._wait(self.send_submit(commands)), Reply)

    def snapshot(self, market: str) -> SnapshotReply:
        return self._expect(self._call({"type": "snapshot", "market": market}), SnapshotReply)

    def open_orders(self, owner: str | None = None) -> OpenOrdersReply:
        return self._expect(self._call({"type": "open_orders", "owner": owner}), OpenOrdersReply)

    def ping(self) -> Pong:
        return self._expect(self._call({"type": "ping"}), Pong)

    def receive(self, timeout_ms: int | None = None) -> Any:
        """The next message from the node (a reply or a report), or None on time-out."""
        wait = self.timeout_ms if timeout_ms is None else timeout_ms
        if not self.socket.poll(wait):
            return None
        return node_reply_decoder.decode(self.socket.recv())

    def next_report(self, timeout_ms: int = 0) -> Report | None:
        """An execution report: one already received, else the next to arrive in time."""
        while not self.reports:
            message = self.receive(timeout_ms)
            if message is None:
                return None
            if type(message) is Report:
                self.reports.append(message)
        return self.reports.popleft()

    def _call(self, body: dict[str, Any]) -> Any:
        ref = next(self._refs)
        self.socket.send(encoder.encode({"v": PROTOCOL_VERSION, **body, "ref": ref}))
        return self._wait(ref)

    def _wait(self, ref: int) -> Any:
        while True:
            message = self.receive()
            if message is None:
                raise ClientError(
                    f"no answer from the node at {self.address.orders} within "
                    f"{self.timeout_ms / 1000:g} s (is it running, and is this key registered?)",
                    unreachable=True,
                )
            if type(message) is Report:
                self.reports.append(message)
            elif _answers(message, ref):
                return message

    @staticmethod
    def _expect(message: Any, kind: type) -> Any:
        if type(message) is ErrorReply:
            raise ClientError(f"{message.reason}: {message.detail}")
        if type(message) is not kind:
            raise ClientError(f"unexpected {type(message).__name__} from the node")
        return message


class AsyncClient:
    """A peer's order-entry connection over asyncio (zmq.asyncio)."""

    def __init__(
        self, address: NodeAddress, key: KeyPair | None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.address = address
        self.timeout_ms = int(timeout_s * 1000)
        self.context = zmq.asyncio.Context.instance()
        self.socket = _socket(self.context, zmq.DEALER, address.orders, address, key)
        self.reports: deque[Report] = deque()
        self._refs = itertools.count(1)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.socket.close(linger=0)

    async def submit(self, commands: list[Any]) -> Reply:
        ref = next(self._refs)
        await self.socket.send(encode_submit(commands, ref))
        return Client._expect(await self._wait(ref), Reply)

    async def snapshot(self, market: str) -> SnapshotReply:
        ref = next(self._refs)
        request = {"v": PROTOCOL_VERSION, "type": "snapshot", "market": market, "ref": ref}
        await self.socket.send(encoder.encode(request))
        return Client._expect(await self._wait(ref), SnapshotReply)

    async def receive(self) -> Any:
        if not await self.socket.poll(self.timeout_ms):
            return None
        return node_reply_decoder.decode(await self.socket.recv())

    async def _wait(self, ref: int) -> Any:
        while True:
            message = await self.receive()
            if message is None:
                raise ClientError(
                    f"no answer from the node at {self.address.orders}", unreachable=True
                )
            if type(message) is Report:
                self.reports.append(message)
            elif _answers(message, ref):
                return message


class AdminClient:
    """The operator's connection to the admin socket."""

    def __init__(
        self, address: NodeAddress, key: KeyPair | None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.address = address
        self.timeout_ms = int(timeout_s * 1000)
        self.socket = _socket(zmq.Context.instance(), zmq.DEALER, address.admin, address, key)
        self._refs = itertools.count(1)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.socket.close(linger=0)

    def call(self, cmd: str, **arguments: Any) -> Any:
        """Run an admin command; its result, or ClientError with the node's reason."""
        ref = next(self._refs)
        self.socket.send(
            encoder.encode(
                {"v": PROTOCOL_VERSION, "type": "admin", "cmd": cmd, "ref": ref, **arguments}
            )
        )
        while True:
            if not self.socket.poll(self.timeout_ms):
                raise ClientError(
                    f"no answer from the node's admin socket at {self.address.admin} within "
                    f"{self.timeout_ms / 1000:g} s (is the node running?)",
                    unreachable=True,
                )
            reply: AdminReply = admin_reply_decoder.decode(self.socket.recv())
            if reply.ref == ref:
                break
        if not reply.ok:
            raise ClientError(reply.error or "refused")
        return reply.result


class Subscriber:
    """Market data for some markets, with gap detection: `gaps` counts missed messages."""

    def __init__(
        self,
        address: NodeAddress,
        key: KeyPair | None,
        markets: list[str],
        context: zmq.Context | None = None,
    ) -> None:
        self.socket = _socket(
            context or zmq.Context.instance(), zmq.SUB, address.market_data, address, key
        )
        for market in markets:
            self.socket.subscribe(market_topic(market))
        self.last_seq: dict[str, int] = {}
        self.runs: dict[str, int] = {}
        self.gaps = 0

    def close(self) -> None:
        self.socket.close(linger=0)

    def receive(self, timeout_ms: int) -> MarketData | None:
        """The next message, or None on time-out. A jump in a topic's `seq` counts as a gap."""
        if not self.socket.poll(timeout_ms):
            return None
        _topic, payload = self.socket.recv_multipart()
        message = market_data_decoder.decode(payload)
        last = self.last_seq.get(message.market)
        if self.runs.get(message.market, message.run) != message.run:
            self.gaps += 1  # the node restarted: what happened meanwhile is unknown
        elif last is not None and message.seq != last + 1:
            self.gaps += max(1, message.seq - last - 1)
        self.last_seq[message.market] = message.seq
        self.runs[message.market] = message.run
        return message

    def resynchronised(self, snapshot: SnapshotReply) -> None:
        """Continue from a snapshot: messages up to its seq are already in it."""
        self.last_seq[snapshot.market] = snapshot.seq
        self.runs[snapshot.market] = snapshot.run

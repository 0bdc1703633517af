"""A peer's blocking client of the order socket (docs/protocol.md §4-§9).

    from marketnode.node.client.peer import Client
    from marketnode.node.client.address import address_of_home
    with Client(address_of_home(home), key) as client:
        reply = client.submit([{"op": "new", "market": "PUNK-ETH", "id": "a1", "owner": "0xab",
                                "side": "buy", "price": "101.25", "qty": "3"}])

Replies are matched to requests by `ref`; execution reports that arrive meanwhile wait in
`reports`.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec
import zmq

from ..home.keys import KeyPair
from ..protocol.messages import (
    PROTOCOL_VERSION,
    ErrorReply,
    MarketsReply,
    OpenOrdersReply,
    Pong,
    Reply,
    Report,
    SnapshotReply,
    WhoamiReply,
    encoder,
    node_reply_decoder,
)
from .address import DEFAULT_TIMEOUT_S, ClientError, NodeAddress, connect_socket, send_within

Answer = TypeVar("Answer")


def command_dict(command: Any) -> Any:
    """A command as msgpack will carry it (dicts pass through, structs become dicts)."""
    return command if isinstance(command, dict) else msgspec.to_builtins(command)


def encode_submit(commands: Iterable[Any], ref: int) -> bytes:
    """A `submit` message carrying `commands`, its reply to carry `ref`."""
    cmds = [command_dict(command) for command in commands]
    return encoder.encode({"v": PROTOCOL_VERSION, "type": "submit", "cmds": cmds, "ref": ref})


def encode_request(body: dict[str, Any], ref: int) -> bytes:
    """Any other request (`{"type": ..., ...}`), its answer to carry `ref`."""
    return encoder.encode({"v": PROTOCOL_VERSION, **body, "ref": ref})


def answers(message: Any, ref: int) -> bool:
    """Is `message` the answer to request `ref`? (An error to a message too broken to carry a
    ref answers the oldest request, since answers come in request order.)"""
    return message.ref == ref or (type(message) is ErrorReply and message.ref is None)


def expect(message: Any, kind: type[Answer]) -> Answer:
    """The answer as the kind asked for; ClientError for an `error` or anything else."""
    if type(message) is ErrorReply:
        raise ClientError(f"{message.reason}: {message.detail}")
    if type(message) is not kind:
        raise ClientError(f"unexpected {type(message).__name__} from the node")
    return message


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
        self.socket = connect_socket(
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
        send_within(self.socket, encode_submit(commands, ref), self.timeout_ms, self.address.orders)
        return ref

    def submit(self, commands: list[Any]) -> Reply:
        """Send commands and wait for their reply (one answer per command, in order)."""
        return expect(self._wait(self.send_submit(commands)), Reply)

    def snapshot(self, market: str) -> SnapshotReply:
        return expect(self._call({"type": "snapshot", "market": market}), SnapshotReply)

    def open_orders(self, owner: str | None = None) -> OpenOrdersReply:
        return expect(self._call({"type": "open_orders", "owner": owner}), OpenOrdersReply)

    def ping(self) -> Pong:
        return expect(self._call({"type": "ping"}), Pong)

    def markets(self) -> MarketsReply:
        """Every market's rules, and the limits that apply to this peer."""
        return expect(self._call({"type": "markets"}), MarketsReply)

    def whoami(self) -> WhoamiReply:
        """The peer the node takes this connection for, and what it may do."""
        return expect(self._call({"type": "whoami"}), WhoamiReply)

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
        send_within(self.socket, encode_request(body, ref), self.timeout_ms, self.address.orders)
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
            elif answers(message, ref):
                return message

"""A peer's client of the order socket over asyncio (zmq.asyncio): the requests of
`peer.Client`, awaited."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import zmq
import zmq.asyncio

from ..home.keys import KeyPair
from ..protocol.messages import (
    MarketsReply,
    OpenOrdersReply,
    Pong,
    Reply,
    Report,
    SnapshotReply,
    WhoamiReply,
    node_reply_decoder,
)
from .address import DEFAULT_TIMEOUT_S, ClientError, NodeAddress, connect_socket
from .peer import answers, encode_request, encode_submit, expect


class AsyncClient:
    """A peer's order-entry connection over asyncio."""

    def __init__(
        self, address: NodeAddress, key: KeyPair | None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.address = address
        self.timeout_ms = int(timeout_s * 1000)
        self.context = zmq.asyncio.Context.instance()
        self.socket = connect_socket(self.context, zmq.DEALER, address.orders, address, key)
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
        return expect(await self._wait(ref), Reply)

    async def snapshot(self, market: str) -> SnapshotReply:
        return expect(await self._call({"type": "snapshot", "market": market}), SnapshotReply)

    async def open_orders(self, owner: str | None = None) -> OpenOrdersReply:
        return expect(await self._call({"type": "open_orders", "owner": owner}), OpenOrdersReply)

    async def ping(self) -> Pong:
        return expect(await self._call({"type": "ping"}), Pong)

    async def markets(self) -> MarketsReply:
        """Every market's rules, and the limits that apply to this peer."""
        return expect(await self._call({"type": "markets"}), MarketsReply)

    async def whoami(self) -> WhoamiReply:
        """The peer the node takes this connection for, and what it may do."""
        return expect(await self._call({"type": "whoami"}), WhoamiReply)

    async def receive(self) -> Any:
        if not await self.socket.poll(self.timeout_ms):
            return None
        return node_reply_decoder.decode(await self.socket.recv())

    async def _call(self, body: dict[str, Any]) -> Any:
        ref = next(self._refs)
        await self.socket.send(encode_request(body, ref))
        return await self._wait(ref)

    async def _wait(self, ref: int) -> Any:
        while True:
            message = await self.receive()
            if message is None:
                raise ClientError(
                    f"no answer from the node at {self.address.orders}", unreachable=True
                )
            if type(message) is Report:
                self.reports.append(message)
            elif answers(message, ref):
                return message

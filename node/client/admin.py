"""The operator's client of the admin socket (docs/protocol.md §13)."""

from __future__ import annotations

import itertools
from typing import Any

import zmq

from ..home.keys import KeyPair
from ..protocol.messages import PROTOCOL_VERSION, AdminReply, admin_reply_decoder, encoder
from .address import DEFAULT_TIMEOUT_S, ClientError, NodeAddress, connect_socket, send_within


class AdminClient:
    """The operator's connection to the admin socket."""

    def __init__(
        self, address: NodeAddress, key: KeyPair | None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.address = address
        self.timeout_ms = int(timeout_s * 1000)
        self.socket = connect_socket(
            zmq.Context.instance(), zmq.DEALER, address.admin, address, key
        )
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
        request = {"v": PROTOCOL_VERSION, "type": "admin", "cmd": cmd, "ref": ref, **arguments}
        send_within(self.socket, encoder.encode(request), self.timeout_ms, self.address.admin)
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

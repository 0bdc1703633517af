"""Where a node is and how to reach it: its address (from its home's runtime file, or the
configured endpoints), and a socket connected to one of its endpoints with CURVE set up when the
node uses it. Shared by every client of this package.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import zmq

from ..home.config import NodeConfig
from ..home.keys import SERVER, KeyPair, load_public_key
from ..home.layout import Home

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


def connect_socket(
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


def send_within(sock: zmq.Socket, payload: bytes, timeout_ms: int, endpoint: str) -> None:
    """Send `payload`, or ClientError (unreachable) after `timeout_ms`. A DEALER whose only
    connection the node refused (a revoked or unknown key: its handshake failed) has no pipe
    left to queue on, and a plain send waits for one for ever."""
    try:
        if sock.poll(timeout_ms, zmq.POLLOUT):
            sock.send(payload, zmq.NOBLOCK)
            return
    except zmq.Again:  # the connection went between the poll and the send
        pass
    raise ClientError(
        f"cannot send to the node at {endpoint} within {timeout_ms / 1000:g} s (is it running, "
        "and is this key registered?)",
        unreachable=True,
    )

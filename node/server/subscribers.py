"""Who is behind each market-data connection, so that revoking a peer can drop its
subscriptions too.

The market-data socket is an XPUB in verbose mode: libzmq hands the node every subscription
message, and each carries its connection's CURVE key (`User-Id`) and descriptor
(`ZMQ_SRCFD`). The node books key -> descriptors (with the socket's inode, since numbers are
reused) and otherwise ignores them: libzmq does the topic filtering. Subscriptions are read a
slice at a time between batches, like disconnections, so a peer subscribing in a loop costs
the matching thread a bounded slice, and libzmq's queue of them never grows.
"""

from __future__ import annotations

from collections import defaultdict

import zmq

from .descriptors import shut_down, socket_inode

_NOBLOCK = int(zmq.NOBLOCK)
SLICE = 200
"""Subscription messages booked per call."""


class Subscribers:
    """The market-data connections of each CURVE key (kept by the matching thread)."""

    def __init__(self, market_data: zmq.Socket) -> None:
        self.socket = market_data
        self.by_key: defaultdict[str, dict[int, int]] = defaultdict(dict)
        """CURVE key (Z85) -> {descriptor: socket inode} of its market-data connections."""

    def drain(self) -> None:
        """Book up to SLICE waiting subscription messages."""
        recv = self.socket.recv
        for _ in range(SLICE):
            try:
                frame = recv(_NOBLOCK, copy=False)
            except zmq.Again:
                return
            if frame.bytes[:1] != b"\x01":
                continue  # an unsubscription: libzmq makes those itself when a peer goes
            try:
                key = frame.get("User-Id")
            except zmq.ZMQError:
                continue  # a message with no connection behind it
            if not key:
                continue  # CURVE off: nobody to revoke
            fd = frame.get(zmq.SRCFD)
            inode = socket_inode(fd)
            if inode is not None:
                self.by_key[key][fd] = inode

    def drop(self, key: str) -> int:
        """Shut down every market-data connection of `key` still open; how many."""
        return sum(shut_down(fd, inode) for fd, inode in self.by_key.pop(key, {}).items())

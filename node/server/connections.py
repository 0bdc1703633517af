"""Who is on the order socket: the peer behind each message (by its CURVE key), the connection
each peer's execution reports go to, and which connections belong to which peer (for
cancel-on-disconnect).

A peer is a registered name, not a connection: its reports go to the connection it sent on
last. With CURVE off, each connection is an anonymous peer `anon-<routing id in hex>`.
"""

from __future__ import annotations

from collections import Counter

import zmq

from ..home.peers import AllowlistFile, Peer
from .descriptors import socket_inode

UNREGISTERED = Peer(name="", public_key="", owners=(), disabled=False)
"""A key that got in but is no longer registered (revoked while connected): acts for no one."""


class Connections:
    """The order socket's peers and connections, kept by the matching thread."""

    def __init__(self, allowlist: AllowlistFile, curve: bool) -> None:
        self.allowlist = allowlist
        self.curve = curve
        self.identity_of: dict[str, bytes] = {}
        """Peer name -> routing identity of the connection it sent on last (reports go there)."""
        self.known: set[bytes] = set()
        """Routing identities of registered peers already mapped to their connection."""
        self.by_fd: dict[int, tuple[str, bytes]] = {}
        """Connections (file descriptors) of registered peers, for cancel-on-disconnect."""
        self.inodes: dict[int, int | None] = {}
        """Each of `by_fd`'s descriptors' socket inode when registered, so that revoking a peer
        shuts down its connection and not one that took the descriptor over since."""
        self.open_count: Counter[str] = Counter()
        """Peer name -> how many of `by_fd`'s connections are its (a storm of disconnections
        must not scan every connection for each one)."""
        self.stale: Counter[int] = Counter()
        """Descriptors whose next disconnection event is about a connection already forgotten
        (its descriptor was reused before the event was read)."""
        self.leaving: list[str] = []
        """Peers to cancel the orders of, found gone outside `disconnected` (see `register`)."""

    def peer_of(self, frame: zmq.Frame) -> Peer | None:
        """The registered peer behind a message, by its CURVE key (None: CURVE is off); a key
        no longer registered (revoked while connected) acts for no one."""
        if not self.curve:
            return None
        return self.allowlist.current.by_key.get(frame.get("User-Id"), UNREGISTERED)

    def register(self, name: str, identity: bytes, fd: int) -> None:
        """A registered peer's first message on a connection. A descriptor still booked for
        another connection means that one is gone, its event not yet read: it is forgotten now
        (its peer's orders cancelled after the batch, if due) and its event skipped later."""
        if fd in self.by_fd:
            gone = self._forget(fd)
            self.stale[fd] += 1
            if gone[1]:
                self.leaving.append(gone[0])
        self.known.add(identity)
        self.by_fd[fd] = (name, identity)
        self.inodes[fd] = socket_inode(fd)
        self.open_count[name] += 1

    def disconnected(self, fd: int) -> tuple[str, bool] | None:
        """Forget a closed connection of a registered peer: the peer's name, and whether its
        orders are to be cancelled (it was its last connection, and the peer is registered with
        cancel-on-disconnect). None for a connection that never sent as a registered peer."""
        if self.stale[fd]:
            self.stale[fd] -= 1
            if not self.stale[fd]:
                del self.stale[fd]
            return None
        self.stale.pop(fd, None)
        if fd not in self.by_fd:
            return None
        return self._forget(fd)

    def _forget(self, fd: int) -> tuple[str, bool]:
        name, identity = self.by_fd.pop(fd)
        self.inodes.pop(fd, None)
        self.known.discard(identity)
        self.open_count[name] -= 1
        still_connected = self.open_count[name] > 0
        if not still_connected:
            del self.open_count[name]
        peer = self.allowlist.current.named(name)
        cancel = peer is not None and peer.cancel_on_disconnect and not still_connected
        return name, cancel

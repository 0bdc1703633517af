"""A bound on what one connection makes the node hold in a message that does not end.

libzmq bounds a frame (`max_message_bytes`) and the complete messages queued per connection
(`receive_queue_messages`), but not the frames of one message: it holds a multipart message
whole, in its own memory, until the last frame arrives, and no option bounds the frame count.
So a peer streaming frames with the "more" flag set could make the node hold any amount.

This watcher bounds it from outside libzmq, off the matching thread. Every `TICK_S` it reads,
for each TCP connection of the order socket, how many bytes libzmq has taken from the kernel
(TCP_INFO's bytes received less what still waits in the kernel's queue), and compares that with
what the node has read from the connection (the loop counts the bytes of every message by its
routing identity; `ZMQ_SRCFD` ties an identity to its descriptor). Bytes libzmq took that the
node has not read are queued complete messages or a message still arriving. The node drains
the socket (a read that finds nothing, or a poll with nothing ready) many times a second; after
a drain every complete message has been read, so a connection still holding more than one
frame's worth of unread bytes across two drains, while the node read nothing from it, holds a
message of many frames: it is shut down (libzmq drops the partial message and the connection,
and the peer may reconnect). A connection past (receive_queue_messages + 1) frames' worth on two
ticks is shut down without waiting for drains: no honest connection can hold that much.

The allowance covers what is not a message: the handshake, and ZMTP heartbeats at
`CONTROL_BYTES_PER_S`. Shutting down a descriptor is checked twice against reuse: the socket's
inode must be the one watched, and its local address the order socket's.

TCP only: an ipc endpoint has no byte counter, and only local users with the file's
permissions reach it.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
import termios
import time
from collections import deque
from dataclasses import dataclass, field

import zmq

from .descriptors import shut_down, socket_inode, tcp_address, with_socket
from .lograte import RateLimitedLog
from .ticking import TickingThread

TICK_S = 0.02
"""How often the connections are read: at the ~100-300 MB/s one connection delivers through
CURVE on loopback, what a tick lets through is a few MB."""
COST_PER_CONNECTION_S = 300e-6
"""Ticks stretch to this per connection: reading one costs ~7 us of CPU (three system calls and
Python around them, holding the interpreter's lock the matching thread needs), so however many
connections are open the watch takes under 3% of a core (a storm of 1,000 connections: a tick
every 300 ms, a message that does not end cut off within a second)."""
MESSAGE_OVERHEAD = 64
"""Bytes counted per frame read on top of its body: its ZMTP and CURVE framing (flags, size,
command name, nonce and MAC are under 50 bytes), so the count never falls short of the wire."""
SLACK_BYTES = 64 << 10
"""Allowance for the handshake and other bytes that never become a message."""
CONTROL_BYTES_PER_S = 256
"""Allowance per second since the node last read from the connection, for ZMTP heartbeats
(a PING or PONG is ~60 bytes with CURVE): covers a peer heartbeating four times a second."""
_TCP_INFO_BYTES_RECEIVED = 128
"""Offset of `tcpi_bytes_received` (u64) in Linux's struct tcp_info (since Linux 4.1)."""

WILDCARD_HOSTS = {"0.0.0.0", "::", "*"}

log = logging.getLogger("marketnode.node")


@dataclass(slots=True)
class _Connection:
    """What the watcher knows of one descriptor of the order socket."""

    inode: int = 0
    """The socket's inode when first read (0: not read yet); another inode is another
    connection on a reused descriptor."""
    foreign: bool = False
    """Not a TCP connection of the order socket (an ipc one, or a reused descriptor)."""
    identities: set[bytes] = field(default_factory=set)
    read: dict[bytes, int] = field(default_factory=dict)
    """Per identity, the most bytes the node was seen to have read (never decreasing)."""
    node_read: int = 0
    base_unread: int = 0
    """Unread bytes (libzmq's minus the node's) when the node last read from it."""
    base_time: float = 0.0
    suspect_drains: int | None = None
    """The loop's drain count when more than a frame's worth was first seen unread."""


class IntakeWatch:
    """The watcher thread and the counters the matching thread feeds it.

    The matching thread only appends to deques, bumps `drains` and adds to `bytes_read` (one
    dictionary operation per message); the watcher thread reads them and never iterates a
    structure the matching thread changes.
    """

    def __init__(self, orders: str, max_message_bytes: int, receive_queue_messages: int) -> None:
        self.local_address = tcp_address(orders)
        self.frame_bound = max_message_bytes + SLACK_BYTES
        self.hard_bound = (receive_queue_messages + 1) * max_message_bytes + SLACK_BYTES
        self.bytes_read: dict[bytes, int] = {}
        """Routing identity -> bytes the node has read from it (written by the loop)."""
        self.drains = 0
        """Times the loop found no complete message waiting (written by the loop)."""
        self.dropped = 0
        """Connections shut down for holding a message that does not end."""
        self._accepted: deque[int] = deque()
        self._identified: deque[tuple[int, bytes]] = deque()
        self._connections: dict[int, _Connection] = {}
        self._suspects = 0
        """Connections over a frame's worth unread at the last tick."""
        self._queued = 0
        self.queued_bytes = 0
        """Bytes received on the order socket's connections and not yet read by the node (in
        libzmq's queues and the kernel's), at the last tick."""
        self.total_read = 0
        """Bytes the node has read in all (written by the loop)."""
        self._retired: deque[tuple[float, set[bytes]]] = deque()
        self._lines = RateLimitedLog(log, logging.WARNING)
        self._ticker = TickingThread("intake-watch", self.tick, self._next_tick_s)

    # -- called by the matching thread --------------------------------------------------------

    def accepted(self, fd: int) -> None:
        """The order socket accepted a connection on descriptor `fd`."""
        self._accepted.append(fd)

    def note_read(self, identity: bytes, body: zmq.Frame, size: int) -> None:
        """The node read a message of `size` bytes from routing identity `identity`; the
        first one of an identity ties it to its descriptor (`ZMQ_SRCFD`)."""
        bytes_read = self.bytes_read
        so_far = bytes_read.get(identity)
        if so_far is None:
            self._identified.append((body.get(zmq.SRCFD), identity))
            so_far = 0
        bytes_read[identity] = so_far + size
        self.total_read += size

    def waiting_commands(self, commands_read: int) -> int | None:
        """About how many commands wait to be read: the bytes queued, at the mean size of what
        the node has read (`commands_read` commands so far); None before anything was read or
        with no TCP connections to read (the scaling policies then go by what was served)."""
        if not self._ticker.running or not self.total_read or not commands_read:
            return None
        return round(self.queued_bytes * commands_read / self.total_read)

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.local_address is None:
            return  # not TCP: nothing to read (see the module's docstring)
        self._ticker.start()

    def close(self) -> None:
        self._ticker.close()

    def _next_tick_s(self) -> float:
        """TICK_S, stretched for many connections; a fifth of it while one is suspected (only
        its drains are awaited, and each tick lets more of its message in)."""
        if self._suspects:
            return TICK_S / 5
        return max(TICK_S, len(self._connections) * COST_PER_CONNECTION_S)

    def tick(self) -> None:
        """One look at every connection: events up to now, then each connection, then the
        events' identities (in that order, so an identity never lands on the connection that
        held its descriptor before)."""
        identified = len(self._identified)
        now = time.monotonic()
        drains = self.drains  # drains before this tick's reads: those that may judge
        for fd in [self._accepted.popleft() for _ in range(len(self._accepted))]:
            self._connections.setdefault(fd, _Connection())
        self._suspects = 0
        self._queued = 0
        newly_suspected = []
        for fd, connection in list(self._connections.items()):
            if self._look_at(fd, connection, now, drains):
                newly_suspected.append(connection)
        # a drain counts against a suspect only if it began after the suspect's bytes were
        # read: so the count it must pass by two is the one read after them
        for connection in newly_suspected:
            connection.suspect_drains = self.drains
        self.queued_bytes = self._queued
        for _ in range(identified):
            fd, identity = self._identified.popleft()
            connection = self._connections.setdefault(fd, _Connection())
            connection.identities.add(identity)
        self._forget_retired(now)
        self._lines.flush()

    def _look_at(self, fd: int, connection: _Connection, now: float, drains: int) -> bool:
        """Read one connection; True when it is first seen over a frame's worth unread."""
        inode = socket_inode(fd)
        if inode is None:
            self._retire(fd, now)
            return False
        if inode != connection.inode:
            if connection.inode:
                self._retire(fd, now)
                connection = self._connections[fd] = _Connection()
            connection.inode = inode
            connection.foreign = not self._is_order_socket(fd)
            connection.base_time = now
            return False
        if connection.foreign:
            return False
        counts = _bytes_taken(fd)
        if counts is None:
            return False
        taken, in_kernel = counts
        node_read = self._node_read(connection)
        unread = taken - node_read
        self._queued += max(0, unread) + in_kernel
        if node_read != connection.node_read:
            connection.node_read = node_read
            connection.base_unread = unread
            connection.base_time = now
            connection.suspect_drains = None
            return False
        allowance = CONTROL_BYTES_PER_S * (now - connection.base_time)
        growth = unread - connection.base_unread - allowance
        if growth <= self.frame_bound:
            return False
        self._suspects += 1
        # first seen over: wait a tick at least, so that the identities of the messages the
        # node read meanwhile are applied (end of `tick`) before the connection is judged
        if connection.suspect_drains is None:
            return True
        if growth > self.hard_bound or drains >= connection.suspect_drains + 2:
            self._shut_down(fd, connection, growth)
        return False

    def _node_read(self, connection: _Connection) -> int:
        """What the node has read from the connection's identities (a counter the loop
        removed reads as its last value: the sum never goes down)."""
        read = connection.read
        for identity in connection.identities:
            count = self.bytes_read.get(identity, 0)
            if count > read.get(identity, 0):
                read[identity] = count
        return sum(read.values())

    def _shut_down(self, fd: int, connection: _Connection, unread: float) -> None:
        if not self._is_order_socket(fd):
            return
        peer = _peer_address(fd)
        self.dropped += 1  # before the peer can see it: whoever sees the drop sees the count
        if not shut_down(fd, connection.inode):
            self.dropped -= 1
            return
        connection.foreign = True  # shut: nothing more to read until its descriptor is reused
        self._lines.note(
            f"connection from {peer} shut down: {unread / 2**20:.1f} MiB received in a message "
            f"that does not end (frames past max_message_bytes; docs/security.md)"
        )

    def _is_order_socket(self, fd: int) -> bool:
        """Whether `fd` is a connection to the order socket's address (a bound wildcard host
        matches any local one)."""
        local = _local_address(fd)
        if local is None or self.local_address is None:
            return False
        host, port = self.local_address
        return local[1] == port and (host in WILDCARD_HOSTS or local[0] == host)

    def _retire(self, fd: int, now: float) -> None:
        """The connection on `fd` is gone: its identities' counters go a while later (a
        message of it may still be read)."""
        connection = self._connections.pop(fd, None)
        if connection is not None and connection.identities:
            self._retired.append((now + 10.0, connection.identities))

    def _forget_retired(self, now: float) -> None:
        while self._retired and self._retired[0][0] <= now:
            for identity in self._retired.popleft()[1]:
                self.bytes_read.pop(identity, None)


def _local_address(fd: int) -> tuple[str, int] | None:
    address = with_socket(fd, lambda sock: sock.getsockname())
    return (address[0], address[1]) if isinstance(address, tuple) else None


def _peer_address(fd: int) -> str:
    address = with_socket(fd, lambda sock: sock.getpeername())
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "?"


def _bytes_taken(fd: int) -> tuple[int, int] | None:
    """Bytes the kernel received on the connection less those still in its queue (what
    libzmq has read), and those still in the kernel's queue."""

    def read(sock: socket.socket) -> tuple[int, int]:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        waiting = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]
        return struct.unpack_from("Q", info, _TCP_INFO_BYTES_RECEIVED)[0] - waiting, waiting

    taken = with_socket(fd, read)
    return taken if isinstance(taken, tuple) else None

"""New TCP connections to the order socket admitted at a bounded rate, before libzmq sees them.

Why: every connection costs the node its CURVE handshake before ZAP can refuse an unknown key
or the node can count a known one: measured at about 1.6 ms of CPU per connection over all the
node's threads, most of it in libzmq's I/O threads (the key exchange, and libsodium's guarded
allocations of the handshake's secrets: mmap, mprotect, mlock and munmap for each, each a TLB
flush on every core the node runs on). A thousand connections in a second and a half made the
node spend most of a core on them, and honest peers' answers waited behind that work in the
same I/O threads and on the same cores (bench/hostile.py's `connection_storm`). libzmq has no
option to pace its accepts, and everything it accepts it handshakes.

How: a classic BPF filter on the listening socket (SO_ATTACH_FILTER; a kernel may refuse it
to a process without privileges, and then this is off) drops a fraction of bare SYNs, picked
at random by the kernel; a dropped client's kernel sends its SYN again a second later (then
3 s, 7 s, …), so an attack is stretched out, not refused, and an honest peer caught in it
connects a little later. Packets of established connections never
match (a bare SYN opens a connection), so nothing already connected is slowed; connections
accepted while the filter is on inherit it and are unaffected for the same reason. The fraction
is set every TICK_S from the accepts the order socket's monitor reported: the attempts they
stand for (accepted / (1 - fraction dropped)) over the last WINDOW_S against
`[limits] accept_rate_per_s`. At most MAX_DROP is dropped, so a peer always has a chance.

Linux only, TCP only (an ipc endpoint is reached by local users alone); elsewhere, when the
listening descriptor cannot be found or the kernel refuses the filter, it is off and `status`
says why.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import socket
import struct
from collections import deque

from .descriptors import socket_inode, tcp_address, with_socket
from .lograte import RateLimitedLog
from .ticking import TickingThread

TICK_S = 0.1
WINDOW_S = 0.5
"""Attempts are counted over this long: short enough to react within a storm's first second,
long enough that one tick's burst does not swing the fraction."""
STEPS = 16
"""The fraction dropped moves in sixteenths (a new filter only when the step changes)."""
MAX_DROP = 15 / 16
SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
_SKF_AD_RANDOM = (-0x1000 + 56) & 0xFFFFFFFF
"""BPF ancillary load: a random 32-bit number per packet."""

log = logging.getLogger("marketnode.node")


def syn_filter(drop: float) -> list[tuple[int, int, int, int]]:
    """The BPF program (code, jt, jf, k) dropping the fraction `drop` of bare SYNs. A TCP
    socket's filter sees the TCP header at offset 0; byte 13 is its flags."""
    threshold = min(0xFFFFFFFF, int(drop * 0x1_0000_0000))
    accept, reject = 0xFFFFFFFF, 0
    return [
        (0x30, 0, 0, 13),  # ldb [13]: the flags
        (0x54, 0, 0, 0x12),  # and #(SYN|ACK)
        (0x15, 0, 4, 0x02),  # jeq #SYN: a bare SYN goes on, anything else to the last accept
        (0x20, 0, 0, _SKF_AD_RANDOM),  # ld random
        (0x35, 0, 1, threshold),  # jge #threshold: accept, else drop
        (0x06, 0, 0, accept),
        (0x06, 0, 0, reject),
        (0x06, 0, 0, accept),
    ]


def set_drop(fd: int, drop: float) -> bool:
    """Attach the filter dropping `drop` of new connections to listening socket `fd` (detach
    it for 0); whether the kernel took it."""

    def apply(sock: socket.socket) -> bool:
        if drop <= 0:
            with contextlib.suppress(OSError):  # none attached
                sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
            return True
        _attach(sock, drop)
        return True

    return with_socket(fd, apply) is True


def _attach(sock: socket.socket, drop: float) -> None:
    program = syn_filter(drop)
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in program))
    # struct sock_fprog {unsigned short len; struct sock_filter *filter;}: the kernel copies
    # the program during the call, so the buffer need not outlive it
    fprog = struct.pack("HL", len(program), ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def filter_refused() -> str | None:
    """Why this process may not filter a TCP socket's packets (the kernel's error), None if it
    may: tried on a socket of its own, never on one libzmq holds."""
    try:
        with socket.socket() as probe:
            _attach(probe, 0.5)
    except OSError as error:
        return error.strerror or str(error)
    return None


def listening_descriptor(port: int) -> int | None:
    """This process's listening TCP socket on `port` (the one libzmq bound), None if none."""

    def listens_on(sock: socket.socket) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        accepting = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        return bool(accepting) and sock.getsockname()[1] == port

    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in names:
        fd = int(name)
        if with_socket(fd, listens_on):
            return fd
    return None


def next_drop(attempts_per_s: float, rate_per_s: float) -> float:
    """The fraction of new connections to drop so that about `rate_per_s` of
    `attempts_per_s` get in, rounded up to a STEPS-th, at most MAX_DROP."""
    if rate_per_s <= 0 or attempts_per_s <= rate_per_s:
        return 0.0
    wanted = 1.0 - rate_per_s / attempts_per_s
    return min(MAX_DROP, math.ceil(wanted * STEPS) / STEPS)


class Admission:
    """The controller thread of the order socket's listener. The matching thread only adds to
    `accepted` (one integer per accepted connection, from the monitor it already reads)."""

    def __init__(self, endpoint: str, rate_per_s: int) -> None:
        self.rate_per_s = rate_per_s
        self.accepted = 0
        """Connections the order socket accepted (written by the matching thread)."""
        self.drop = 0.0
        """The fraction of new connections being dropped now."""
        self.dropped_estimate = 0
        """About how many connection attempts were dropped since the start."""
        self.state = "off"
        self._fd: int | None = None
        self._inode: int | None = None
        """The listener's inode: a filter is set only on that socket, never on a reused number."""
        self._attempts: deque[float] = deque(maxlen=round(WINDOW_S / TICK_S))
        self._seen = 0
        self._lines = RateLimitedLog(log, logging.WARNING, period_s=5.0)
        self._ticker = TickingThread("admission", self.tick, lambda: TICK_S)
        self._address = tcp_address(endpoint)

    def start(self) -> None:
        if self.rate_per_s <= 0:
            self.state = "off ([limits] accept_rate_per_s = 0)"
            return
        if self._address is None:
            self.state = "off (not a TCP endpoint)"
            return
        refused = filter_refused()
        if refused is not None:
            self.state = f"off (the kernel refuses a socket filter: {refused})"
            log.warning("connection admission is %s", self.state)
            return
        self._fd = listening_descriptor(self._address[1])
        if self._fd is None:
            self.state = "off (the listening socket was not found)"
            log.warning("connection admission is off: the order socket's listener not found")
            return
        self._inode = socket_inode(self._fd)
        self.state = "on"
        self._ticker.start()

    def close(self) -> None:
        self._ticker.close()

    def status(self) -> dict[str, object]:
        return {
            "state": self.state,
            "rate_per_s": self.rate_per_s,
            "dropping": self.drop,
            "dropped_estimate": self.dropped_estimate,
        }

    def tick(self) -> None:
        """Count the tick's attempts, set the fraction for the next one."""
        accepted, self._seen = self.accepted - self._seen, self.accepted
        attempts = accepted / (1.0 - self.drop)
        self.dropped_estimate += round(attempts - accepted)
        self._attempts.append(attempts)
        per_s = sum(self._attempts) / (len(self._attempts) * TICK_S)
        drop = next_drop(per_s, self.rate_per_s)
        if drop == self.drop or self._fd is None:
            return
        if socket_inode(self._fd) != self._inode or not set_drop(self._fd, drop):
            self.state = "off (the filter could not be set)"
            self._fd = None
            log.warning("connection admission is %s", self.state)
            return
        if drop and not self.drop:
            self._lines.note(
                f"connection storm on the order socket: about {per_s:.0f} new connections a "
                f"second, admitting about {self.rate_per_s} a second ([limits] "
                f"accept_rate_per_s); the others' kernels retry (docs/security.md)"
            )
        self.drop = drop

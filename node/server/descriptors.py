"""Connections libzmq holds, reached by their file descriptors: what the node may do to them
without taking them from libzmq.

The node only reads a descriptor's state (its inode, addresses, TCP counters) and shuts it
down; it never closes it (libzmq would then use a number the kernel may give to another file).
After a shutdown libzmq sees the connection end and closes it itself, and reports it like any
other disconnection. A descriptor number is reused as soon as libzmq closes one, so whoever
holds a number keeps the socket's inode with it and checks it before acting.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def socket_inode(fd: int) -> int | None:
    """The inode of the socket on `fd`; None when `fd` is closed or not a socket."""
    try:
        status = os.fstat(fd)
    except OSError:
        return None
    return status.st_ino if stat.S_ISSOCK(status.st_mode) else None


def with_socket(fd: int, read: Callable[[socket.socket], T]) -> T | None:
    """`read` of a socket object over descriptor `fd` (not a duplicate: a duplicate left open
    would keep the connection alive), None when it fails."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        return read(sock)
    except OSError:
        return None
    finally:
        sock.detach()


def shut_down(fd: int, inode: int) -> bool:
    """Shut down the connection on `fd` if it is still the socket `inode`; whether it was."""
    if socket_inode(fd) != inode:
        return False
    return with_socket(fd, lambda sock: sock.shutdown(socket.SHUT_RDWR) or True) is True


def tcp_address(endpoint: str) -> tuple[str, int] | None:
    """The (host, port) a `tcp://HOST:PORT` endpoint bound, None for another transport."""
    if not endpoint.startswith("tcp://"):
        return None
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    return host.strip("[]"), int(port)

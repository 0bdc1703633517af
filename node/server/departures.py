"""Connections leaving the order socket: the disconnection monitor drained and each departure
booked in constant time, so that thousands of connections closing at once cost the matching
thread a few milliseconds, not seconds, and write a line a second, not one per connection.

What the loop must still do about a departure (cancel the orders of a cancel-on-disconnect
peer whose last connection went) it gets back as names, to do in one journaled batch.
"""

from __future__ import annotations

import logging

import zmq
from zmq.utils.monitor import parse_monitor_message

from .connections import Connections
from .lograte import RateLimitedLog

_NOBLOCK = int(zmq.NOBLOCK)

log = logging.getLogger("marketnode.node")


class Departures:
    """The order socket's monitor (EVENT_DISCONNECTED only) and what each event means."""

    def __init__(self, monitor: zmq.Socket, connections: Connections) -> None:
        self.monitor = monitor
        self.connections = connections
        self.lines = RateLimitedLog(log, logging.INFO)

    def drain(self) -> list[str]:
        """Book every disconnection waiting; return the peers whose orders are to be cancelled
        (registered with cancel-on-disconnect, and their last connection is gone)."""
        cancel: list[str] = []
        recv = self.monitor.recv_multipart
        disconnected = self.connections.disconnected
        while True:
            try:
                event = parse_monitor_message(recv(_NOBLOCK))
            except zmq.Again:
                return cancel
            gone = disconnected(int(event["value"]))
            if gone is None:
                continue
            name, last = gone
            self.lines.note(f"peer {name!r} disconnected")
            if last:
                cancel.append(name)

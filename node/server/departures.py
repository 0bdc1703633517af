"""Connections leaving the order socket: the disconnection monitor drained and each departure
booked in constant time and a slice at a time, so that thousands of connections closing at once
cost the matching thread a few milliseconds between batches, not seconds, and write a line a
second, not one per connection.

What the loop must still do about a departure (cancel the orders of a cancel-on-disconnect
peer whose last connection went) it gets back as names, to do in one journaled batch.
"""

from __future__ import annotations

import logging

import zmq
from zmq.utils.monitor import parse_monitor_message

from .admission import Admission
from .connections import Connections
from .intake_watch import IntakeWatch
from .lograte import RateLimitedLog

_NOBLOCK = int(zmq.NOBLOCK)
SLICE = 200
"""Events booked per call: the loop serves a batch between slices, so a storm of thousands of
disconnections delays a batch by one slice (a few milliseconds), not by the whole storm."""

log = logging.getLogger("marketnode.node")


class Departures:
    """The order socket's monitor (EVENT_ACCEPTED and EVENT_DISCONNECTED) and what each event
    means; an accepted connection is handed to the intake watch and counted for admission."""

    def __init__(
        self,
        monitor: zmq.Socket,
        connections: Connections,
        watch: IntakeWatch,
        admission: Admission,
    ) -> None:
        self.monitor = monitor
        self.connections = connections
        self.watch = watch
        self.admission = admission
        self.lines = RateLimitedLog(log, logging.INFO)

    def drain(self) -> list[str]:
        """Book up to SLICE waiting disconnections; return the peers whose orders are to be
        cancelled (registered with cancel-on-disconnect, and their last connection is gone)."""
        connections = self.connections
        cancel, connections.leaving = connections.leaving, []
        recv = self.monitor.recv_multipart
        disconnected = connections.disconnected
        accepted = self.watch.accepted
        admission = self.admission
        for _ in range(SLICE):
            try:
                event = parse_monitor_message(recv(_NOBLOCK))
            except zmq.Again:
                break
            if event["event"] == zmq.EVENT_ACCEPTED:
                accepted(int(event["value"]))
                admission.accepted += 1
                continue
            gone = disconnected(int(event["value"]))
            if gone is None:
                continue
            name, last = gone
            self.lines.note(f"peer {name!r} disconnected")
            if last:
                cancel.append(name)
        return cancel

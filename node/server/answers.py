"""What peers are owed after a batch's commit: each request's answer, in arrival order on its
connection (submits answered before other connections' reads), then the execution reports of
events that concern other peers' orders, one report per peer (docs/protocol.md §8, §9).

Nothing here waits: a peer that is gone or whose queue is full loses the message, and the loss
is counted, so a slow reader never holds up the matching thread.

With the compiled core, a submit's reply is written as msgpack straight from its core events
(its `AnswerWriter`, laid out from wire_events.py's `wire_layouts`), the same bytes as the wire
structs below give without making them; the Python engine's node answers through those structs,
the reference path.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, get_args

import msgspec
import zmq

from ..core.book import OrderBook
from ..core.events import Accepted, Event, Rejected, Role, Trade
from ..home.peers import Peer
from ..ops.metrics import LoopMetrics
from ..protocol.messages import PROTOCOL_VERSION, Reply, Report, TapeTrade, encoder
from ..protocol.wire_events import wire_event, wire_layouts

_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_SNDMORE = int(zmq.NOBLOCK | zmq.SNDMORE)
"""Plain ints: pyzmq's flag enums cost more to combine than a small send does."""
ROLE_CODES = {None: 0, Role.TICKS: 1, Role.LOTS: 2}
"""A wire field's role as the compiled writer numbers it (_answers.pxi's ROLE_*)."""
_SPLICE = b"\xc1"
"""A byte msgpack never uses, standing in for the events when the reply's frame is cut out."""

log = logging.getLogger("marketnode.node")


@dataclass(slots=True)
class Pending:
    """One peer message of the batch in progress. Answers leave after the batch's commit, in
    arrival order, so a peer's replies come back in the order of its requests."""

    identity: bytes
    peer: Peer | None
    name: str
    """The sender's peer name, which its orders carry and its reports are routed by."""
    ref: Any = None
    received_ns: int = 0
    """When the message was taken off the socket (for the acknowledgement latency)."""
    events: list | None = None
    """A submit's events (its answers first); None for other requests."""
    commands: list | None = None
    """A submit's commands as decoded (a malformed one as its reject), to answer them
    `store_unavailable` instead if the batch's commit fails."""
    build: Callable[[], Any] | None = None
    """Builds a non-submit answer from committed state."""


class Outbox:
    """Answers and reports to peers on the order socket."""

    def __init__(
        self,
        orders: zmq.Socket,
        metrics: LoopMetrics,
        identity_of: dict[str, bytes],
        writer_class: type | None = None,
    ) -> None:
        self.orders = orders
        self._send = zmq.backend.Socket.send.__get__(orders)
        """The socket's send without pyzmq's Python wrapper, which only forwards it when no
        routing id or group is given (as here), at some 200 ns a call, two calls an answer."""
        self.metrics = metrics
        self.identity_of = identity_of
        """Peer name -> the connection its reports go to (kept by `Connections`)."""
        self.writer = None if writer_class is None else answer_writer(writer_class, metrics)
        """The compiled core's reply writer (core.compiled.writer_classes), if any."""

    def send(self, identity: bytes, payload: bytes, report: bool = False) -> bool:
        """Send without ever blocking the loop; a gone or saturated peer loses the message."""
        try:
            self._send(identity, _NOBLOCK_SNDMORE)
            self._send(payload, _NOBLOCK)
            return True
        except zmq.ZMQError as error:
            if error.errno not in (zmq.EHOSTUNREACH, zmq.EAGAIN):
                raise
            if not report:
                self.metrics.answers_dropped += 1
            log.debug("peer %s unreachable (%s): message dropped", identity.hex(), error)
            return False

    def answer(
        self, pending: list[Pending], books: dict[str, OrderBook]
    ) -> dict[str, list[TapeTrade]]:
        """Send every answer, then the reports; return the batch's trades for the tape.

        The submits' answers go first, then the others' (pings, snapshots, refusals), each
        built now from committed state: a submit's answer is ready (its events are made), a
        read's costs its building, and a batch shared with hundreds of reads (a storm of new
        connections each pinging once, a flood of snapshots over many connections) would
        otherwise make every acknowledgement in it wait for all of them. A connection's own
        answers keep the order of its requests: once one of its reads waits, its later
        messages wait behind it."""
        reports: dict[str, list] = defaultdict(list)
        trades: dict[str, list[TapeTrade]] = defaultdict(list)
        later: list[Pending] = []
        behind_a_read: set[bytes] = set()
        for message in pending:
            if message.events is None or message.identity in behind_a_read:
                later.append(message)
                behind_a_read.add(message.identity)
            else:
                self._answer_submit(message, books, reports, trades)
        for message in later:
            if message.events is None:
                self.send(message.identity, encoder.encode(message.build()))
            else:
                self._answer_submit(message, books, reports, trades)
        for name, events in reports.items():
            self.report(name, events)
        return trades

    def _answer_submit(
        self,
        message: Pending,
        books: dict[str, OrderBook],
        reports: dict[str, list],
        trades: dict[str, list[TapeTrade]],
    ) -> None:
        """A submit's reply; its events that concern other peers' orders go to `reports`,
        its trades to `trades`."""
        metrics = self.metrics
        if self.writer is not None:
            payload = self.writer.reply(message.events, books, message.name, message.ref,
                                        reports, trades)  # fmt: skip
            self.send(message.identity, payload)
            metrics.ack_latency_us.record((time.perf_counter_ns() - message.received_ns) // 1000)
            return
        requester = message.name
        metrics.events.update(map(type, message.events))
        reply = []
        for event in message.events:
            kind = type(event)
            if kind is Accepted:
                reply.append(event)
                continue
            if kind is Rejected:
                metrics.rejects[event.reason] += 1
                reply.append(event)
                continue
            wire = wire_event(event, books)
            reply.append(wire)
            if kind is Trade:
                metrics.trades[event.market] += 1
                metrics.volume_lots[event.market] += event.qty
                trades[wire.market].append(
                    TapeTrade(wire.seq, wire.price, wire.qty, wire.aggressor)
                )
                if event.maker_peer not in (None, requester):
                    reports[event.maker_peer].append(wire)
                if event.taker_peer not in (None, requester, event.maker_peer):
                    reports[event.taker_peer].append(wire)
            elif event.peer not in (None, requester):
                reports[event.peer].append(wire)
        self.send(message.identity, encoder.encode(Reply(PROTOCOL_VERSION, reply, message.ref)))
        metrics.ack_latency_us.record((time.perf_counter_ns() - message.received_ns) // 1000)

    def report(self, name: str, events: list) -> None:
        """One execution report to peer `name`, on the connection it sent on last."""
        identity = self.identity_of.get(name)
        if identity is None or not self.send(
            identity, encoder.encode(Report(PROTOCOL_VERSION, events)), report=True
        ):
            self.metrics.reports_dropped += 1


def answer_writer(writer_class: type, metrics: LoopMetrics) -> Any:
    """The compiled writer of replies, given every event kind's wire layout, the reply's
    frame around its events (as msgspec encodes it) and the loop's counters it keeps."""
    frame = encoder.encode(Reply(PROTOCOL_VERSION, [msgspec.Raw(_SPLICE)], None))
    head, splice, tail = frame.partition(b"\x91" + _SPLICE)
    if not splice or _SPLICE in tail or not tail.endswith(encoder.encode(None)):
        raise TypeError(f"a reply's frame is not events then ref: {frame!r}")
    layouts = {
        kind: (tag_field, tag, [(name, ROLE_CODES[role], omit) for name, role, omit in fields])
        for kind, (tag_field, tag, fields) in wire_layouts(get_args(Event)).items()
    }
    return writer_class(
        layouts, head, tail[:-1], encoder.encode, msgspec.Raw, TapeTrade, Enum,
        metrics.events, metrics.rejects, metrics.trades, metrics.volume_lots,
    )  # fmt: skip

"""Taking a batch of messages off the order socket: one frame at a time, counted, and fairly
between connections.

The protocol's messages are one frame. libzmq bounds a frame (`[limits] max_message_bytes`, its
ZMQ_MAXMSGSIZE) but not how many frames a message has, and it delivers a multipart message only
once its last frame has arrived. So the node reads the first frame, and if more follow, takes
them one at a time and lets each go before the next: a message of many frames never costs the
node more than the frame in hand on top of what libzmq queued, and is answered `malformed`.
What libzmq holds of a message still arriving is bounded by `intake_watch`.

Fairness: libzmq queues fairly (one message per connection in turn), but a batch is answered
whole after its commit, so whoever shares a batch with a flood waits for all of it. A batch
therefore ends once one connection has had its share (`FairShare`): reads (`ping`,
`snapshot`...) need no commit, and a batch of one peer's reads is cut short at once; submits
are cut only when another connection is waiting in the same batch, so a lone busy peer keeps
the whole group commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import zmq

from ..ops.metrics import LoopMetrics
from .intake_watch import MESSAGE_OVERHEAD, IntakeWatch

_NOBLOCK = int(zmq.NOBLOCK)
MAX_MESSAGES_PER_BATCH = 1000
"""Messages drained per batch; commands per batch are bounded by `[store] batch_size` too."""
READS_PER_BATCH = 16
"""A connection's reads in one batch before it ends: about the cost of a few commands each
(a snapshot encodes a book), so a batch of them is answered within a millisecond or two."""
SUBMITS_PER_BATCH = 64
"""A connection's submits in one batch before it ends, when other connections share it."""


def read_message(recv: Callable[..., zmq.Frame]) -> tuple[zmq.Frame, int, int]:
    """The first frame of the message whose routing identity was just read, how many frames
    the message had (more than one: the rest were read and dropped), and the bytes it took on
    the wire (bodies and per-frame framing, for `intake_watch`)."""
    first = recv(0, copy=False)
    frames = 1
    size = len(first.buffer) + MESSAGE_OVERHEAD
    more = first.more
    while more:
        frame = recv(0, copy=False)
        more = frame.more
        size += len(frame.buffer) + MESSAGE_OVERHEAD
        frames += 1
    return first, frames, size


def drain(
    orders: zmq.Socket, watch: IntakeWatch, metrics: LoopMetrics
) -> Iterator[tuple[bytes, zmq.Frame, int]]:
    """The waiting messages as (routing identity, first frame, frame count), up to
    MAX_MESSAGES_PER_BATCH (a batch that reaches it is counted as saturated)."""
    recv = orders.recv
    note_read = watch.note_read
    for _ in range(MAX_MESSAGES_PER_BATCH):
        try:
            identity = recv(_NOBLOCK)
        except zmq.Again:
            watch.drains += 1
            return
        body, frames, size = read_message(recv)
        note_read(identity, body, size)
        yield identity, body, frames
    metrics.saturated_batches += 1


class FairShare:
    """Each connection's messages in the batch being drained."""

    __slots__ = ("reads", "submits")

    def __init__(self) -> None:
        self.reads: dict[bytes, int] = {}
        self.submits: dict[bytes, int] = {}
        """Plain dicts, counted with one look-up and one store a message (a Counter's `+= 1`
        takes two look-ups, and its missing key a call to Python's `__missing__`)."""

    def clear(self) -> None:
        self.reads.clear()
        self.submits.clear()

    def full(self, identity: bytes, is_read: bool) -> bool:
        """Count a message from `identity`; True when the batch should end with it."""
        if is_read:
            reads = self.reads[identity] = self.reads.get(identity, 0) + 1
            return reads >= READS_PER_BATCH
        submits = self.submits
        count = submits[identity] = submits.get(identity, 0) + 1
        if count < SUBMITS_PER_BATCH:
            return False
        return len(submits) > 1 or len(self.reads.keys() - {identity}) > 0

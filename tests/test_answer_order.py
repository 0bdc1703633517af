"""The order in which a batch's answers leave: submits before other connections' reads, each
connection's own answers in the order of its requests (answers.py)."""

from __future__ import annotations

import zmq

from marketnode.node.core.events import Accepted
from marketnode.node.ops.metrics import LoopMetrics
from marketnode.node.protocol.messages import PROTOCOL_VERSION, Pong, node_reply_decoder
from marketnode.node.server.answers import Outbox, Pending


class RecordingOutbox(Outbox):
    """An outbox that also notes the connection of each answer, in the order sent."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.sent: list[bytes] = []

    def send(self, identity: bytes, payload: bytes, report: bool = False) -> bool:
        self.sent.append(identity)
        return super().send(identity, payload, report)


def ping(identity: bytes, ref: int) -> Pending:
    return Pending(identity, None, "", ref, build=lambda: Pong(PROTOCOL_VERSION, ref))


def submit(identity: bytes, ref: int, order_id: int) -> Pending:
    accepted = Accepted(order_id, "new", "PUNK-ETH", order_id, "0xabc")
    return Pending(identity, None, "", ref, events=[accepted])


def test_submits_are_answered_before_other_connections_reads_and_each_connection_in_order():
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind("inproc://answers")
    dealers = {}
    for name in (b"storm-1", b"storm-2", b"honest", b"mixed"):
        dealer = context.socket(zmq.DEALER)
        dealer.routing_id = name
        dealer.connect("inproc://answers")
        dealers[name] = dealer
    try:
        outbox = RecordingOutbox(router, LoopMetrics(), {})
        batch = [
            ping(b"storm-1", 1),
            ping(b"mixed", 2),
            ping(b"storm-2", 3),
            submit(b"honest", 4, 40),
            submit(b"mixed", 5, 50),  # behind its own connection's ping
            submit(b"honest", 6, 60),
        ]
        outbox.answer(batch, {})
        assert outbox.sent == [b"honest", b"honest", b"storm-1", b"mixed", b"storm-2", b"mixed"]
        answers = {b"storm-1": 1, b"storm-2": 1, b"honest": 2, b"mixed": 2}
        received = {
            name: [node_reply_decoder.decode(dealers[name].recv()) for _ in range(count)]
            for name, count in answers.items()
        }
        assert [type(m).__name__ for m in received[b"mixed"]] == ["Pong", "Reply"]
        assert [m.ref for m in received[b"mixed"]] == [2, 5]
        assert [m.ref for m in received[b"honest"]] == [4, 6]
        assert outbox.metrics.ack_latency_us.count == 3  # every submit's acknowledgement timed
    finally:
        context.destroy(linger=0)

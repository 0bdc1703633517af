"""The compiled core's reply writer (node/core/compiled/_answers.pxi) against the reference path
of node/server/answers.py (wire structs, then msgspec): the same bytes to the requester, the
same execution reports to other peers, the same tape and the same loop counters, on seeded
flows and on the values at msgpack's boundaries; and its market-data writer
(_market_data.pxi) against node/server/marketdata.py's publisher, message for message."""

from __future__ import annotations

import random
from collections import defaultdict

import msgspec
import pytest
import zmq
from engine_cores import engine_of

from marketnode.node.core.compiled import writer_classes
from marketnode.node.core.events import Accepted, Rejected, Trade
from marketnode.node.core.reasons import Reason
from marketnode.node.home.config import default_markets
from marketnode.node.ops.metrics import LoopMetrics
from marketnode.node.protocol.messages import (
    PROTOCOL_VERSION,
    LevelChange,
    Report,
    TapeTrade,
    encoder,
)
from marketnode.node.server.answers import Outbox, Pending
from marketnode.node.server.marketdata import MarketDataPublisher
from marketnode.node.tools.flow import generate_flow

PEERS = ("alice", "bob", "carol", None)


class CapturingOutbox(Outbox):
    """An outbox on a real socket that also keeps what it sent and the reports it built."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.sent: list[tuple[bytes, bytes]] = []

    def send(self, identity: bytes, payload: bytes, report: bool = False) -> bool:
        self.sent.append((identity, payload))
        return super().send(identity, payload, report)


@pytest.fixture
def router():
    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    socket.bind("inproc://answers-compiled")
    yield socket
    socket.close(linger=0)
    context.term()


def outboxes(router, engine) -> tuple[CapturingOutbox, CapturingOutbox]:
    """The reference outbox and the compiled one, each with its own counters, and peers'
    connections known so that reports leave."""
    writer, _ = writer_classes(engine)
    assert writer is not None, "an engine of the compiled core answers with its writer"
    identities = {peer: peer.encode() for peer in PEERS if peer is not None}
    reference = CapturingOutbox(router, LoopMetrics(), identities)
    compiled = CapturingOutbox(router, LoopMetrics(), identities, writer)
    assert reference.writer is None and compiled.writer is not None
    return reference, compiled


def assert_same_answers(reference, compiled, messages, books) -> None:
    """Both outboxes answer `messages` (each (requester, ref, events)) alike."""
    for outbox in (reference, compiled):
        batch = [Pending(f"{name}".encode(), None, name, ref, events=events)
                 for name, ref, events in messages]  # fmt: skip
        outbox.tape = outbox.answer(batch, books)
    assert compiled.sent == reference.sent
    assert dict(compiled.tape) == dict(reference.tape)
    for counter in ("events", "rejects", "trades", "volume_lots"):
        assert getattr(compiled.metrics, counter) == getattr(reference.metrics, counter), counter


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_seeded_flows_are_answered_byte_for_byte_as_the_reference_does(router, seed):
    rng = random.Random(seed)
    markets = default_markets()
    engine = engine_of("compiled", markets)
    reference, compiled = outboxes(router, engine)
    commands = list(generate_flow(4000, seed=seed))
    messages = []
    while commands:
        size = rng.randint(1, 100)
        batch, commands = commands[:size], commands[size:]
        requester = rng.choice(PEERS[:3])
        events: list = []
        for command in batch:
            if hasattr(command, "peer"):
                command.peer = rng.choice(PEERS)
            engine.process(command, events)
        messages.append((requester, rng.choice([None, 7, "ref-1", {"k": [1, 2.5]}]), events))
    assert_same_answers(reference, compiled, messages, engine.books)
    kinds = {type(event) for _, _, events in messages for event in events}
    assert Trade in kinds and Rejected in kinds and len(kinds) == 6, kinds
    assert len(compiled.sent) > len(messages), "reports to other peers were sent too"


EDGE_INTEGERS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
                 2**64 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1,
                 -(2**63)]  # fmt: skip
EDGE_TEXTS = ["", "a", "x" * 31, "x" * 32, "x" * 255, "x" * 256, "y" * 65535, "y" * 65536,
              "ünïcødé", "\U0001f600" * 10]  # fmt: skip
ODD_VALUES = [None, True, False, 2.5, b"bytes", [1, "two"], {"a": 1}, 2**70 // 2**10]


@pytest.mark.parametrize("value", [*EDGE_INTEGERS, *EDGE_TEXTS, *ODD_VALUES], ids=repr)
def test_values_at_msgpack_s_boundaries_are_written_as_msgspec_writes_them(router, value):
    engine = engine_of("compiled", default_markets())
    reference, compiled = outboxes(router, engine)
    events = [
        Accepted(1, "new", "PUNK-ETH", value, "0xabc"),
        Rejected(None, value, value, value, value, Reason.NOT_AUTHORIZED),
        Rejected(2, "cancel", "PUNK-ETH", 9, "0xabc", Reason.UNKNOWN_ORDER, detail="why"),
    ]
    assert_same_answers(reference, compiled, [("alice", value, events)], engine.books)


def test_a_reply_of_many_events_has_a_long_array_header(router):
    engine = engine_of("compiled", default_markets())
    reference, compiled = outboxes(router, engine)
    events = [Accepted(seq, "new", "PUNK-ETH", seq, "0xabc") for seq in range(70_000)]
    assert_same_answers(reference, compiled, [("alice", None, events)], engine.books)


def test_reports_carry_the_encoded_events_of_other_peers_orders(router):
    engine = engine_of("compiled", default_markets())
    _, compiled = outboxes(router, engine)
    events: list = []
    for command in generate_flow(500, seed=11):
        if hasattr(command, "peer"):
            command.peer = "bob"
        engine.process(command, events)
    reports: dict[str, list] = defaultdict(list)
    compiled.writer.reply(events, engine.books, "alice", None, reports, defaultdict(list))
    assert list(reports) == ["bob"]
    decoded = [msgspec.msgpack.decode(raw) for raw in reports["bob"]]
    assert len(decoded) == sum(type(event) is not Accepted and type(event) is not Rejected
                               for event in events)  # fmt: skip
    report = encoder.encode(Report(PROTOCOL_VERSION, reports["bob"]))
    assert msgspec.msgpack.decode(report)["events"] == decoded


def test_an_object_that_is_no_event_is_refused(router):
    engine = engine_of("compiled", default_markets())
    _, compiled = outboxes(router, engine)
    with pytest.raises(TypeError, match="not an event"):
        compiled.writer.reply([object()], engine.books, "alice", None, {}, {})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_market_data_is_written_as_the_publisher_encodes_it(router, seed):
    """Batch after batch of a seeded flow: the same messages, topics' seqs and run."""
    engine = engine_of("compiled", default_markets())
    _, writer = writer_classes(engine)
    reference_outbox, _ = outboxes(router, engine)
    reference = MarketDataPublisher(router, 1_796_000_000_000)
    compiled = MarketDataPublisher(router, 1_796_000_000_000, writer)
    assert reference.writer is None and compiled.writer is not None
    commands = list(generate_flow(6000, seed=seed))
    rng = random.Random(seed)
    published = 0
    while commands:
        size = rng.randint(1, 300)
        batch, commands = commands[:size], commands[size:]
        events: list = []
        engine.process_batch(batch, events)
        tape = reference_outbox.answer(
            [Pending(b"a", None, "a", None, events=events)], engine.books
        )
        changed = engine.take_changes()
        got = compiled.messages(engine.books, tape, changed)
        assert got == reference.messages(engine.books, tape, changed)
        published += len(got)
    assert compiled.topic_seq == reference.topic_seq and published > 20
    assert compiled.messages(engine.books, {}, set()) == []


def test_the_market_data_writer_refuses_structs_it_does_not_know(router):
    engine = engine_of("compiled", default_markets())
    _, writer = writer_classes(engine)
    with pytest.raises(TypeError, match="the market-data writer writes"):
        writer(LevelChange, TapeTrade, LevelChange, PROTOCOL_VERSION, encoder.encode)

"""Bad input over the wire never stops the node: every message gets an answer of the right
shape (or the documented silence), and other peers are served throughout. Includes
property-based fuzzing of the decode path, in process and through a live node."""

from __future__ import annotations

import random
import struct
import sys
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.core.commands import CancelOrder, NewOrder, PeerCommand, ReplaceOrder
from marketnode.node.core.events import Accepted, Rejected
from marketnode.node.protocol.decoding import NESTING_RECURSION_LIMIT
from marketnode.node.protocol.messages import (
    PROTOCOL_VERSION,
    ErrorReply,
    MarketsReply,
    MarketsRequest,
    OpenOrdersReply,
    OpenOrdersRequest,
    Ping,
    Pong,
    Reply,
    SnapshotReply,
    SnapshotRequest,
    Submit,
    WhoamiReply,
    WhoamiRequest,
    node_reply_decoder,
    peer_request_decoder,
)

PUNK = "PUNK-ETH"
ALICE = "0xa11ce"
BOB = "0xb0b"
ANSWER_WAIT_MS = 5000
GATEWAY_REASONS = {
    "not_authorized",
    "peer_disabled",
    "throttled",
    "market_halted",
    "too_many_orders",
}

runner = CliRunner()
_encode = msgspec.msgpack.encode
_command_decoder = msgspec.msgpack.Decoder(PeerCommand)


# -- helpers ----------------------------------------------------------------------------------


def raw_dealer(running, peer: str) -> zmq.Socket:
    """A bare DEALER with the peer's key: sends whatever bytes and frames it is given."""
    return running.raw_socket(zmq.DEALER, running.address.orders, running.keys[peer])


def answer(sock: zmq.Socket, timeout_ms: int = ANSWER_WAIT_MS):
    """The next message from the node, decoded as a node reply (it must be one), or None."""
    if not sock.poll(timeout_ms):
        return None
    return node_reply_decoder.decode(sock.recv())


def answer_unless_stopped(sock: zmq.Socket, running):
    """The next answer, or None once the node's thread has ended without sending one."""
    deadline = time.monotonic() + ANSWER_WAIT_MS / 1000
    while time.monotonic() < deadline:
        if sock.poll(50):
            return node_reply_decoder.decode(sock.recv())
        if not running.thread.is_alive():
            return None
    return None


def exchange(sock: zmq.Socket, payload: bytes):
    sock.send(payload)
    reply = answer(sock)
    assert reply is not None, f"no answer to {payload[:60]!r}"
    return reply


class _Readable(msgspec.Struct):
    """Any map with str keys: its ref, if any."""

    ref: Any = None


class _Envelope(msgspec.Struct):
    """What every version of the protocol shares."""

    v: int
    type: str
    ref: Any = None


_readable_decoder = msgspec.msgpack.Decoder(_Readable)
_envelope_decoder = msgspec.msgpack.Decoder(_Envelope)
_BAD_INPUT = (msgspec.DecodeError, ValueError, RecursionError)


def node_set_field_of_wrong_type(command) -> bool:
    """A `peer` (new) or `reason` (cancel) that is neither a str nor nil: `malformed`."""
    if type(command) is NewOrder:
        value = command.peer
    elif type(command) is CancelOrder:
        value = command.reason
    else:
        return False
    return value is not None and type(value) is not str


def request(**fields) -> bytes:
    return _encode({"v": PROTOCOL_VERSION, **fields})


def new(order_id, owner=ALICE, **fields) -> dict:
    command = {"op": "new", "market": PUNK, "id": order_id, "owner": owner, "side": "buy"}
    command.update(price="10", qty="1")
    command.update(fields)
    return command


def cancel(order_id, owner=ALICE, **fields) -> dict:
    return {"op": "cancel", "market": PUNK, "id": order_id, "owner": owner, **fields}


def served(running, peer: str = "bob") -> None:
    """Another peer still gets answers."""
    assert type(running.client(peer, timeout_s=ANSWER_WAIT_MS / 1000).ping()) is Pong


def expected_shape(payload: bytes, reply) -> None:
    """The answer the protocol promises for `payload`, worked out by decoding it here."""
    try:
        sent = peer_request_decoder.decode(payload)
    except _BAD_INPUT:
        assert type(reply) is ErrorReply, reply
        # the ref is echoed whenever the message is a map with str keys; without the envelope
        # every version shares ({v: int, type: str}) it is malformed, with another v
        # bad_version, else malformed
        try:
            ref = _readable_decoder.decode(payload).ref
        except _BAD_INPUT:
            ref = None
        assert _encode(reply.ref) == _encode(ref)
        try:
            envelope = _envelope_decoder.decode(payload)
        except _BAD_INPUT:
            assert reply.reason == "malformed"
            return
        reason = "bad_version" if envelope.v != PROTOCOL_VERSION else "malformed"
        assert reply.reason == reason
        return
    if type(reply) is not ErrorReply or reply.reason != "malformed":
        # the request's ref comes back as sent (compared as MessagePack, so NaN equals NaN)
        assert _encode(reply.ref) == _encode(sent.ref)
    if sent.v != PROTOCOL_VERSION:
        assert type(reply) is ErrorReply
        assert reply.reason == "bad_version"
        return
    if type(sent) is Ping:
        assert type(reply) is Pong
    elif type(sent) is MarketsRequest:
        assert type(reply) is MarketsReply
    elif type(sent) is WhoamiRequest:
        assert type(reply) is WhoamiReply
    elif type(sent) is SnapshotRequest:
        assert type(reply) in (SnapshotReply, ErrorReply)
        if type(reply) is ErrorReply:
            assert reply.reason == "unknown_market"
    elif type(sent) is OpenOrdersRequest:
        assert type(reply) in (OpenOrdersReply, ErrorReply)
        if type(reply) is ErrorReply:
            assert reply.reason == "not_authorized"
    else:
        assert type(sent) is Submit
        assert type(reply) is Reply
        # events as decoded structs: a rejected command's fields may hold any value (Ext too)
        answers = [e for e in reply.events if type(e) in (Accepted, Rejected)]
        assert len(answers) == len(sent.cmds)
        for raw, given_answer in zip(sent.cmds, answers, strict=True):
            try:
                command = _command_decoder.decode(raw)
            except (msgspec.DecodeError, ValueError, RecursionError):
                assert type(given_answer) is Rejected
                assert given_answer.reason == "malformed"
                assert given_answer.seq is None
                continue
            malformed = node_set_field_of_wrong_type(command)
            if malformed:
                assert type(given_answer) is Rejected
                assert (given_answer.reason, given_answer.seq) == ("malformed", None)
            assert given_answer.op == command.__struct_config__.tag
            assert given_answer.id == command.id
            assert type(given_answer.id) is type(command.id)
            assert given_answer.owner == command.owner
            if not malformed and (
                type(given_answer) is Accepted or given_answer.reason not in GATEWAY_REASONS
            ):
                assert type(given_answer.seq) is int


# -- specific bad input -----------------------------------------------------------------------

MESSAGE_ERRORS = [
    (b"", "malformed"),
    (b"\xc1", "malformed"),
    (b"\x81", "malformed"),  # a map cut short
    (_encode(5), "malformed"),
    (_encode("ping"), "malformed"),
    (_encode([1, "ping"]), "malformed"),
    (_encode(None), "malformed"),
    (_encode({"v": 1}), "malformed"),
    (_encode({"type": "ping"}), "malformed"),
    (_encode({"v": "1", "type": "ping"}), "malformed"),
    (_encode({"v": 1.0, "type": "ping"}), "malformed"),
    (_encode({"v": True, "type": "ping"}), "malformed"),
    (_encode({"v": 1, "type": "dance"}), "malformed"),
    (_encode({"v": 1, "type": b"ping"}), "malformed"),
    (_encode({"v": 1, "type": 7}), "malformed"),
    (_encode({"v": 1, "type": "submit"}), "malformed"),
    (_encode({"v": 1, "type": "submit", "cmds": "new"}), "malformed"),
    (_encode({"v": 1, "type": "submit", "cmds": {"op": "new"}}), "malformed"),
    (_encode({"v": 1, "type": "snapshot"}), "malformed"),
    (_encode({"v": 1, "type": "snapshot", "market": 5}), "malformed"),
    (_encode({"v": 1, "type": "open_orders", "owner": ["0xa11ce"]}), "malformed"),
    (_encode({"v": 1, 2: 3, "type": "ping"}), "malformed"),
    (_encode({"v": 1, "type": "ping"}) + b"\x00", "malformed"),  # trailing bytes
    (b"\xdf\xff\xff\xff\xff", "malformed"),  # a map announcing 4 billion entries
    (b"\xdd\xff\xff\xff\xff", "malformed"),  # an array announcing 4 billion items
    (b"\xdb\xff\xff\xff\xff", "malformed"),  # a str announcing 4 GiB
    (b"\x91" * 50 + b"\xc0", "malformed"),  # nested, but not deeply
]


def test_undecodable_messages_are_answered_malformed_in_their_place(running_node):
    alice = raw_dealer(running_node, "alice")
    bob = running_node.client("bob")
    for number, (payload, reason) in enumerate(MESSAGE_ERRORS):
        alice.send(request(type="ping", ref=f"before-{number}"))
        alice.send(payload)
        alice.send(request(type="ping", ref=f"after-{number}"))
        replies = [answer(alice) for _ in range(3)]
        assert [type(reply) for reply in replies] == [Pong, ErrorReply, Pong], payload
        assert (replies[1].reason, replies[1].ref) == (reason, None), payload
        assert replies[1].detail
        assert [replies[0].ref, replies[2].ref] == [f"before-{number}", f"after-{number}"]
        assert type(bob.ping()) is Pong


@pytest.mark.parametrize(
    "version", [0, 2, -1, 2**64 - 1, -(2**63)], ids=["0", "2", "-1", "u64max", "i64min"]
)
def test_another_protocol_version_is_answered_bad_version(running_node, version):
    alice = raw_dealer(running_node, "alice")
    for body in (
        {"type": "ping"},
        {"type": "snapshot", "market": PUNK},
        {"type": "submit", "cmds": [new("v1")]},
    ):
        reply = exchange(alice, _encode({"v": version, **body, "ref": [version, body["type"]]}))
        assert type(reply) is ErrorReply
        assert reply.reason == "bad_version"
        assert reply.ref == [version, body["type"]]
    # nothing of it reached the engine
    assert running_node.admin().call("status")["seq"] == 0


def test_an_unknown_version_of_an_unknown_shape_is_still_bad_version(running_node):
    alice = raw_dealer(running_node, "alice")
    reply = exchange(alice, _encode({"v": 2, "type": "quote", "market": PUNK, "ref": 5}))
    assert type(reply) is ErrorReply
    assert (reply.reason, reply.ref) == ("bad_version", 5)


COMMAND_CASES = [
    # (command, expected answer reason or None for accepted, echoed id)
    (new("ok-1"), None, "ok-1"),
    (new(2**64 - 1), None, 2**64 - 1),
    (new(-(2**63)), None, -(2**63)),
    (new("x" * 64), None, "x" * 64),
    (new("peer-field", peer="bob"), None, "peer-field"),
    (new("extra", colour="blue", nested={"a": [1, 2]}), None, "extra"),
    (new("int-qty", qty=2, price=11), None, "int-qty"),
    (new("x" * 65), "malformed", "x" * 65),
    (new(""), "malformed", ""),
    (new(1.5), "malformed", None),
    (new(True), "malformed", None),
    (new(None), "malformed", None),
    (new([1]), "malformed", None),
    (new("owner-int", owner=5), "malformed", "owner-int"),
    (new("owner-long", owner="o" * 129), "malformed", "owner-long"),
    (new("owner-missing", owner=None), "malformed", "owner-missing"),
    ({"market": PUNK, "id": "no-op", "owner": ALICE}, "malformed", "no-op"),
    ({"op": "fly", "id": "bad-op", "owner": ALICE}, "malformed", "bad-op"),
    ({"op": 1, "id": "op-int", "owner": ALICE}, "malformed", "op-int"),
    (5, "malformed", None),
    ("new", "malformed", None),
    (None, "malformed", None),
    ([new("in-a-list")], "malformed", None),
    (new("market-list", market=[PUNK]), "unknown_market", "market-list"),
    (new("market-map", market={"symbol": PUNK}), "unknown_market", "market-map"),
    (new("market-bin", market=PUNK.encode()), "unknown_market", "market-bin"),
    (new("side-map", side={"buy": True}), "bad_side", "side-map"),
    (new("type-int", type=0), "bad_type", "type-int"),
    (new("tif-nil", tif=None), "bad_tif", "tif-nil"),
    (new("stp-int", stp=3), "bad_stp", "stp-int"),
    (new("qty-float", qty=1.0), "bad_qty", "qty-float"),
    (new("qty-nan", qty=float("nan")), "bad_qty", "qty-nan"),
    (new("qty-inf", qty=float("inf")), "bad_qty", "qty-inf"),
    (new("qty-bool", qty=True), "bad_qty", "qty-bool"),
    (new("qty-neg", qty=-1), "bad_qty", "qty-neg"),
    (new("qty-zero", qty="0"), "bad_qty", "qty-zero"),
    (new("qty-exp", qty="1e2"), "bad_qty", "qty-exp"),
    (new("qty-bin", qty=b"1"), "bad_qty", "qty-bin"),
    (new("qty-u64", qty=2**64 - 1), "qty_above_max", "qty-u64"),
    (new("qty-40", qty="9" * 40), "qty_above_max", "qty-40"),
    (new("qty-41", qty="9" * 41), "bad_qty", "qty-41"),
    (new("price-huge", price="9" * 39), "notional_above_max", "price-huge"),
    (new("price-u64", price=2**64 - 1), "notional_above_max", "price-u64"),
    (new("price-float", price=10.0), "bad_price", "price-float"),
    (new("price-neg", price="-10"), "bad_price", "price-neg"),
    (new("price-list", price=["10"]), "bad_price", "price-list"),
    (new("price-tiny", price="0." + "0" * 37 + "1"), "off_tick", "price-tiny"),
    (
        {"op": "cancel", "market": PUNK, "id": "cx", "owner": ALICE, "qty": [1]},
        "unknown_order",
        "cx",
    ),
    ({"op": "replace", "market": PUNK, "id": "rx", "owner": ALICE, "qty": {}}, "bad_qty", "rx"),
    ({"op": "replace", "market": 7, "id": "rm", "owner": ALICE}, "unknown_market", "rm"),
    # a peer cannot make its cancel look like one of the node's own
    (cancel("extra", reason="disconnect"), None, "extra"),
    # the fields only the node sets take a str or nil, nothing else
    (new("peer-int", peer=7), "malformed", "peer-int"),
    (new("peer-map", peer={"name": "bob"}), "malformed", "peer-map"),
    (cancel("reason-int", reason=1), "malformed", "reason-int"),
]


def test_bad_commands_get_their_own_answers_and_the_rest_go_on(running_node):
    alice = raw_dealer(running_node, "alice")
    commands = [command for command, _, _ in COMMAND_CASES]
    reply = exchange(alice, request(type="submit", cmds=commands, ref="all"))
    assert type(reply) is Reply
    assert reply.ref == "all"
    events = msgspec.to_builtins(reply.events)
    answers = [e for e in events if e["event"] in ("accepted", "rejected")]
    assert len(answers) == len(COMMAND_CASES)
    for (command, reason, echoed), got in zip(COMMAND_CASES, answers, strict=True):
        if reason is None:
            assert got["event"] == "accepted", (command, got)
        else:
            assert (got["event"], got["reason"]) == ("rejected", reason), (command, got)
        assert got["id"] == echoed, (command, got)
        assert type(got["id"]) is type(echoed)
        if reason == "malformed":
            assert got["seq"] is None
            assert got["detail"]
        else:
            assert type(got["seq"]) is int
    [cancelled] = [e for e in events if e["event"] == "cancelled"]
    assert (cancelled["id"], cancelled["reason"]) == ("extra", "user")
    served(running_node)
    # the wide ids went through the store; a peer key inside a command was not believed
    ids = {order.id for order in running_node.client("alice").open_orders().orders}
    assert {2**64 - 1, -(2**63), "x" * 64, "peer-field", "int-qty"} <= ids
    assert running_node.admin().call("disable_peer", peer="bob")["orders_cancelled"] == 0
    running_node.stop()
    verified = runner.invoke(app, ["verify", "--home", str(running_node.home.path)])
    assert verified.exit_code == 0, verified.stdout


WIDE_MARKET = """
[[markets]]
symbol = "WIDE-ETH"
base = "WIDE"
quote = "ETH"
tick_size = "0.01"
lot_size = "1"
"""
"""A market that sets no max_qty or max_notional."""


def test_an_order_too_large_to_store_is_refused_and_the_node_goes_on(node_factory):
    """In a market without bounds an order of 10**39 lots, or a price x qty past 64 bits,
    used to be accepted, fail its commit and stop the node; it is refused, the largest order
    the node's bound allows rests, and the store verifies."""
    running = node_factory(WIDE_MARKET, peers={"alice": (ALICE,), "bob": (BOB,)})
    alice = raw_dealer(running, "alice")
    largest = str(2**63 - 1)
    commands = [
        new("lots", market="WIDE-ETH", qty="9" * 39, price="1"),
        new("notional", market="WIDE-ETH", qty="2", price=str(2**62)),
        new("largest", market="WIDE-ETH", qty=largest, price="0.01"),
    ]
    reply = exchange(alice, request(type="submit", cmds=commands, ref="wide"))
    events = msgspec.to_builtins(reply.events)
    refused = {e["id"]: e["reason"] for e in events if e["event"] == "rejected"}
    assert refused == {"lots": "qty_above_max", "notional": "notional_above_max"}
    sell = new("sold", owner=BOB, market="WIDE-ETH", side="sell", qty="5", price="0.01")
    reply = exchange(raw_dealer(running, "bob"), request(type="submit", cmds=[sell]))
    assert [e["qty"] for e in msgspec.to_builtins(reply.events) if e["event"] == "trade"] == ["5"]
    served(running)
    [resting] = running.client("alice").open_orders().orders
    assert (resting.id, resting.qty) == ("largest", str(2**63 - 1 - 5))
    running.stop()
    verified = runner.invoke(app, ["verify", "--home", str(running.home.path)])
    assert verified.exit_code == 0, verified.stdout


@pytest.mark.parametrize("frames", [2, 3, 5])
def test_a_message_of_several_frames_is_malformed(running_node, frames):
    alice = raw_dealer(running_node, "alice")
    ping = request(type="ping", ref=1)
    alice.send_multipart([ping] * frames)
    reply = answer(alice)
    assert type(reply) is ErrorReply
    assert (reply.reason, reply.ref) == ("malformed", None)
    assert "one frame" in reply.detail
    assert type(exchange(alice, request(type="ping", ref=2))) is Pong
    alice.send_multipart([b"", b""])
    assert answer(alice).reason == "malformed"
    served(running_node)


def _random_payloads(seed: int, prefixes: list[bytes], count: int = 400) -> list[bytes]:
    rng = random.Random(seed)
    payloads = []
    for _ in range(count):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        payloads.append(rng.choice(prefixes) + body)
    return payloads


def _pipeline(running, payloads: list[bytes]) -> None:
    """Send the payloads 50 at a time; every one is answered as the protocol says, in order,
    and another peer is served between the groups."""
    alice = raw_dealer(running, "alice")
    bob = running.client("bob")
    for start in range(0, len(payloads), 50):
        chunk = payloads[start : start + 50]
        for payload in chunk:
            alice.send(payload)
        for payload in chunk:
            reply = answer_unless_stopped(alice, running)
            assert reply is not None, f"no answer to {payload!r}"
            expected_shape(payload, reply)
        assert type(bob.ping()) is Pong


def test_random_bytes_are_answered_and_others_served_throughout(running_node):
    _pipeline(running_node, _random_payloads(8080, [b""]))


# -- crashes ----------------------------------------------------------------------------------

INVALID_UTF8 = b"\xa2\xff\xfe"
"""A MessagePack str whose bytes are not UTF-8."""


def _ping_with_raw_ref(raw_ref: bytes) -> bytes:
    return (
        b"\x83"
        + _encode("v")
        + _encode(1)
        + _encode("type")
        + _encode("ping")
        + _encode("ref")
        + raw_ref
    )


def _snapshot_of_raw_market(raw_market: bytes) -> bytes:
    return (
        b"\x83"
        + _encode("v")
        + _encode(1)
        + _encode("type")
        + _encode("snapshot")
        + _encode("market")
        + raw_market
    )


def _submit_of_raw_command(raw_command: bytes) -> bytes:
    return (
        b"\x83"
        + _encode("v")
        + _encode(1)
        + _encode("type")
        + _encode("submit")
        + _encode("cmds")
        + b"\x91"
        + raw_command
    )


def _command_with_raw_owner(raw_owner: bytes) -> bytes:
    return (
        b"\x83"
        + _encode("op")
        + _encode("new")
        + _encode("id")
        + _encode("u1")
        + _encode("owner")
        + raw_owner
    )


CRASHERS = {
    "utf8-type": b"\x82" + _encode("v") + _encode(1) + _encode("type") + INVALID_UTF8,
    "utf8-ping-ref": _ping_with_raw_ref(INVALID_UTF8),
    "utf8-snapshot-market": _snapshot_of_raw_market(INVALID_UTF8),
    "utf8-command-owner": _submit_of_raw_command(_command_with_raw_owner(INVALID_UTF8)),
    "deep-ping-ref": _ping_with_raw_ref(b"\x91" * 5000 + b"\xc0"),
    "deep-command-market": _submit_of_raw_command(
        b"\x84"
        + _encode("op")
        + _encode("new")
        + _encode("id")
        + _encode("d1")
        + _encode("owner")
        + _encode(ALICE)
        + _encode("market")
        + b"\x91" * 5000
        + b"\xc0"
    ),
}


def test_deep_nesting_is_refused_when_a_library_raised_the_recursion_limit(node_factory):
    # py_ecc (imported by eth-account) raises the limit to 100,000 for the whole process; the
    # node lowers it when it starts, so nesting stays refused whatever was imported before
    sys.setrecursionlimit(100_000)
    running = node_factory(peers={"alice": (ALICE,), "bob": ("0xb0b",)})
    assert sys.getrecursionlimit() == NESTING_RECURSION_LIMIT
    alice = raw_dealer(running, "alice")
    alice.send(CRASHERS["deep-ping-ref"])
    reply = answer_unless_stopped(alice, running)
    assert type(reply) is ErrorReply and reply.reason == "malformed"
    served(running)


@pytest.mark.parametrize("payload", list(CRASHERS.values()), ids=list(CRASHERS))
def test_undecodable_strings_and_deep_nesting_do_not_stop_the_node(running_node, payload):
    alice = raw_dealer(running_node, "alice")
    alice.send(payload)
    reply = answer_unless_stopped(alice, running_node)
    try:
        alive = running_node.thread.is_alive()
        assert reply is not None, f"no answer; the node thread is {'alive' if alive else 'gone'}"
        if type(reply) is Reply:
            [rejected] = msgspec.to_builtins(reply.events)
            assert (rejected["event"], rejected["reason"]) == ("rejected", "malformed")
        else:
            assert type(reply) is ErrorReply
            assert reply.reason == "malformed"
        served(running_node)
    finally:
        if not running_node.thread.is_alive():
            for client in running_node.clients:
                client.close()


def test_random_bytes_after_a_valid_request_prefix_are_answered(running_node):
    prefixes = [b"\x80", b"\x81\xa1v\x01", b"\x82\xa1v\x01\xa4type", b"\x83\xa1v\x01"]
    try:
        _pipeline(running_node, _random_payloads(8081, prefixes))
    finally:
        if not running_node.thread.is_alive():
            for client in running_node.clients:
                client.close()


def test_an_undecodable_string_on_the_admin_socket_does_not_stop_the_node(running_node):
    admin = running_node.admin()
    payload = (
        b"\x83" + _encode("v") + _encode(1) + _encode("type") + _encode("admin") + _encode("cmd")
    ) + INVALID_UTF8
    admin.socket.send(payload)
    try:
        deadline = time.monotonic() + ANSWER_WAIT_MS / 1000
        while not admin.socket.poll(50):
            assert running_node.thread.is_alive(), "no answer: the node stopped"
            assert time.monotonic() < deadline, "no answer"
        served(running_node)
    finally:
        if not running_node.thread.is_alive():
            for client in running_node.clients:
                client.close()


# -- property-based fuzzing -------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.builds(
        msgspec.msgpack.Ext, st.integers(min_value=-128, max_value=127), st.binary(max_size=12)
    ),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=10,
)


def _mostly(strategy, otherwise, one_in: int = 6):
    """`strategy`, or `otherwise` about once in `one_in` draws."""
    rolls = st.sampled_from([False] * (one_in - 1) + [True])
    return rolls.flatmap(lambda junk: otherwise if junk else strategy)


def _or_junk(strategy):
    """Mostly `strategy`, sometimes any value at all."""
    return _mostly(strategy, _values)


_prices = _mostly(
    st.integers(min_value=900, max_value=1_100).map(lambda n: str(Decimal(n) / 10)),
    st.one_of(
        st.integers(min_value=-5, max_value=10**6),
        st.from_regex(r"-?[0-9]{0,42}(\.[0-9]{0,6})?", fullmatch=True),
    ),
    one_in=4,
)
_quantities = _mostly(
    st.integers(min_value=1, max_value=8).map(str),
    st.one_of(
        st.integers(min_value=-5, max_value=600),
        st.from_regex(r"-?[0-9]{0,42}(\.[0-9]{0,6})?", fullmatch=True),
    ),
    one_in=4,
)
_version = _mostly(
    st.just(PROTOCOL_VERSION),
    st.one_of(st.integers(min_value=-(2**63), max_value=2**64 - 1), _values),
    one_in=8,
)
_command_fields = {
    "side": _or_junk(_mostly(st.sampled_from(["buy", "sell"]), st.just("BUY"))),
    "type": _or_junk(st.sampled_from(["limit", "market"])),
    "price": _or_junk(_prices),
    "qty": _or_junk(_quantities),
    "tif": _or_junk(st.sampled_from(["GTC", "IOC", "FOK", "POST_ONLY", "DAY"])),
    "stp": _or_junk(st.sampled_from(["none", "cancel_oldest", "cancel_both", "decrement", "x"])),
    "peer": _mostly(st.text(max_size=8), _values, one_in=3),
    "note": _values,
}
_ids = st.one_of(st.text(min_size=1, max_size=3), st.integers(0, 20))
_markets = _mostly(st.just(PUNK), st.sampled_from(["LAND-ETH", "GOLD-USDC", "NOPE-ETH"]), 3)
_commands = st.one_of(
    st.fixed_dictionaries(
        {
            "op": st.just("new"),
            "id": _ids,
            "owner": _or_junk(st.sampled_from([ALICE, ALICE, ALICE, BOB])),
            "market": _or_junk(_markets),
            "side": _command_fields["side"],
            "price": _command_fields["price"],
            "qty": _command_fields["qty"],
        },
        optional={key: _command_fields[key] for key in ("type", "tif", "stp", "peer", "note")},
    ),
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["new", "new", "cancel", "replace"]),
            "id": _ids,
            "owner": st.sampled_from([ALICE, ALICE, ALICE, BOB]),
            "market": _markets,
        },
        optional=_command_fields,
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "op": _or_junk(st.sampled_from(["new", "cancel", "replace", "amend"])),
            "id": _or_junk(
                st.one_of(st.text(min_size=0, max_size=70), st.integers(-(2**63), 2**64 - 1))
            ),
            "owner": _or_junk(st.sampled_from([ALICE, BOB, "0xnobody", ""])),
            "market": _values,
            **_command_fields,
        },
    ),
    _values,
)


def _request(kind: str, required: dict, optional: dict | None = None):
    return st.fixed_dictionaries(
        {"v": _version, "type": st.just(kind), **required},
        optional={"ref": _values, "extra": _values, **(optional or {})},
    )


_requests = st.one_of(
    _request("submit", {"cmds": st.lists(_commands, max_size=6)}),
    _request("submit", {"cmds": st.lists(_commands, max_size=6)}),
    _request("ping", {}),
    _request("markets", {}),
    _request("whoami", {}),
    _request("snapshot", {"market": _or_junk(st.sampled_from([PUNK, "NOPE-ETH"]))}),
    _request("open_orders", {}, {"owner": _or_junk(st.sampled_from([ALICE, BOB, None]))}),
    st.fixed_dictionaries(
        {},
        optional={
            "v": _version,
            "type": _or_junk(st.sampled_from(["submit", "ping", "snapshot", "open_orders", "md"])),
            "cmds": _values,
            "market": _values,
            "owner": _values,
            "ref": _values,
        },
    ),
    _values,
)


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(payload=st.one_of(st.binary(max_size=64), _requests.map(_encode)))
@example(payload=_encode({"v": 1, "type": "submit", "cmds": [1, None, {}]}))
def test_the_request_decoder_only_ever_raises_decode_errors(payload):
    try:
        request = peer_request_decoder.decode(payload)
    except msgspec.DecodeError:
        return
    assert type(request) in (
        Submit,
        SnapshotRequest,
        OpenOrdersRequest,
        Ping,
        MarketsRequest,
        WhoamiRequest,
    )
    assert type(request.v) is int
    if type(request) is Submit:
        for raw in request.cmds:
            try:
                command = _command_decoder.decode(raw)
            except (msgspec.DecodeError, ValueError, RecursionError):
                continue
            assert type(command) in (NewOrder, CancelOrder, ReplaceOrder)


def _with_fresh_ids(message, salt: int):
    """The message with the ids of its new orders made unique (Hypothesis favours a few simple
    ids, and a live id is rejected duplicate_id): ids of any other type or length are kept."""
    if type(message) is not dict or type(message.get("cmds")) is not list:
        return message
    commands = []
    for command in message["cmds"]:
        if type(command) is dict and command.get("op") == "new":
            order_id = command.get("id")
            if type(order_id) is str and 0 < len(order_id) <= 48:
                command = {**command, "id": f"{order_id}#{salt}"}
            elif type(order_id) is int and 0 <= order_id < 2**32:
                command = {**command, "id": order_id + (salt << 32)}
        commands.append(command)
    return {**message, "cmds": commands}


def test_fuzzed_requests_through_a_live_node_each_get_an_answer_of_the_right_shape(running_node):
    alice = raw_dealer(running_node, "alice")
    bob = running_node.client("bob")
    seen: Counter = Counter()

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(message=_requests)
    @example(message={"v": 1, "type": "submit", "cmds": [{"op": "new", "id": 1}]})
    @example(message={"v": 1, "type": "ping", "ref": {"nan": float("nan")}})
    @example(message={"v": 1, "type": "ping", "ref": msgspec.msgpack.Ext(-1, b"\x00")})
    @example(message={"v": 1, "type": "ping", "ref": msgspec.msgpack.Ext(5, b"")})
    @example(message=msgspec.msgpack.Ext(-1, struct.pack(">Q", (1_000_000_000 << 34) | 5)))
    def check(message):
        payload = _encode(_with_fresh_ids(message, seen.total()))
        reply = exchange(alice, payload)
        expected_shape(payload, reply)
        seen[type(reply).__name__] += 1
        if type(reply) is Reply:
            seen.update(e.__struct_config__.tag for e in reply.events)
        if type(reply) is ErrorReply:
            seen[reply.reason] += 1
        if seen.total() % 20 == 0:
            assert type(bob.ping()) is Pong

    check()
    # the examples reached every kind of answer, the engine included
    for kind in ("Pong", "malformed", "bad_version", "accepted", "rejected"):
        assert seen[kind] > 0, (kind, seen)
    assert type(bob.ping()) is Pong
    assert type(exchange(alice, request(type="ping", ref="end"))) is Pong
    # whatever was journaled on the way replays to the same books
    running_node.stop()
    verified = runner.invoke(app, ["verify", "--home", str(running_node.home.path)])
    assert verified.exit_code == 0, verified.stdout

"""Frames, encoding, versions, `ref`, message errors and the requests other than `submit`'s commands
(docs/protocol.md §3, §4, §6, §8, §10 "Message errors")."""

from __future__ import annotations

import msgspec
import pytest

from .wire import QUIET_S, NoAnswer, answers, cancel, encode, new

V1 = {"v": 1}


def error_of(answer: dict, reason: str) -> dict:
    assert answer["type"] == "error", answer
    assert answer["reason"] == reason, answer
    assert isinstance(answer["detail"], str), answer
    assert set(answer) == {"type", "v", "reason", "detail", "ref"}, answer
    return answer


# -- ping / pong -----------------------------------------------------------------------------------


def test_ping_is_answered_by_pong_with_the_same_ref(alice):
    """§4 ping / §6 pong: `{"type": "pong", "v": 1, "ref": <the ping's ref>}`."""
    assert alice.request({"v": 1, "type": "ping", "ref": 41}) == {"type": "pong", "v": 1, "ref": 41}


@pytest.mark.parametrize(
    "ref",
    [0, -5, 2**40, "a string", "", {"a": [1, 2]}, [1, "2", None], True, 1.5, b"bytes"],
    ids=["zero", "negative", "big", "str", "empty-str", "map", "array", "bool", "float", "bin"],
)
def test_ref_is_any_messagepack_value_and_comes_back_as_sent(alice, ref):
    """§3: "`ref` (requests, optional): any MessagePack value you like (an integer counter, a
    string, a map…). The answer carries the same value back in its `ref`"."""
    answer = alice.request({"v": 1, "type": "ping", "ref": ref})
    assert answer["type"] == "pong", answer
    assert answer["ref"] == ref and type(answer["ref"]) is type(ref), answer


@pytest.mark.parametrize(
    "request_",
    [
        {"v": 1, "type": "ping"},
        {"v": 1, "type": "submit", "cmds": []},
        {"v": 1, "type": "snapshot", "market": "PUNK-ETH"},
        {"v": 1, "type": "open_orders"},
        {"v": 2, "type": "ping"},
        {"v": 1, "type": "snapshot", "market": "NOPE-ETH"},
    ],
    ids=["pong", "reply", "snapshot", "open_orders", "bad_version", "unknown_market"],
)
def test_a_request_without_ref_gets_ref_nil(alice, request_):
    """§3: "a request without `ref` gets `ref: nil`"."""
    answer = alice.request(request_)
    assert "ref" in answer and answer["ref"] is None, answer


def test_keys_may_come_in_any_order_and_unknown_keys_are_ignored(alice):
    """§3: "Keys a map does not define are ignored, in requests and in commands, so a client may
    add its own ... Keys may come in any order"."""
    message = {"ref": "r", "mine": {"x": 1}, "type": "ping", "v": 1}
    assert alice.request(message) == {"type": "pong", "v": 1, "ref": "r"}


def test_empty_submit_is_a_reply_with_no_events(alice):
    """§4 submit: "An empty `cmds` array is answered with a `reply` with no events"."""
    assert alice.request({"v": 1, "type": "submit", "cmds": [], "ref": 3}) == {
        "type": "reply",
        "v": 1,
        "events": [],
        "ref": 3,
    }


# -- frames ----------------------------------------------------------------------------------------


def test_two_frames_are_malformed_with_ref_nil(alice):
    """§3: "A message of two or more frames is answered `error`/`malformed` ("a message must be
    exactly one frame", `ref` nil) on the order socket"."""
    ping = encode({"v": 1, "type": "ping", "ref": 5})
    alice.send_frames([ping, ping])
    assert error_of(alice.answer(), "malformed")["ref"] is None
    alice.send_frames([b"", ping])
    assert error_of(alice.answer(), "malformed")["ref"] is None
    alice.ping()  # one answer per message: nothing else is owed


def test_the_node_sends_one_frame_per_message(alice, market):
    """§3: "The node sends one frame per message to a peer" (`Peer.recv` checks every message
    of the suite; here a reply, a snapshot and an error)."""
    for message in (
        {"v": 1, "type": "submit", "cmds": [new(market, "f1", "0xa11ce", "buy", "1")]},
        {"v": 1, "type": "snapshot", "market": market},
        {"v": 7, "type": "ping"},
    ):
        alice.send(message)
        frames = alice.recv_raw()
        assert len(frames) == 1, frames
        assert isinstance(msgspec.msgpack.decode(frames[0]), dict)


# -- malformed messages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",  # never used in MessagePack
        b"",
        b"\x93\x01\x02\x03",  # an array
        encode("ping"),
        encode(1),
        encode(None),
        b"\x82\xa1v\x01",  # a map announcing two pairs holding one
    ],
    ids=["bad-opcode", "empty", "array", "str", "int", "nil", "truncated"],
)
def test_undecodable_messages_are_malformed_with_ref_nil(alice, payload):
    """§10: `malformed` when "not MessagePack, not a map"; `ref` nil."""
    alice.send_raw(payload)
    assert error_of(alice.answer(), "malformed")["ref"] is None


ENVELOPE_FAILURES = {
    "no-type": {"v": 1, "ref": 8},
    "nil-type": {"v": 1, "type": None, "ref": 8},
    "int-type": {"v": 1, "type": 5, "ref": 8},
    "bin-type": {"v": 1, "type": b"ping", "ref": 8},
    "no-v": {"type": "ping", "ref": 8},
    "str-v": {"v": "1", "type": "ping", "ref": 8},
    "float-v": {"v": 1.0, "type": "ping", "ref": 8},
    "bool-v": {"v": True, "type": "ping", "ref": 8},
    "nil-v": {"v": None, "type": "ping", "ref": 8},
    "v2-no-type": {"v": 2, "ref": 8},
    "v2-int-type": {"v": 2, "type": 7, "ref": 8},
    "v2-bin-type": {"v": 2, "type": b"ping", "ref": 8},
    "str-v-unknown-type": {"v": "2", "type": "hello", "ref": 8},
}


@pytest.mark.parametrize("name", list(ENVELOPE_FAILURES))
def test_no_envelope_is_malformed_whatever_the_version_with_ref_echoed(alice, name):
    """§3 step 1: "The envelope: a map with str keys, an int `v` and a str `type`. Without it
    (... `v` missing or not an int, `type` missing or not a str) the request is `malformed`,
    whatever its `v`"; "An `error` answer carries the request's `ref` whenever the request is a
    map with str keys"; §3: "`{"type": b"ping"}` is `malformed`"."""
    answer = error_of(alice.request(ENVELOPE_FAILURES[name]), "malformed")
    assert answer["ref"] == 8, answer


SHAPE_FAILURES = {
    "unknown-type": {"v": 1, "type": "hello", "ref": 8},
    "reply-type": {"v": 1, "type": "reply", "ref": 8},
    "snapshot-no-market": {"v": 1, "type": "snapshot", "ref": 8},
    "snapshot-int-market": {"v": 1, "type": "snapshot", "market": 5, "ref": 8},
    "snapshot-nil-market": {"v": 1, "type": "snapshot", "market": None, "ref": 8},
    "snapshot-bin-market": {"v": 1, "type": "snapshot", "market": b"PUNK-ETH", "ref": 8},
    "submit-no-cmds": {"v": 1, "type": "submit", "ref": 8},
    "submit-map-cmds": {"v": 1, "type": "submit", "cmds": {"op": "new"}, "ref": 8},
    "submit-str-cmds": {"v": 1, "type": "submit", "cmds": "x", "ref": 8},
    "submit-nil-cmds": {"v": 1, "type": "submit", "cmds": None, "ref": 8},
    "open_orders-int-owner": {"v": 1, "type": "open_orders", "owner": 5, "ref": 8},
    "open_orders-array-owner": {"v": 1, "type": "open_orders", "owner": ["0xa11ce"], "ref": 8},
    "open_orders-bin-owner": {"v": 1, "type": "open_orders", "owner": b"0xa11ce", "ref": 8},
}


@pytest.mark.parametrize("name", list(SHAPE_FAILURES))
def test_a_wrong_version_1_shape_is_malformed_with_ref_echoed(alice, name):
    """§3 step 3: "The version-1 shape of its `type`: an unknown `type`, a required key missing
    or of the wrong type is `malformed`"; §10: `malformed` ... "with `v` 1, an unknown `type` or
    a required key missing or of the wrong type (`cmds`, `market`, …)", `ref` "echoed when the
    request is a map with str keys"; §14: `{"v": 1, "type": "hello", "ref": 8}` is answered
    `'ref': 8`; §4 open_orders: `owner` is "str or nil"."""
    answer = error_of(alice.request(SHAPE_FAILURES[name]), "malformed")
    assert answer["ref"] == 8, answer


@pytest.mark.parametrize(
    "message",
    [
        {b"v": 1, b"type": b"ping", b"ref": 9},
        {"v": 1, "type": "ping", "ref": 9, b"mine": 1},
        {"v": 1, "type": "ping", "ref": 9, 5: "x"},
        {"v": 2, "type": "ping", "ref": 9, None: 1},
    ],
    ids=["bin-keys", "one-bin-key", "int-key", "nil-key-v2"],
)
def test_a_key_that_is_not_a_str_is_malformed_with_ref_nil(alice, message):
    """§3: "Every payload is a MessagePack **map** with string keys"; step 1: "a key that is not a
    str" is no envelope: `malformed`; the `ref` is nil for "not MessagePack, not a map, a key
    that is not a str"."""
    assert error_of(alice.request(message), "malformed")["ref"] is None


# -- versions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 2, -1, 1000])
@pytest.mark.parametrize(
    "body",
    [
        {"type": "ping"},
        {"type": "snapshot", "market": "PUNK-ETH"},
        {"type": "open_orders"},
        {"type": "submit", "cmds": []},
    ],
    ids=["ping", "snapshot", "open_orders", "submit"],
)
def test_another_integer_version_is_bad_version_with_ref(alice, version, body):
    """§3: "A request with another integer, but otherwise the shape of a version-1 request, is
    answered `error`/`bad_version` with its `ref`"; §10: (`detail`: "this node speaks v1")."""
    answer = error_of(alice.request({"v": version, "ref": [version], **body}), "bad_version")
    assert answer["ref"] == [version]
    assert answer["detail"] == "this node speaks v1"


@pytest.mark.parametrize(
    "message",
    [
        {"v": 2, "type": "hello", "ref": 10},
        {"v": 2, "type": "snapshot", "ref": 10},
        {"v": 2, "type": "submit", "ref": 10},
        {"v": 2, "type": "submit", "cmds": 3, "ref": 10},
        {"v": 0, "type": "open_orders", "owner": 5, "ref": 10},
    ],
    ids=["unknown-type", "snapshot-no-market", "submit-no-cmds", "submit-int-cmds", "v0-int-owner"],
)
def test_another_version_is_bad_version_whatever_the_rest_holds(alice, message):
    """§3 step 2: "a `v` other than 1 is `bad_version`, whatever the rest of the request holds
    (an unknown `type` too)"; §10: `bad_version` "the envelope is there and `v` is an int other
    than 1, whatever the rest holds", `ref` echoed; §10: the checks run "one frame and the
    envelope (`malformed`), then the version (`bad_version`), then the version-1 shape"."""
    answer = error_of(alice.request(message), "bad_version")
    assert answer["ref"] == 10 and answer["detail"] == "this node speaks v1", answer


def test_two_frames_with_another_version_are_malformed(alice):
    """§10: frames are checked before the version."""
    alice.send_frames([encode({"v": 2, "type": "ping", "ref": 1}), b"x"])
    assert error_of(alice.answer(), "malformed")["ref"] is None


def test_version_is_checked_before_the_number_of_commands(alice, market):
    """§10: "... then the version, then (for a `submit`) the number of commands"."""
    cmds = [cancel(market, i, "0xa11ce") for i in range(1001)]
    answer = alice.request({"v": 2, "type": "submit", "cmds": cmds, "ref": "bv"})
    assert error_of(answer, "bad_version")["ref"] == "bv"


# -- too many commands -----------------------------------------------------------------------------


def test_too_many_commands_is_refused_whole(alice, market):
    """§4: "at most `[limits] max_commands_per_message` (default 1000) ... A message with too
    many commands is refused whole (`error`/`too_many_commands`, nothing of it is processed)";
    §10: `too_many_commands` ... `ref` echoed; §6: "a `submit` answered by `error` has no
    `reply`"."""
    cmds = [new(market, f"m{i}", "0xa11ce", "buy", "1") for i in range(1001)]
    answer = alice.request({"v": 1, "type": "submit", "cmds": cmds, "ref": "many"})
    assert error_of(answer, "too_many_commands")["ref"] == "many"
    alice.ping()  # no reply follows the error
    snapshot = alice.snapshot(market)
    assert snapshot["bids"] == [] and snapshot["seq"] == 0, snapshot


def test_the_default_limit_of_1000_commands_is_taken(alice, market):
    """§4: "at most `[limits] max_commands_per_message` (default 1000)": 1000 commands are one
    reply with 1000 answers."""
    cmds = [cancel(market, i, "0xa11ce") for i in range(1000)]
    reply = alice.submit(cmds)
    assert [a["reason"] for a in answers(reply)] == ["unknown_order"] * 1000


# -- snapshot / open_orders message errors ---------------------------------------------------------


def test_snapshot_of_an_unknown_market(alice):
    """§4 snapshot: "Answered by a `snapshot` (§6), or `error`/`unknown_market`"; §10: `ref`
    echoed."""
    answer = alice.request({"v": 1, "type": "snapshot", "market": "NOPE-ETH", "ref": 9})
    assert error_of(answer, "unknown_market")["ref"] == 9


def test_open_orders_of_an_owner_the_peer_may_not_act_for(alice):
    """§4 open_orders: "With an `owner` it may not act for: `error`/`not_authorized`"; §10: `ref`
    echoed."""
    answer = alice.request({"v": 1, "type": "open_orders", "owner": "0xb0b", "ref": "oo"})
    assert error_of(answer, "not_authorized")["ref"] == "oo"
    answer = alice.request({"v": 1, "type": "open_orders", "owner": "0xA11CE", "ref": "case"})
    assert error_of(answer, "not_authorized")["ref"] == "case"  # §3: owners compared exactly


# -- order of answers ------------------------------------------------------------------------------


def test_answers_come_in_request_order_errors_in_their_place(alice, market):
    """§8: "Every request on a connection gets exactly one answer ... and a connection receives
    its answers in the order it sent its requests"; §6: "An `error` answers one request (in its
    place in the order"; §10: "an `error` with `ref` nil answers the oldest request still
    waiting for its answer"."""
    alice.send({"v": 1, "type": "ping", "ref": 1})
    alice.send(
        {"v": 1, "type": "submit", "ref": 2, "cmds": [new(market, "o1", "0xa11ce", "buy", "2")]}
    )
    alice.send_raw(b"\xc1")
    alice.send({"v": 1, "type": "snapshot", "market": market, "ref": 4})
    alice.send({"v": 9, "type": "ping", "ref": 5})
    alice.send({"v": 1, "type": "open_orders", "ref": 6})
    alice.send({"v": 1, "type": "snapshot", "market": "NOPE-ETH", "ref": 7})
    alice.send({"v": 1, "type": "hello", "ref": 8})
    alice.send({"v": 1, "type": "ping", "ref": 9})
    got = [alice.answer() for _ in range(9)]
    assert [(a["type"], a["ref"]) for a in got] == [
        ("pong", 1),
        ("reply", 2),
        ("error", None),
        ("snapshot", 4),
        ("error", 5),
        ("open_orders", 6),
        ("error", 7),
        ("error", 8),
        ("pong", 9),
    ]
    assert got[3]["bids"] == [{"price": "2", "qty": "1", "orders": 1}]
    with pytest.raises(NoAnswer):
        alice.answer(timeout=0.3)  # exactly one answer per request


def test_many_pipelined_requests_are_answered_in_order(alice):
    """§1: "a peer may send many requests without waiting; answers come back in request order"."""
    for i in range(300):
        alice.send({"v": 1, "type": "ping", "ref": i})
    assert [alice.answer()["ref"] for _ in range(300)] == list(range(300))


def test_connections_of_one_key_each_get_their_own_answers(node):
    """§1: "a peer may open several connections with the same key, each gets the answers to its
    own requests"."""
    first, second = node.peer("alice"), node.peer("alice")
    first.send({"v": 1, "type": "ping", "ref": "first"})
    second.send({"v": 1, "type": "ping", "ref": "second"})
    assert first.answer()["ref"] == "first"
    assert second.answer()["ref"] == "second"
    with pytest.raises(NoAnswer):
        first.answer(timeout=QUIET_S / 3)
    first.close()
    second.close()

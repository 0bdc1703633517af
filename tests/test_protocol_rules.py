"""What a client written from docs/protocol.md may rely on about refused messages and commands,
checked with raw MessagePack over a bare DEALER (no client library of this project):

- a command's `peer` (new) or `reason` (cancel), fields only the node sets, of another type than
  str or nil makes that command `malformed` (the other commands go on);
- an `error` carries the request's `ref` whenever the message is a map with str keys, and nil
  when it is not (not MessagePack, not a map, keys that are not str, several frames);
- a message without the envelope every version shares (`v` an int, `type` a str) is `malformed`
  whatever its `v`; with the envelope and a `v` other than 1 it is `bad_version`, whatever the
  rest holds.
"""

from __future__ import annotations

import msgspec
import zmq

PUNK = "PUNK-ETH"
ALICE = "0xa11ce"
WAIT_MS = 5000


def dealer(running, peer: str = "alice") -> zmq.Socket:
    return running.raw_socket(zmq.DEALER, running.address.orders, running.keys[peer])


def exchange(sock: zmq.Socket, message: object) -> dict:
    payload = message if isinstance(message, bytes) else msgspec.msgpack.encode(message)
    sock.send(payload)
    assert sock.poll(WAIT_MS), f"no answer to {payload[:60]!r}"
    return msgspec.msgpack.decode(sock.recv())


def new(order_id: str, **fields: object) -> dict:
    return {"op": "new", "market": PUNK, "id": order_id, "owner": ALICE, "side": "buy",
            "price": "10", "qty": "1", **fields}  # fmt: skip


def test_a_node_set_field_of_another_type_makes_the_command_malformed(running_node):
    alice = dealer(running_node)
    cancel = {"op": "cancel", "market": PUNK, "owner": ALICE}
    commands = [
        new("p-int", peer=5),
        new("p-list", peer=["bob"]),
        new("p-str", peer="bob"),  # a str or nil is ignored: the node sets it
        new("p-nil", peer=None),
        {**cancel, "id": "p-str", "reason": 7},
        {**cancel, "id": "p-nil", "reason": None},
    ]
    reply = exchange(alice, {"v": 1, "type": "submit", "cmds": commands, "ref": 1})
    answers = [e for e in reply["events"] if e["event"] in ("accepted", "rejected")]
    assert [(a["id"], a["event"], a.get("reason")) for a in answers] == [
        ("p-int", "rejected", "malformed"),
        ("p-list", "rejected", "malformed"),
        ("p-str", "accepted", None),
        ("p-nil", "accepted", None),
        ("p-str", "rejected", "malformed"),
        ("p-nil", "accepted", None),
    ]
    for answer in (answers[0], answers[1], answers[4]):
        assert answer["seq"] is None
        assert answer["op"] in ("new", "cancel") and answer["owner"] == ALICE
    assert answers[0]["detail"] == "Expected `str | null`, got `int` - at `$.peer`"
    assert answers[1]["detail"] == "Expected `str | null`, got `array` - at `$.peer`"
    assert answers[4]["detail"] == "Expected `str | null`, got `int` - at `$.reason`"
    # the order whose cancel was malformed still rests; the other was cancelled as `user`
    cancelled = [e for e in reply["events"] if e["event"] == "cancelled"]
    assert [(e["id"], e["reason"]) for e in cancelled] == [("p-nil", "user")]
    listed = exchange(alice, {"v": 1, "type": "open_orders", "ref": 2})
    assert [order["id"] for order in listed["orders"]] == ["p-str"]


def test_an_error_echoes_the_ref_whenever_the_message_is_a_map(running_node):
    alice = dealer(running_node)
    readable = [
        {"v": 1, "type": "hello", "ref": 8},  # an unknown type
        {"v": 1, "ref": 9},  # no type
        {"type": "ping", "ref": 10},  # no v
        {"v": "1", "type": "ping", "ref": 11},  # a v that is not an int
        {"v": 1, "type": "snapshot", "ref": 12},  # a required key missing
        {"v": 1, "type": b"ping", "ref": 13},  # the type sent as bin
    ]
    for message in readable:
        error = exchange(alice, message)
        assert (error["type"], error["reason"], error["ref"]) == (
            "error",
            "malformed",
            message["ref"],
        ), message
        assert error["detail"]
    unreadable = [
        b"\xc1",  # not MessagePack
        msgspec.msgpack.encode([1, "ping", 14]),  # not a map
        msgspec.msgpack.encode({"v": 1, "type": "ping", "ref": 15, 2: 3}),  # a key not a str
        msgspec.msgpack.encode({"v": 1, "type": "ping", "ref": 16}) + b"\x00",  # trailing bytes
    ]
    for payload in unreadable:
        error = exchange(alice, payload)
        assert (error["reason"], error["ref"]) == ("malformed", None), payload
    alice.send_multipart([msgspec.msgpack.encode({"v": 1, "type": "ping", "ref": 17})] * 2)
    assert alice.poll(WAIT_MS)
    error = msgspec.msgpack.decode(alice.recv())
    assert (error["reason"], error["ref"]) == ("malformed", None)


def test_another_version_is_bad_version_only_with_the_shared_envelope(running_node):
    alice = dealer(running_node)
    malformed_in_any_version = [
        {"v": 2, "ref": 1},  # no type
        {"v": 2, "type": 7, "ref": 2},  # a type that is not a str
        {"v": 2, "type": b"ping", "ref": 3},  # a type sent as bin
    ]
    for message in malformed_in_any_version:
        error = exchange(alice, message)
        assert (error["reason"], error["ref"]) == ("malformed", message["ref"]), message
    error = exchange(alice, msgspec.msgpack.encode({"v": 2, "type": "ping", 5: 6}))
    assert (error["reason"], error["ref"]) == ("malformed", None)
    # with the envelope, another version is bad_version whatever the rest holds
    for message in (
        {"v": 2, "type": "ping", "ref": 4},
        {"v": 2, "type": "quote", "ref": 5},
        {"v": 0, "type": "snapshot", "ref": 6},  # no market: malformed in v1, but not v1
    ):
        error = exchange(alice, message)
        assert error == {
            "type": "error",
            "v": 1,
            "reason": "bad_version",
            "detail": "this node speaks v1",
            "ref": message["ref"],
        }

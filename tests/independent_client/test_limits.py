"""The `[limits]` of a node set low: throttling, too many orders, too many commands, the message
size (docs/protocol.md §4, §10, §12), on a node of this module's own."""

from __future__ import annotations

import time

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from .wire import (
    NoAnswer,
    Node,
    PeerSpec,
    answers,
    cancel,
    encode,
    new,
    poll_until,
    standard_markets,
)

LIMITS = {
    ("limits", "peer_rate_per_s"): "1",
    ("limits", "peer_burst"): "8",
    ("limits", "max_open_orders_per_owner"): "3",
    ("limits", "max_commands_per_message"): "12",
    ("limits", "max_message_bytes"): "4096",
}
# the first peer answers the readiness ping (wire.Node.start): a peer of its own, so that the
# buckets of the others are full at their first message
PEERS = [PeerSpec("probe", ("0x70",))] + [PeerSpec(f"t{i}", (f"0x7{i}",)) for i in range(1, 6)] + [
    PeerSpec("o", ("0x0a",)),
    PeerSpec("p", ("0x0b",)),
    PeerSpec("m", ("0x0d",)),
    PeerSpec("cod", ("0x0c",), cancel_on_disconnect=True),
]
MARKETS = standard_markets("P", 6)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = Node(tmp_path_factory.mktemp("limits-node"), peers=PEERS, settings=LIMITS, markets=MARKETS)
    n.create()
    n.start()
    yield n
    n.stop()


@pytest.fixture(scope="module")
def admin(node):
    return node.admin()


def connect(node, name):
    """A peer whose connection is up (its ping answered): the ping takes one token (§4)."""
    peer = node.peer(name)
    peer.ping()
    return peer


def fresh(node, name):
    """A peer that has sent nothing yet: its bucket is full (`peer_burst`) at its first message."""
    return node.peer(name)


def go_on_then_throttled(reply: dict) -> tuple[int, int]:
    """(commands that went on, commands `throttled`); throttled ones must be the last ones."""
    reasons = [a.get("reason") for a in answers(reply)]
    throttled = [i for i, r in enumerate(reasons) if r == "throttled"]
    assert throttled == list(range(len(reasons) - len(throttled), len(reasons))), (
        f"§10: 'the first that many commands, by position in `cmds`, go on, the others will be "
        f"`throttled`': {reasons}"
    )
    for a in answers(reply):
        if a.get("reason") == "throttled":
            assert a["seq"] is None, a
    return len(reasons) - len(throttled), len(throttled)


def test_markets_gives_this_nodes_limits(node):
    """§6 markets: "the limits that apply to this peer" (`[limits]`, §12)."""
    peer = connect(node, "o")
    answer = peer.request({"v": 1, "type": "markets", "ref": 1})
    assert answer["limits"] == {
        "rate_per_s": 1,
        "burst": 8,
        "max_open_orders_per_owner": 3,
        "max_commands_per_message": 12,
        "max_message_bytes": 4096,
    }
    peer.close()


def test_commands_past_the_tokens_are_throttled(node):
    """§10: "the message asks its peer's token bucket for one token per command (all its
    commands, whatever becomes of them) and gets as many as are available; the first that many
    commands, by position in `cmds`, go on, the others will be `throttled`" ("commands rejected
    later for another reason ... still took their token"); §12: `peer_burst`."""
    peer = fresh(node, "t1")
    first = peer.submit(
        [cancel("P01-ETH", i, "0x71") for i in range(12)]
    )  # max_commands_per_message
    assert go_on_then_throttled(first) == (8, 4), first
    assert {a["reason"] for a in answers(first)[:8]} == {"unknown_order"}
    second = peer.submit([cancel("P01-ETH", i, "0x71") for i in range(4)])
    went, throttled = go_on_then_throttled(second)
    assert went <= 1 and throttled >= 3, second  # refilled at 1 token a second
    peer.close()


def test_malformed_commands_take_tokens(node):
    """§10 malformed: "A malformed command still counts for the tokens and positions of step 2"."""
    peer = fresh(node, "t2")
    reply = peer.submit([{"op": "new"}] * 8 + [cancel("P01-ETH", "x", "0x72")] * 2)
    reasons = [a["reason"] for a in answers(reply)]
    assert reasons == ["malformed"] * 8 + ["throttled"] * 2, reasons
    peer.close()


def test_a_disabled_peers_message_takes_no_tokens(node, admin):
    """§10 step 1: "if the peer is disabled: every command of the message will be refused
    `peer_disabled` (and the message takes no tokens)"."""
    peer = fresh(node, "t3")
    admin("disable_peer", peer="t3")
    try:
        reply = peer.submit([cancel("P01-ETH", i, "0x73") for i in range(8)])
        assert [(a["reason"], a["seq"]) for a in answers(reply)] == [("peer_disabled", None)] * 8, (
            reply
        )
    finally:
        admin("enable_peer", peer="t3")
    reply = peer.submit([cancel("P01-ETH", i, "0x73") for i in range(8)])
    assert go_on_then_throttled(reply) == (8, 0), reply
    peer.close()


def test_one_bucket_per_peer_shared_by_its_connections(node):
    """§10 throttled: "one bucket per peer shared by all its connections"; §12: "token bucket per
    peer (shared by its connections)"."""
    first, second = connect(node, "t4"), connect(node, "t4")
    assert go_on_then_throttled(first.submit([cancel("P01-ETH", i, "0x74") for i in range(5)])) == (
        5,
        0,
    )
    went, throttled = go_on_then_throttled(
        second.submit([cancel("P01-ETH", i, "0x74") for i in range(5)])
    )
    assert went < 5 and throttled >= 1, (went, throttled)
    first.close()
    second.close()


def test_every_request_takes_tokens(node):
    """§4: "Every request takes rate-limit tokens from its peer's bucket [...] A request other
    than a `submit` with commands, when the bucket lacks its tokens, is answered
    `error`/`throttled` instead (and takes none)"; a message with too many commands "is refused
    whole (... nothing of it is processed)"."""
    peer = fresh(node, "t5")
    answer = peer.request(
        {
            "v": 1,
            "type": "submit",
            "ref": "big",
            "cmds": [cancel("P01-ETH", i, "0x75") for i in range(13)],
        }
    )
    assert (answer["type"], answer["reason"], answer["ref"]) == (
        "error",
        "too_many_commands",
        "big",
    ), answer
    kinds = []
    for ref in range(12):  # burst 8, refilled at 1 a second: some of 12 pings must go short
        peer.send({"v": 1, "type": "ping", "ref": ref})
    for ref in range(12):
        answer = peer.answer()
        assert answer["ref"] == ref, answer
        kinds.append(answer["type"] if answer["type"] == "pong" else answer["reason"])
    assert kinds[:8] == ["pong"] * 8, kinds  # the refused submit took none of the 8
    assert "throttled" in kinds[8:], kinds
    peer.close()


def test_too_many_orders_per_owner_across_markets(node):
    """§10: `too_many_orders` "(`new`) the owner already has `[limits]
    max_open_orders_per_owner` resting orders across all markets", `seq` nil; §12."""
    peer = fresh(node, "p")
    reply = peer.submit(
        [
            new("P02-ETH", "o1", "0x0b", "buy", "1"),
            new("P03-ETH", "o2", "0x0b", "buy", "1"),
            new("P02-ETH", "o3", "0x0b", "sell", "9"),
        ]
    )
    assert [a["event"] for a in answers(reply)] == ["accepted"] * 3, reply
    reply = peer.submit([new("P04-ETH", "o4", "0x0b", "buy", "1")])
    (answer,) = answers(reply)
    assert (answer["event"], answer["reason"], answer["seq"]) == (
        "rejected",
        "too_many_orders",
        None,
    ), reply
    reply = peer.submit([cancel("P02-ETH", "o1", "0x0b"), new("P04-ETH", "o4", "0x0b", "buy", "1")])
    assert [a["event"] for a in answers(reply)] == ["accepted", "accepted"], reply
    peer.close()


def _monitored(peer):
    return peer.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)


def _wait_event(monitor, event, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if monitor.poll(100) and recv_monitor_message(monitor)["event"] == event:
            return True
    return False


def padded_ping(size: int, ref: str) -> bytes:
    """A ping of exactly `size` bytes (an unknown key pads it, §3: ignored)."""
    message = {"v": 1, "type": "ping", "ref": ref, "pad": ""}
    base = len(encode(message))
    pad = "x" * (size - base)
    payload = encode({**message, "pad": pad})
    while len(payload) > size:  # the str header grew
        pad = pad[:-1]
        payload = encode({**message, "pad": pad})
    assert len(payload) == size, (len(payload), size)
    return payload


def test_a_message_of_the_limit_is_taken_a_larger_one_closes_the_connection(node):
    """§12 `max_message_bytes`: "a message to the order socket over this limit is dropped by the
    node's ZeroMQ library and the connection is closed: no answer, no `error`. The limit is your
    message's own size"; "a libzmq client socket reconnects by itself, as a new connection"."""
    peer = node.peer("m")
    monitor = _monitored(peer)
    peer.ping()  # answered: the handshake is done (it may be before the monitor was attached)
    peer.send_raw(padded_ping(4096, "at-limit"))
    assert peer.answer() == {"type": "pong", "v": 1, "ref": "at-limit"}
    peer.send_raw(padded_ping(4097, "over"))
    assert _wait_event(monitor, zmq.EVENT_DISCONNECTED), "§12: the connection is closed"
    assert _wait_event(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED), "libzmq reconnects by itself"
    peer.send({"v": 1, "type": "ping", "ref": "after"})
    assert peer.answer() == {"type": "pong", "v": 1, "ref": "after"}, (
        "no answer to the oversized one"
    )
    with pytest.raises(NoAnswer):
        peer.answer(timeout=0.3)
    peer.sock.disable_monitor()
    monitor.close(linger=0)
    peer.close()


def test_an_oversized_message_drops_a_cancel_on_disconnect_peers_orders(node, admin):
    """§12: "When the last connection of a peer registered with `--cancel-on-disconnect` goes
    (... or the node dropped the connection: a heartbeat time-out or an oversized message), the
    node cancels every resting order that peer placed (`cancelled` events with reason
    `disconnect`"; §9: "after reconnecting, `open_orders` tells what is left (nothing the peer
    placed)"."""
    peer = connect(node, "cod")
    peer.submit([new("P05-ETH", "c1", "0x0c", "buy", "2", "1")])
    peer.send_raw(padded_ping(5000, "over"))
    def cancelled():  # asked on the admin socket: a snapshot costs most of this node's burst
        return admin("book", market="P05-ETH")["bids"] == []

    poll_until(cancelled, what="the cod peer's order cancelled after the node dropped it")
    peer.send({"v": 1, "type": "open_orders", "ref": "left"})
    answer = peer.answer()
    assert (answer["type"], answer["ref"], answer["orders"]) == ("open_orders", "left", []), answer
    peer.close()

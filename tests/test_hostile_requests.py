"""No request is free: pings, snapshots, open_orders, markets, whoami and empty submits take
tokens from their peer's bucket and are answered `throttled` past it, so a peer flooding them
gets throttled while another peer is served in full; and a batch takes a connection's share,
so whoever shares a batch with a flood does not wait for all of it (issue 12, item 2)."""

from __future__ import annotations

import threading

import zmq

from marketnode.node.client import ClientError
from marketnode.node.protocol.messages import (
    PROTOCOL_VERSION,
    ErrorReply,
    Pong,
    encoder,
    node_reply_decoder,
)
from marketnode.node.server.intake import READS_PER_BATCH, SUBMITS_PER_BATCH, FairShare

ALICE = "0xa11ce"
BOB = "0xb0b"
FLOOD = 3000
"""Pings the flooding peer sends back to back (bounded: about a second of the node's work)."""


def request(kind: str, ref: int, **fields) -> bytes:
    return encoder.encode({"v": PROTOCOL_VERSION, "type": kind, "ref": ref, **fields})


def flood(sock: zmq.Socket, count: int) -> list:
    """Send `count` pings as fast as the socket takes them, reading the answers as they come
    (a peer that does not read loses answers past `[limits] send_queue_messages`)."""
    answers = []

    def read(timeout_ms: int) -> None:
        while len(answers) < count and sock.poll(timeout_ms):
            answers.append(node_reply_decoder.decode(sock.recv()))
            timeout_ms = 0

    for ref in range(count):
        sock.send(request("ping", ref))
        read(0)
    while len(answers) < count and sock.poll(30_000):
        read(0)
    return answers


def test_a_ping_flood_is_throttled_and_another_peer_is_served_in_full(node_factory):
    running = node_factory(
        "[limits]\npeer_rate_per_s = 100\npeer_burst = 200\n", {"alice": (ALICE,), "bob": (BOB,)}
    )
    flooder = running.raw_socket(zmq.DEALER, running.address.orders, running.keys["alice"])
    bob = running.client("bob", timeout_s=30)
    answers: list = []
    flooding = threading.Thread(target=lambda: answers.extend(flood(flooder, FLOOD)))
    flooding.start()
    honest = []
    for _ in range(20):
        honest.append(type(bob.ping()))
        honest.append(bob.submit([]).events)
    flooding.join(timeout=60)
    assert not flooding.is_alive()
    # every request of the flood is answered, once, in order; most of them `throttled`
    assert [answer.ref for answer in answers] == list(range(FLOOD))
    throttled = [a for a in answers if type(a) is ErrorReply and a.reason == "throttled"]
    pongs = [a for a in answers if type(a) is Pong]
    assert len(throttled) + len(pongs) == FLOOD
    assert len(throttled) > FLOOD // 2, f"only {len(throttled)} of {FLOOD} pings throttled"
    # the other peer has a bucket of its own: all its requests were answered, none throttled
    assert honest == [Pong, []] * 20
    assert running.admin().call("status")["seq"] == 0


def test_a_snapshot_costs_more_than_a_ping_and_an_empty_submit_costs_one(node_factory):
    # one token a second: the calls below come well within a second of each other
    running = node_factory("[limits]\npeer_rate_per_s = 1\npeer_burst = 12\n", {"alice": (ALICE,)})
    alice = running.client("alice")
    assert alice.snapshot("PUNK-ETH").market == "PUNK-ETH"  # 10 of 12 tokens
    try:
        alice.snapshot("PUNK-ETH")
        raise AssertionError("a second snapshot was answered with 2 tokens left")
    except ClientError as error:
        assert str(error).startswith("throttled: this request takes 10 tokens")
    assert type(alice.ping()) is Pong  # 1 token
    assert alice.submit([]).events == []  # the last token
    for call in (
        alice.ping,
        alice.whoami,
        alice.markets,
        alice.open_orders,
        lambda: alice.submit([]),
    ):
        try:
            call()
            raise AssertionError(f"{call} was answered with no tokens left")
        except ClientError as error:
            assert str(error).startswith("throttled"), error


def test_a_batch_takes_a_share_of_one_connections_reads_and_submits():
    share = FairShare()
    lone, other = b"\0lone", b"\0other"
    # reads: a batch ends at READS_PER_BATCH of one connection, whoever else is in it
    assert not any(share.full(lone, is_read=True) for _ in range(READS_PER_BATCH - 1))
    assert share.full(lone, is_read=True)
    # submits: a lone connection keeps the whole batch (its group commit) ...
    share.clear()
    assert not any(share.full(lone, is_read=False) for _ in range(10 * SUBMITS_PER_BATCH))
    # ... and has a share of it once another connection is waiting in the same batch
    share.clear()
    assert not share.full(other, is_read=False)
    assert not any(share.full(lone, is_read=False) for _ in range(SUBMITS_PER_BATCH - 1))
    assert share.full(lone, is_read=False)


def test_one_connections_reads_are_answered_in_batches_of_its_share(node_factory):
    running = node_factory("", {"alice": (ALICE,)})
    flooder = running.raw_socket(zmq.DEALER, running.address.orders, running.keys["alice"])
    metrics = running.node.metrics
    batches_before = metrics.batches
    answers = flood(flooder, FLOOD)
    assert [answer.ref for answer in answers] == list(range(FLOOD))
    # never more than READS_PER_BATCH of them in one batch, answered before the next is read
    assert metrics.batches - batches_before >= FLOOD // READS_PER_BATCH

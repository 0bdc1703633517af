"""The running node end to end: order entry and its answers, execution reports, market data,
durability, restart, and `mnode start/status/stop`, over real sockets, CURVE and a real store."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import psutil
import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.client import Client, ClientError, address_of_home
from marketnode.node.home.keys import PEERS_FOLDER, load_key_pair
from marketnode.node.home.layout import Home
from marketnode.node.protocol.messages import (
    PROTOCOL_VERSION,
    ErrorReply,
    OpenOrdersReply,
    Pong,
    Reply,
    Report,
    SnapshotReply,
    encoder,
    market_data_decoder,
    market_topic,
)
from marketnode.node.server.node import Node, NodeError
from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.statehash import order_from_record
from tests.conftest import LOOPBACK_ENDPOINTS, start_node

PUNK = "PUNK-ETH"
LAND = "LAND-ETH"
GOLD = "GOLD-USDC"
ALICE = "0xa11ce"
BOB = "0xb0b"
CAROL = "0xca401"
STEPS = {PUNK: ("0.01", "1"), LAND: ("0.001", "1"), GOLD: ("0.05", "0.1")}
"""(tick_size, lot_size) of the default markets."""

runner = CliRunner()


# -- helpers ----------------------------------------------------------------------------------


def new(order_id, side, price, qty, owner, market=PUNK, **fields) -> dict:
    command = {"op": "new", "market": market, "id": order_id, "owner": owner, "side": side}
    command["qty"] = qty
    if price is not None:
        command["price"] = price
    command.update(fields)
    return command


def cancel(order_id, owner, market=PUNK) -> dict:
    return {"op": "cancel", "market": market, "id": order_id, "owner": owner}


def replace(order_id, owner, market=PUNK, **fields) -> dict:
    return {"op": "replace", "market": market, "id": order_id, "owner": owner, **fields}


def builtins(message) -> list[dict]:
    return msgspec.to_builtins(message.events)


def submit(client: Client, commands: list) -> list[dict]:
    return builtins(client.submit(commands))


def answers(events: list[dict]) -> list[dict]:
    return [event for event in events if event["event"] in ("accepted", "rejected")]


def outcome(events: list[dict]) -> list[tuple]:
    return [(a["event"], a.get("reason"), a["id"]) for a in answers(events)]


def report_events(client: Client, wanted: int, timeout_ms: int = 5000) -> list[dict]:
    """At least `wanted` execution-report events, waiting up to the timeout for each report."""
    events: list[dict] = []
    while len(events) < wanted:
        report = client.next_report(timeout_ms)
        assert report is not None, f"expected {wanted} reported events, got {events}"
        events.extend(builtins(report))
    return events


def no_reports(client: Client) -> None:
    """Nothing was pushed to this peer: a ping answered after every earlier batch proves it,
    since a batch's reports leave before any later message is answered."""
    client.ping()
    assert not client.reports, [builtins(report) for report in client.reports]


def book_of(levels) -> dict:
    return {(level["side"], level["price"]): (level["qty"], level["orders"]) for level in levels}


def snapshot_book(snapshot: SnapshotReply) -> dict:
    book = {}
    for side, levels in (("buy", snapshot.bids), ("sell", snapshot.asks)):
        for level in levels:
            book[side, level.price] = (level.qty, level.orders)
    return book


def apply_levels(book: dict, levels) -> None:
    for change in levels:
        if change.qty == "0":
            assert change.orders == 0
            book.pop((change.side, change.price), None)
        else:
            book[change.side, change.price] = (change.qty, change.orders)


def warmed_subscriber(running, peer: str, client: Client, owner: str, markets: list[str]):
    """A subscriber whose subscriptions are live (PUB/SUB slow joiner), caught up with every
    market's topic up to now: it has received every message up to the snapshot's seq."""
    subscriber = running.subscriber(peer, markets)
    deadline = time.monotonic() + 10
    attempt = 0
    while True:
        attempt += 1
        order_id = f"warm-{peer}-{attempt}"
        price = "0.01" if markets[0] != GOLD else "0.05"
        qty = "1" if markets[0] != GOLD else "0.1"
        client.submit(
            [
                new(order_id, "buy", price, qty, owner, markets[0]),
                cancel(order_id, owner, markets[0]),
            ]
        )
        if subscriber.receive(100) is not None:
            break
        assert time.monotonic() < deadline, "the subscriber never got a message"
    for market in markets:
        catch_up(subscriber, market, client.snapshot(market).seq)
    return subscriber


def catch_up(subscriber, market: str, seq: int) -> None:
    """Receive until the topic's last seq is `seq` (messages of other topics are taken too)."""
    while subscriber.last_seq.get(market, 0) < seq:
        assert subscriber.receive(5000) is not None, f"{market} message {seq} never came"


def stop_verified(running) -> None:
    """Stop the node; `mnode verify` must then pass on its home."""
    running.stop()
    result = runner.invoke(app, ["verify", "--home", str(running.home.path)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ")


def stored_orders(home: Home) -> dict:
    """(market, owner, id) -> (is_buy, price units, remaining units) as stored."""
    store = Store(home.store_path(home.config()), readonly=True)
    try:
        _state, records = store.snapshot()
    finally:
        store.close()
    orders = {}
    for key, value in records:
        order = order_from_record(key, value)
        orders[order.market, order.owner, order.id] = (order.is_buy, order.price, order.remaining)
    return orders


def units(text: str, step: str) -> int:
    whole, rest = divmod(Decimal(text), Decimal(step))
    assert rest == 0
    return int(whole)


# -- order entry ------------------------------------------------------------------------------


def test_every_command_gets_one_answer_in_command_order(running_node):
    alice = running_node.client("alice")
    commands = [
        new("a1", "sell", "100", "2", ALICE),
        new("a2", "sideways", "99", "1", ALICE),
        {"op": "new", "market": PUNK, "id": "a3", "side": "buy", "price": "1", "qty": "1"},
        cancel("nope", ALICE),
        new(7, "buy", "99.5", "3", ALICE),
        new("a1", "sell", "100", "1", ALICE),
        cancel("a1", ALICE),
        new("a1", "sell", "100", "1", ALICE),
        new("a4", "buy", "1.001", "1", ALICE),
        {"op": "explode", "id": "a5", "owner": ALICE},
        new("a6", "buy", "99", "1", ALICE, market="NOPE-ETH"),
    ]
    ref = alice.send_submit(commands)
    reply = alice.receive()
    assert type(reply) is Reply
    assert reply.ref == ref
    events = builtins(reply)
    assert outcome(events) == [
        ("accepted", None, "a1"),
        ("rejected", "bad_side", "a2"),
        ("rejected", "malformed", "a3"),
        ("rejected", "unknown_order", "nope"),
        ("accepted", None, 7),
        ("rejected", "duplicate_id", "a1"),
        ("accepted", None, "a1"),
        ("accepted", None, "a1"),
        ("rejected", "off_tick", "a4"),
        ("rejected", "malformed", "a5"),
        ("rejected", "unknown_market", "a6"),
    ]
    for answer, command in zip(answers(events), commands, strict=True):
        assert answer["op"] == command["op"]
        assert answer["owner"] == command.get("owner")
    malformed = [a for a in answers(events) if a.get("reason") == "malformed"]
    assert all(a["seq"] is None and a["detail"] for a in malformed)
    # every other event is sequenced: one gapless, increasing counter
    seqs = [event["seq"] for event in events if event["seq"] is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    # the answer comes first, then the command's other events
    kinds = [event["event"] for event in events]
    assert kinds[:2] == ["accepted", "rested"]
    assert kinds[kinds.index("accepted", 3) :][:2] == ["accepted", "rested"]
    cancelled = [event for event in events if event["event"] == "cancelled"]
    assert [(c["id"], c["reason"], c["qty"], c["remaining"]) for c in cancelled] == [
        ("a1", "user", "2", "0")
    ]
    open_orders = alice.open_orders()
    assert sorted((o.id, o.side, o.price, o.qty) for o in open_orders.orders if o.id != 7) == [
        ("a1", "sell", "100", "1")
    ]
    assert [(o.price, o.qty) for o in open_orders.orders if o.id == 7] == [("99.5", "3")]


def test_replies_come_back_in_request_order(running_node):
    alice = running_node.client("alice")
    sent = []
    for ref in range(5, 85):
        kind = ref % 5
        if kind == 0:
            body = {"type": "submit", "cmds": [new(f"o{ref}", "buy", "50", "1", ALICE)]}
        elif kind == 1:
            body = {"type": "ping"}
        elif kind == 2:
            body = {"type": "snapshot", "market": PUNK}
        elif kind == 3:
            body = {"type": "open_orders"}
        else:
            body = {"type": "submit", "cmds": [cancel(f"o{ref - 4}", ALICE)]}
        alice.socket.send(encoder.encode({"v": PROTOCOL_VERSION, **body, "ref": ref}))
        sent.append((ref, body["type"]))
        if ref % 20 == 0:
            alice.socket.send(b"\xc1 not msgpack")
            sent.append((None, "garbage"))
    kinds = {
        "submit": Reply,
        "ping": Pong,
        "snapshot": SnapshotReply,
        "open_orders": OpenOrdersReply,
        "garbage": ErrorReply,
    }
    for ref, kind in sent:
        message = alice.receive()
        assert message is not None, f"no answer to ref {ref}"
        assert type(message) is kinds[kind], (ref, message)
        assert message.ref == ref
        if kind == "submit":
            assert [a["event"] for a in answers(builtins(message))] == ["accepted"]
    assert alice.receive(0) is None


def test_fills_are_reported_to_the_maker_peer_and_to_no_one_else(node_factory):
    running = node_factory(peers={"alice": (ALICE,), "bob": (BOB,), "carol": (CAROL,)})
    alice, bob, carol = (running.client(name) for name in ("alice", "bob", "carol"))
    assert outcome(submit(carol, [new("c1", "buy", "1", "1", CAROL)])) == [("accepted", None, "c1")]
    rested = submit(
        alice, [new("s1", "sell", "100", "2", ALICE), new("s2", "sell", "101", "3", ALICE)]
    )
    assert [event["event"] for event in rested] == ["accepted", "rested", "accepted", "rested"]

    events = submit(bob, [new("b1", "buy", "101", "4", BOB)])
    assert [event["event"] for event in events] == ["accepted", "trade", "trade"]
    trades = events[1:]
    assert [
        (t["maker_id"], t["maker_owner"], t["taker_id"], t["taker_owner"], t["price"], t["qty"])
        for t in trades
    ] == [("s1", ALICE, "b1", BOB, "100", "2"), ("s2", ALICE, "b1", BOB, "101", "2")]
    assert [(t["maker_remaining"], t["taker_remaining"], t["aggressor"]) for t in trades] == [
        ("0", "2", "buy"),
        ("1", "0", "buy"),
    ]

    reported = report_events(alice, 2)
    assert reported == trades
    no_reports(alice)
    no_reports(bob)
    no_reports(carol)
    # the partly filled maker rests with what is left
    assert [(o.id, o.qty) for o in alice.open_orders().orders] == [("s2", "1")]


def test_reports_follow_the_peer_to_its_new_connection(running_node):
    first = running_node.client("alice")
    bob = running_node.client("bob")
    submit(first, [new("s1", "sell", "100", "1", ALICE)])
    first.close()
    # the peer comes back on a new connection: an empty submit gets an empty reply and makes
    # this the connection its reports go to
    second = running_node.client("alice")
    reply = second.submit([])
    assert reply.events == []
    assert [o.id for o in second.open_orders().orders] == ["s1"]
    events = submit(bob, [new("b1", "buy", "100", "1", BOB)])
    assert [e["event"] for e in events] == ["accepted", "trade"]
    assert report_events(second, 1) == events[1:]
    metrics = running_node.admin().call("metrics")
    assert metrics["reports_dropped"] == 0 and metrics["settlement"] == "off"


def test_market_and_ioc_orders_never_rest(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    submit(alice, [new("s1", "sell", "100", "2", ALICE), new("s2", "sell", "102", "2", ALICE)])

    events = submit(bob, [new("m1", "buy", None, "5", BOB, type="market")])
    assert [event["event"] for event in events] == ["accepted", "trade", "trade", "cancelled"]
    assert [(t["price"], t["qty"]) for t in events[1:3]] == [("100", "2"), ("102", "2")]
    assert {k: events[3][k] for k in ("id", "reason", "qty", "remaining")} == {
        "id": "m1",
        "reason": "ioc",
        "qty": "1",
        "remaining": "0",
    }
    assert report_events(alice, 2) == events[1:3]

    submit(alice, [new("s3", "sell", "100", "3", ALICE)])
    events = submit(bob, [new("i1", "buy", "100", "5", BOB, tif="IOC")])
    assert [event["event"] for event in events] == ["accepted", "trade", "cancelled"]
    assert (events[1]["qty"], events[2]["reason"], events[2]["qty"]) == ("3", "ioc", "2")
    assert report_events(alice, 1) == events[1:2]

    # nothing opposite: a market order is accepted and cancelled whole
    events = submit(bob, [new("m2", "sell", None, "1", BOB, type="market")])
    assert [(e["event"], e.get("reason")) for e in events] == [
        ("accepted", None),
        ("cancelled", "ioc"),
    ]
    assert bob.open_orders().orders == []
    assert alice.open_orders().orders == []


def test_a_replace_that_crosses_trades_and_reports_to_the_maker(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    submit(alice, [new("s1", "sell", "100", "2", ALICE)])
    submit(bob, [new("b1", "buy", "99", "3", BOB)])
    events = submit(bob, [replace("b1", BOB, price="100")])
    assert [e["event"] for e in events] == ["accepted", "replaced", "trade", "rested"]
    assert events[1]["in_place"] is False
    assert (events[2]["maker_id"], events[2]["qty"], events[3]["qty"]) == ("s1", "2", "1")
    assert report_events(alice, 1) == events[2:3]
    # in place: smaller quantity, same price, priority kept
    events = submit(bob, [replace("b1", BOB, qty="1")])
    assert [e["event"] for e in events] == ["accepted", "replaced"]
    assert events[1]["in_place"] is True
    no_reports(alice)


def test_self_trade_prevention_events_go_to_the_peer_of_each_order(running_node):
    running_node.add_peer("alice2", (ALICE,))
    alice, alice2 = running_node.client("alice"), running_node.client("alice2")

    # cancel_oldest: the resting order is cancelled (its peer is told), the taker rests; the
    # taker's reply holds every event of its command
    submit(alice, [new("m1", "sell", "100", "2", ALICE)])
    events = submit(alice2, [new("t1", "buy", "100", "1", ALICE, stp="cancel_oldest")])
    assert [(e["event"], e["id"]) for e in events] == [
        ("accepted", "t1"),
        ("cancelled", "m1"),
        ("rested", "t1"),
    ]
    [cancelled] = report_events(alice, 1)
    assert cancelled == events[1]
    assert {k: cancelled[k] for k in ("id", "owner", "reason", "qty", "remaining")} == {
        "id": "m1",
        "owner": ALICE,
        "reason": "stp",
        "qty": "2",
        "remaining": "0",
    }

    # cancel_newest (LAND-ETH's default): only the taker is cancelled, in its own reply
    submit(alice, [new("m2", "sell", "2", "5", ALICE, market=LAND)])
    events = submit(alice2, [new("t2", "buy", "2", "3", ALICE, market=LAND)])
    assert [(e["event"], e.get("id"), e.get("reason")) for e in events] == [
        ("accepted", "t2", None),
        ("cancelled", "t2", "stp"),
    ]
    no_reports(alice)

    # decrement (GOLD-USDC's default): both lose the smaller quantity, each told on its own
    submit(alice, [new("m3", "sell", "2000", "1", ALICE, market=GOLD)])
    events = submit(alice2, [new("t3", "buy", "2000", "0.3", ALICE, market=GOLD)])
    assert [(e["event"], e.get("id"), e.get("qty"), e.get("remaining")) for e in events] == [
        ("accepted", "t3", None, None),
        ("cancelled", "m3", "0.3", "0.7"),
        ("cancelled", "t3", "0.3", "0"),
    ]
    [maker] = report_events(alice, 1)
    assert maker == events[1]
    assert maker["reason"] == "stp"
    no_reports(alice2)
    assert sorted((o.market, o.id, o.qty) for o in alice.open_orders().orders) == [
        (GOLD, "m3", "0.7"),
        (LAND, "m2", "5"),
        (PUNK, "t1", "1"),
    ]


def test_open_orders_are_limited_to_the_peers_owners(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    submit(alice, [new("a1", "buy", "10", "1", ALICE)])
    submit(bob, [new("b1", "buy", "11", "1", BOB)])
    assert [(o.owner, o.id) for o in alice.open_orders().orders] == [(ALICE, "a1")]
    assert [(o.owner, o.id) for o in bob.open_orders(BOB).orders] == [(BOB, "b1")]
    with pytest.raises(ClientError, match="not_authorized"):
        bob.open_orders(ALICE)


# -- market data ------------------------------------------------------------------------------


def test_market_data_one_topic_per_market_gapless_with_level_totals(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    both = warmed_subscriber(running_node, "bob", bob, BOB, [PUNK, LAND])
    land_only = warmed_subscriber(running_node, "alice", alice, ALICE, [LAND])
    catch_up(both, LAND, bob.snapshot(LAND).seq)
    punk_seq, land_seq = both.last_seq[PUNK], both.last_seq[LAND]
    assert land_only.last_seq[LAND] == land_seq

    # one batch touching two markets: one message per topic
    submit(
        alice,
        [
            new("s1", "sell", "100", "2", ALICE),
            new("s2", "sell", "100", "3", ALICE),
            new("s3", "sell", "101", "1", ALICE),
            new("l1", "sell", "2.5", "5", ALICE, market=LAND),
        ],
    )
    messages = {}
    for _ in range(2):
        assert both.socket.poll(10_000), f"one message per topic: got only {list(messages)}"
        topic, payload = both.socket.recv_multipart()
        message = market_data_decoder.decode(payload)
        assert topic == market_topic(message.market)
        messages[message.market] = message
        both.last_seq[message.market] = message.seq
    assert messages[PUNK].seq == punk_seq + 1
    assert messages[LAND].seq == land_seq + 1
    assert messages[PUNK].trades == []
    assert book_of(msgspec.to_builtins(messages[PUNK].levels)) == {
        ("sell", "100"): ("5", 2),
        ("sell", "101"): ("1", 1),
    }
    assert book_of(msgspec.to_builtins(messages[LAND].levels)) == {("sell", "2.5"): ("5", 1)}

    # the LAND-only subscriber gets LAND and nothing of PUNK
    message = land_only.receive(5000)
    assert (message.market, message.seq) == (LAND, land_seq + 1)

    # a trade: the tape, and the level's new total (not a difference)
    trade_events = submit(bob, [new("b1", "buy", "100", "4", BOB)])
    message = both.receive(5000)
    assert (message.market, message.seq) == (PUNK, punk_seq + 2)
    assert [(t.price, t.qty, t.aggressor) for t in message.trades] == [
        ("100", "2", "buy"),
        ("100", "2", "buy"),
    ]
    assert [t.seq for t in message.trades] == [
        e["seq"] for e in trade_events if e["event"] == "trade"
    ]
    assert book_of(msgspec.to_builtins(message.levels)) == {("sell", "100"): ("1", 1)}

    submit(bob, [new("l2", "buy", "1", "1", BOB, market=LAND)])
    message = land_only.receive(5000)
    assert (message.market, message.seq) == (LAND, land_seq + 2)
    assert both.gaps == 0
    assert land_only.gaps == 0
    assert land_only.last_seq.keys() == {LAND}


def test_a_subscriber_detects_a_gap_and_resynchronises_from_a_snapshot(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    first = warmed_subscriber(running_node, "bob", bob, BOB, [PUNK])
    submit(alice, [new("s1", "sell", "100", "4", ALICE)])
    assert first.receive(5000) is not None
    remembered = (dict(first.last_seq), dict(first.runs))
    first.close()

    # while nobody listens: three more messages
    submit(alice, [new("s2", "sell", "101", "2", ALICE)])
    submit(bob, [new("b1", "buy", "100", "1", BOB)])
    submit(alice, [new("s3", "sell", "100", "1", ALICE)])

    # the consumer comes back and continues from where it was: it sees the jump
    second = running_node.subscriber("bob", [PUNK])
    second.last_seq.update(remembered[0])
    second.runs.update(remembered[1])
    deadline = time.monotonic() + 10
    attempt = 0
    while second.receive(100) is None:
        attempt += 1
        submit(bob, [new(f"w{attempt}", "buy", "1", "1", BOB), cancel(f"w{attempt}", BOB)])
        assert time.monotonic() < deadline
    assert second.gaps >= 3

    snapshot = bob.snapshot(PUNK)
    catch_up(second, PUNK, snapshot.seq)
    gaps = second.gaps
    second.resynchronised(snapshot)
    book = snapshot_book(snapshot)
    assert book == {("sell", "100"): ("4", 2), ("sell", "101"): ("2", 1)}

    submit(alice, [new("s4", "sell", "100", "2", ALICE), new("s5", "buy", "99", "1", ALICE)])
    submit(bob, [new("b2", "buy", "101", "7", BOB), cancel("b2", BOB)])
    submit(alice, [replace("s5", ALICE, price="98")])
    for expected_seq in range(snapshot.seq + 1, snapshot.seq + 4):
        message = second.receive(5000)
        assert message.seq == expected_seq
        apply_levels(book, message.levels)
        # a level change is a total: applying it twice changes nothing
        again = dict(book)
        apply_levels(again, message.levels)
        assert again == book
    assert second.gaps == gaps
    final = bob.snapshot(PUNK)
    assert final.seq == snapshot.seq + 3
    assert book == snapshot_book(final) == {("buy", "98"): ("1", 1), ("sell", "101"): ("1", 1)}


def test_a_snapshot_of_an_unknown_market_is_an_error(running_node):
    alice = running_node.client("alice")
    with pytest.raises(ClientError, match="unknown_market"):
        alice.snapshot("NOPE-ETH")
    alice.ping()


# -- durability and restart -------------------------------------------------------------------


def _random_flow(rng: random.Random, count: int) -> list[tuple[str, list[dict]]]:
    """(peer, commands) messages over PUNK-ETH and GOLD-USDC: limit orders around one price,
    some crossing, IOC/FOK/post-only and market orders, cancels and replaces."""
    owners = {"alice": ALICE, "bob": BOB}
    placed: dict[str, list[tuple[str, str]]] = {"alice": [], "bob": []}
    messages = []
    number = 0
    while number < count:
        peer = rng.choice(("alice", "bob"))
        owner = owners[peer]
        commands = []
        for _ in range(rng.randint(1, 6)):
            number += 1
            market = rng.choice((PUNK, GOLD))
            roll = rng.random()
            if roll < 0.65 or not placed[peer]:
                order_id = f"{peer}-{number}"
                if market == PUNK:
                    price = str(Decimal(rng.randint(196, 204)) / 2)
                    qty = str(rng.randint(1, 5))
                else:
                    price = str(Decimal(rng.randint(39_990, 40_010)) * Decimal("0.05"))
                    qty = str(Decimal(rng.randint(1, 20)) / 10)
                fields = {}
                kind = rng.random()
                if kind < 0.08:
                    fields["type"] = "market"
                    price = None
                elif kind < 0.3:
                    fields["tif"] = rng.choice(("IOC", "FOK", "POST_ONLY"))
                commands.append(
                    new(order_id, rng.choice(("buy", "sell")), price, qty, owner, market, **fields)
                )
                placed[peer].append((market, order_id))
            elif roll < 0.85:
                market, order_id = rng.choice(placed[peer])
                commands.append(cancel(order_id, owner, market))
            else:
                market, order_id = rng.choice(placed[peer])
                qty = (
                    str(rng.randint(1, 5))
                    if market == PUNK
                    else str(Decimal(rng.randint(1, 20)) / 10)
                )
                commands.append(replace(order_id, owner, market, qty=qty))
        messages.append((peer, commands))
    return messages


def _expected_resting(events: dict[int, dict]) -> dict:
    """(market, owner, id) -> (side, price, remaining) of every order the events leave resting."""
    resting: dict = {}
    for seq in sorted(events):
        event = events[seq]
        kind = event["event"]
        if kind == "rested":
            key = (event["market"], event["owner"], event["id"])
            resting[key] = (event["side"], event["price"], event["qty"])
        elif kind == "trade":
            key = (event["market"], event["maker_owner"], event["maker_id"])
            side, price, _ = resting[key]
            if Decimal(event["maker_remaining"]):
                resting[key] = (side, price, event["maker_remaining"])
            else:
                del resting[key]
        elif kind == "cancelled":
            key = (event["market"], event["owner"], event["id"])
            if key in resting:
                side, price, _ = resting[key]
                if Decimal(event["remaining"]):
                    resting[key] = (side, price, event["remaining"])
                else:
                    del resting[key]
        elif kind == "replaced":
            key = (event["market"], event["owner"], event["id"])
            if event["in_place"]:
                resting[key] = (event["side"], event["price"], event["qty"])
            else:
                del resting[key]
    return resting


def test_every_answered_order_is_in_the_store_or_accounted_for(running_node):
    clients = {name: running_node.client(name) for name in ("alice", "bob")}
    flow = _random_flow(random.Random(20240601), 400)
    replies: dict[str, list] = {"alice": [], "bob": []}
    outstanding: dict[str, list[int]] = {"alice": [], "bob": []}
    sent: dict[str, list[list[dict]]] = {"alice": [], "bob": []}

    def collect(name: str) -> None:
        client = clients[name]
        while outstanding[name]:
            message = client.receive()
            assert message is not None
            if type(message) is Report:
                client.reports.append(message)
                continue
            assert type(message) is Reply
            assert message.ref == outstanding[name].pop(0), "replies out of request order"
            replies[name].append(builtins(message))

    for index, (name, commands) in enumerate(flow):
        outstanding[name].append(clients[name].send_submit(commands))
        sent[name].append(commands)
        if index % 8 == 7:
            for other in clients:
                collect(other)
    for name in clients:
        collect(name)
        clients[name].ping()  # every report of earlier batches has arrived before the pong

    events: dict[int, dict] = {}
    for name, client in clients.items():
        assert len(replies[name]) == len(sent[name])
        for commands, reply in zip(sent[name], replies[name], strict=True):
            assert [(a["op"], a["id"]) for a in answers(reply)] == [
                (c["op"], c["id"]) for c in commands
            ]
            assert all(a["seq"] is not None for a in answers(reply))
            for event in reply:
                assert events.setdefault(event["seq"], event) == event
        for report in client.reports:
            for event in builtins(report):
                assert event["event"] in ("trade", "cancelled")
                assert events.setdefault(event["seq"], event) == event
    status = running_node.admin().call("status")
    # every event reached the peer of an order it concerns: together they have every seq
    assert sorted(events) == list(range(1, status["seq"] + 1))

    # every accepted new order: filled + cancelled + resting = its quantity
    resting = _expected_resting(events)
    replaced = {
        (e["market"], e["owner"], e["id"]) for e in events.values() if e["event"] == "replaced"
    }
    filled: dict = {}
    taken_off: dict = {}
    for event in events.values():
        if event["event"] == "trade":
            for who in ("maker", "taker"):
                key = (event["market"], event[f"{who}_owner"], event[f"{who}_id"])
                filled[key] = filled.get(key, 0) + Decimal(event["qty"])
        elif event["event"] == "cancelled":
            key = (event["market"], event["owner"], event["id"])
            taken_off[key] = taken_off.get(key, 0) + Decimal(event["qty"])
    checked = 0
    for name in clients:
        for commands, reply in zip(sent[name], replies[name], strict=True):
            for command, answer in zip(commands, answers(reply), strict=True):
                key = (command["market"], command["owner"], command["id"])
                if command["op"] != "new" or answer["event"] != "accepted" or key in replaced:
                    continue
                left = Decimal(resting[key][2]) if key in resting else 0
                assert filled.get(key, 0) + taken_off.get(key, 0) + left == Decimal(
                    command["qty"]
                ), key
                checked += 1
    assert checked > 100

    stop_verified(running_node)
    stored = stored_orders(running_node.home)
    expected = {
        key: (side == "buy", units(price, STEPS[key[0]][0]), units(qty, STEPS[key[0]][1]))
        for key, (side, price, qty) in resting.items()
    }
    assert stored == expected
    assert len(stored) == status["resting_orders"]


def test_restart_continues_books_seq_priority_and_halts(node_factory):
    running = node_factory(peers={"alice": (ALICE,), "bob": (BOB,)})
    alice, bob = running.client("alice"), running.client("bob")
    submit(
        alice,
        [
            new("first", "sell", "100", "1", ALICE),
            new("second", "sell", "100", "1", ALICE),
            new("l1", "buy", "3", "2", ALICE, market=LAND),
            new("g1", "buy", "1999.95", "0.5", ALICE, market=GOLD),
        ],
    )
    submit(
        bob,
        [new("b1", "buy", "99", "2", BOB), new("g2", "sell", "1999.95", "0.2", BOB, market=GOLD)],
    )
    admin = running.admin()
    admin.call("halt", market=LAND)
    before = {market: admin.call("book", market=market) for market in (PUNK, LAND, GOLD)}
    old_snapshot = alice.snapshot(PUNK)
    assert old_snapshot.seq > 0
    status = admin.call("status")
    stop_verified(running)

    restarted = start_node(running.home)
    restarted.keys.update(running.keys)
    try:
        admin = restarted.admin()
        after_status = admin.call("status")
        for field in ("seq", "journal_length", "state_hash", "resting_orders", "halted"):
            assert after_status[field] == status[field], field
        assert after_status["halted"] == [LAND]
        for market, book in before.items():
            after = admin.call("book", market=market)
            assert (after["bids"], after["asks"]) == (book["bids"], book["asks"])

        alice, bob = restarted.client("alice"), restarted.client("bob")
        # market data counts again from 0 in a new run, which tells subscribers to resync
        new_snapshot = alice.snapshot(PUNK)
        assert new_snapshot.seq == 0
        assert new_snapshot.run != old_snapshot.run
        assert (new_snapshot.bids, new_snapshot.asks) == (old_snapshot.bids, old_snapshot.asks)
        # seq continues; the halt still holds
        events = submit(
            alice, [new("l2", "buy", "3", "1", ALICE, market=LAND), cancel("g1", ALICE, GOLD)]
        )
        assert [(e["event"], e.get("reason"), e["seq"]) for e in events] == [
            ("rejected", "market_halted", None),
            ("accepted", None, status["seq"] + 1),
            ("cancelled", "user", status["seq"] + 2),
        ]
        assert events[2]["qty"] == "0.3"
        # time priority survived; the maker's peer still gets its fill
        events = submit(bob, [new("b2", "buy", "100", "1", BOB)])
        assert [(e["event"], e.get("maker_id")) for e in events] == [
            ("accepted", None),
            ("trade", "first"),
        ]
        assert report_events(alice, 1) == events[1:]
        admin.call("resume", market=LAND)
        assert outcome(submit(alice, [new("l3", "buy", "3", "1", ALICE, market=LAND)])) == [
            ("accepted", None, "l3")
        ]
    finally:
        stop_verified(restarted)
    assert (running.home.path / "node.json").exists() is False


def test_a_second_node_on_the_same_home_refuses_to_start(running_node):
    home = running_node.home
    second = Node(home, home.config())
    try:
        with pytest.raises(NodeError) as refused:
            second.start()
    finally:
        if second.sockets is not None:  # it got as far as binding
            second.close()
    message = str(refused.value)
    assert "\n" not in message
    assert "another process" in message
    assert "already running" in message
    # the first node goes on serving, and its runtime file stays
    assert home.runtime_path.exists()
    running_node.client("alice").ping()
    assert running_node.admin().call("status")["pid"] == os.getpid()


# -- mnode start / status / stop as processes ---------------------------------------------------


def _mnode(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "marketnode.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _start_process(home: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "marketnode.cli", "start", "--home", str(home)],
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
    deadline = time.monotonic() + 20
    while _runtime_pid(home) != process.pid:  # a killed node leaves its runtime file behind
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the node did not start"
        time.sleep(0.02)
    return process


def _runtime_pid(home: Path) -> int | None:
    try:
        return json.loads((home / "node.json").read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.slow
def test_mnode_start_status_stop_and_a_killed_node(tmp_path):
    home = Home.create(tmp_path / "home")
    text = home.config_path.read_text()
    markets = text[text.index("\n[[markets]]") + 1 :]
    home.config_path.write_text(LOOPBACK_ENDPOINTS.strip() + "\n\n" + markets)
    added = runner.invoke(
        app, ["peers", "add", "alice", "--owner", ALICE, "--home", str(home.path)]
    )
    assert added.exit_code == 0, added.stderr
    key = load_key_pair(home.path / "keys" / PEERS_FOLDER / "alice.key_secret")

    process = _start_process(home.path, tmp_path / "node1.log")
    try:
        status = _mnode("status", "--home", str(home.path), "--json")
        assert status.returncode == 0, status.stderr
        status = json.loads(status.stdout)
        assert status["pid"] == process.pid
        assert status["seq"] == 0
        for endpoint in status["endpoints"].values():
            assert endpoint.startswith("tcp://127.0.0.1:")
            assert "*" not in endpoint

        second = _mnode("start", "--home", str(home.path))
        assert second.returncode == 4
        assert second.stderr.count("\n") == 1
        assert second.stderr.startswith("mnode: ")
        assert f"pid {process.pid}" in second.stderr
        assert second.stdout == ""

        # answers pipelined, then the node is killed with answers still in flight
        client = Client(address_of_home(home), key, timeout_s=5)
        try:
            for number in range(300):
                side, price = ("buy", "10") if number % 2 else ("sell", "200")
                client.send_submit([new(f"k{number}", side, price, "1", ALICE)])
            answered = []
            while len(answered) < 60:
                message = client.receive()
                assert type(message) is Reply
                answered.append(builtins(message))
            analytics = psutil.Process(process.pid).children()
            assert len(analytics) == 1  # the analytics process beside the node
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            # orphaned, it notices and stops on its own
            _gone, alive = psutil.wait_procs(analytics, timeout=10)
            assert not alive
            while (message := client.receive(200)) is not None:
                answered.append(builtins(message))
        finally:
            client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    stored = stored_orders(home)
    last_seq = 0
    for events in answered:
        assert [e["event"] for e in events] == ["accepted", "rested"]
        assert (PUNK, ALICE, events[0]["id"]) in stored
        last_seq = max(last_seq, events[1]["seq"])
    verified = runner.invoke(app, ["verify", "--home", str(home.path)])
    assert verified.exit_code == 0, verified.stdout

    process = _start_process(home.path, tmp_path / "node2.log")
    try:
        status = json.loads(_mnode("status", "--home", str(home.path), "--json").stdout)
        assert status["seq"] >= last_seq
        assert status["resting_orders"] == len(stored)
        stopped = _mnode("stop", "--home", str(home.path))
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stderr == f"stopped at seq {status['seq']}\n"
        assert process.wait(timeout=20) == 0
        assert not (home.path / "node.json").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    gone = _mnode("status", "--home", str(home.path))
    assert gone.returncode == 5
    assert gone.stderr.count("\n") == 1


def test_an_admin_answer_that_cannot_be_encoded_is_an_error_not_a_crash(
    running_node, monkeypatch
):
    from marketnode.node.client import ClientError
    from marketnode.node.server import admin as admin_requests

    monkeypatch.setitem(admin_requests._HANDLERS, "peers", lambda node, request: {"x": object()})
    admin = running_node.admin()
    with pytest.raises(ClientError, match="internal: cannot encode the answer"):
        admin.call("peers")
    assert admin.call("status")["name"]  # the node goes on

"""Market data: topics, frames, per-topic seq, level totals, trades, snapshots and keeping a book
(docs/protocol.md §6 snapshot, §8, §11)."""

from __future__ import annotations

import time

import msgspec
import pytest
import zmq

from .wire import QUIET_S, NoAnswer, cancel, new

A = "0xa11ce"
B = "0xb0b"
MD_KEYS = {"type", "v", "market", "seq", "trades", "levels", "run"}


@pytest.fixture
def feed(node, alice):
    """A SUB with alice's key; call `.watch(market)` to subscribe and wait until it is live."""
    sub = node.feed("alice")

    def watch(*topics: bytes):
        for topic in topics:
            sub.subscribe(topic)
        sub.sync(alice, A)

    sub.watch = watch
    yield sub
    sub.sock.close(linger=0)


def topic(market: str) -> bytes:
    return f"md.{market}.".encode()


def test_a_change_is_published_on_the_markets_topic_in_two_frames(node, alice, feed, market):
    """§11: "subscribe to the topic of each market you follow: **`md.SYMBOL.`** ... Each message
    has two frames: the topic (bytes, e.g. `md.PUNK-ETH.`), then the payload, a MessagePack map"
    with `type` "md", `v`, `market`, `seq`, `trades`, `levels`, `run`; §6 snapshot: `seq` "0:
    none published yet"; `run` "the same in every message and `snapshot` until the node
    restarts"."""
    feed.watch(topic(market))
    snapshot = alice.snapshot(market)
    assert (snapshot["seq"], snapshot["bids"], snapshot["asks"]) == (0, [], [])
    alice.submit([new(market, "a1", A, "sell", "100.5", "3")])
    frames = feed.sock.recv_multipart() if feed.sock.poll(10000) else pytest.fail("no market data")
    assert len(frames) == 2 and frames[0] == topic(market), frames
    md = msgspec.msgpack.decode(frames[1])
    assert set(md) == MD_KEYS, md
    assert (md["type"], md["v"], md["market"], md["seq"], md["trades"]) == ("md", 1, market, 1, [])
    assert md["levels"] == [{"side": "sell", "price": "100.5", "qty": "3", "orders": 1}]
    assert md["run"] == snapshot["run"] and type(md["run"]) is int
    # §6: `run` is "the time it started, in milliseconds since the Unix epoch"
    assert abs(md["run"] - node.info["started"] * 1000) < 10_000, (md["run"], node.info["started"])


def test_seq_counts_1_2_3_per_topic_and_only_changes_publish(alice, feed, market, market2):
    """§11: `seq` "this topic's message number within the run: 1, 2, 3, … with no gaps"; "The
    node publishes at most one message per market per batch, after the batch's commit, and only
    for markets that changed"; §14: "None of them changed anything, so no market data is
    published"."""
    feed.watch(topic(market), topic(market2))
    alice.submit([new(market, "s1", A, "buy", "1")])
    alice.submit([new(market2, "t1", A, "buy", "1")])
    alice.submit([new(market, "s2", A, "buy", "2")])
    got = [feed.recv() for _ in range(3)]
    assert [(t, m["seq"]) for t, m in got] == [
        (topic(market), 1),
        (topic(market2), 1),
        (topic(market), 2),
    ]
    # rejects, engine or gateway, change nothing: no message; the next change is seq 3
    alice.submit(
        [
            new(market, "s1", A, "buy", "1"),
            new(market, "x", A, "up", "1"),
            cancel(market, "nope", A),
            new(market, "y", B, "buy", "1"),
            {"op": "new", "market": market},
        ]
    )
    alice.submit([cancel(market, "s2", A)])
    t, md = feed.recv()
    assert (t, md["seq"]) == (topic(market), 3), md
    assert md["levels"] == [{"side": "buy", "price": "2", "qty": "0", "orders": 0}]


def test_levels_are_absolute_totals(alice, carol, feed, market):
    """§11: `levels` "every price level of the market that changed in the batch, with its **new
    absolute total** ... `qty` `"0"` and `orders` 0 mean the level is gone"."""
    feed.watch(topic(market))
    alice.submit([new(market, "l1", A, "buy", "7", "2")])
    carol.submit([new(market, "l2", A, "buy", "7", "3")])
    alice.submit([cancel(market, "l1", A)])
    carol.submit([cancel(market, "l2", A)])
    levels = [feed.next(topic(market))["levels"] for _ in range(4)]
    assert levels == [
        [{"side": "buy", "price": "7", "qty": "2", "orders": 1}],
        [{"side": "buy", "price": "7", "qty": "5", "orders": 2}],
        [{"side": "buy", "price": "7", "qty": "3", "orders": 1}],
        [{"side": "buy", "price": "7", "qty": "0", "orders": 0}],
    ]


def test_one_message_sums_up_a_batch(alice, feed, market, market2):
    """§11: "one message may therefore sum up several commands"; §14: "The batch's level changes
    come in one market-data message"; at most one message per market per batch."""
    feed.watch(topic(market), topic(market2))
    alice.submit(
        [
            new(market, "b1", A, "buy", "5", "1"),
            new(market, "b2", A, "buy", "5", "2"),
            new(market, "b3", A, "buy", "4", "1"),
            new(market2, "c1", A, "sell", "9", "1"),
            cancel(market, "b3", A),
            new(market, "s1", A, "sell", "6", "4"),
        ]
    )
    messages = {}
    for _ in range(2):
        t, md = feed.recv()
        assert t not in messages, "one message per market per batch"
        messages[t] = md
    first = messages[topic(market)]
    assert first["seq"] == 1
    levels = {(lv["side"], lv["price"]): (lv["qty"], lv["orders"]) for lv in first["levels"]}
    assert levels == {("buy", "5"): ("3", 2), ("buy", "4"): ("0", 0), ("sell", "6"): ("4", 1)}, (
        first
    )
    assert messages[topic(market2)]["levels"] == [
        {"side": "sell", "price": "9", "qty": "1", "orders": 1}
    ]
    with pytest.raises(NoAnswer):
        feed.next(topic(market), timeout=0.3)


def test_trades_carry_the_engine_seq_and_no_owners(alice, bob, feed, market):
    """§11: `trades` "the market's trades of the batch, in engine order: `seq` (int: the engine
    `seq` of the `trade` event, as in replies and reports), `price`, `qty` (decimal str),
    `aggressor` (`buy`/`sell`: the taker's side). No owners or order ids"."""
    feed.watch(topic(market))
    alice.submit(
        [new(market, "m1", A, "sell", "10", "1"), new(market, "m2", A, "sell", "10.5", "2")]
    )
    assert feed.next(topic(market))["seq"] == 1
    reply = bob.submit([new(market, "t1", B, "buy", "11", "2", tif="IOC")])
    trades = [e for e in reply["events"] if e["event"] == "trade"]
    md = feed.next(topic(market))
    assert md["seq"] == 2
    assert md["trades"] == [
        {"seq": t["seq"], "price": t["price"], "qty": t["qty"], "aggressor": "buy"} for t in trades
    ]
    assert [t["price"] for t in md["trades"]] == ["10", "10.5"]
    levels = {(lv["side"], lv["price"]): (lv["qty"], lv["orders"]) for lv in md["levels"]}
    assert levels == {("sell", "10"): ("0", 0), ("sell", "10.5"): ("1", 1)}


def test_the_trailing_dot_keeps_topics_apart(alice, feed):
    """§11: "the trailing dot keeps `md.PUNK-ETH.` from matching a market `PUNK-ETHX`"."""
    feed.watch(b"md.Q1-ETH.")
    alice.submit([new("Q1-ETHX", "x1", A, "buy", "1")])
    alice.submit([new("Q1-ETH", "q1", A, "buy", "1")])
    t, md = feed.recv()
    assert (t, md["market"]) == (b"md.Q1-ETH.", "Q1-ETH"), (t, md)


def test_md_prefix_gets_every_market(alice, feed, market, market2):
    """§11: "Subscribing to `md.` gets every market"."""
    feed.watch(b"md.")
    alice.submit([new(market, "e1", A, "buy", "1"), new(market2, "e2", A, "buy", "1")])
    seen = set()
    while len(seen) < 2:
        t, md = feed.recv()
        assert t == f"md.{md['market']}.".encode()
        if md["market"] in (market, market2):
            seen.add(md["market"])


def test_snapshot_levels_best_first_and_its_seq(alice, bob, feed, market):
    """§6 snapshot: `seq` "the last market-data `seq` of this market's topic that the snapshot
    contains"; `bids` "buy levels, best (highest price) first, every level"; `asks` "sell
    levels, best (lowest price) first, every level"; "A level map: `price` ..., `qty` ... the
    total remaining quantity at that price, `orders` (int: how many orders rest there)"."""
    feed.watch(topic(market))
    alice.submit(
        [
            new(market, "b1", A, "buy", "5", "1"),
            new(market, "b2", A, "buy", "6", "1"),
            new(market, "b3", A, "buy", "5", "2"),
            new(market, "b4", A, "buy", "0.5", "1"),
        ]
    )
    bob.submit([new(market, "s1", B, "sell", "9", "1"), new(market, "s2", B, "sell", "8", "2")])
    bob.submit([new(market, "s3", B, "sell", "8.01", "1")])
    last = [feed.next(topic(market))["seq"] for _ in range(3)][-1]
    snapshot = bob.snapshot(market)
    assert set(snapshot) == {"type", "v", "market", "seq", "bids", "asks", "ref", "run"}, snapshot
    assert snapshot["seq"] == last == 3
    assert snapshot["bids"] == [
        {"price": "6", "qty": "1", "orders": 1},
        {"price": "5", "qty": "3", "orders": 2},
        {"price": "0.5", "qty": "1", "orders": 1},
    ]
    assert snapshot["asks"] == [
        {"price": "8", "qty": "2", "orders": 1},
        {"price": "8.01", "qty": "1", "orders": 1},
        {"price": "9", "qty": "1", "orders": 1},
    ]


def test_any_connected_key_may_take_any_snapshot(bob, mm, market, alice):
    """§4 snapshot: "Any connected key may ask, for any market"."""
    alice.submit([new(market, "k1", A, "buy", "3", "1")])
    for peer in (bob, mm):
        assert peer.snapshot(market)["bids"] == [{"price": "3", "qty": "1", "orders": 1}]
    assert bob.snapshot("PUNK-ETH")["type"] == "snapshot"


def test_keeping_a_book_from_a_snapshot_and_the_messages(alice, bob, feed, market):
    """§11 "Keeping a book": load the snapshot, then for every message with `seq` = last + 1
    "apply every level (set the level to `qty`/`orders`, or delete it when `orders` is 0)"; the
    book so kept equals a later snapshot."""
    feed.watch(topic(market))
    alice.submit([new(market, "a1", A, "buy", "5", "3"), new(market, "a2", A, "sell", "7", "3")])
    feed.next(topic(market))
    snapshot = bob.snapshot(market)
    book = {("buy", lv["price"]): (lv["qty"], lv["orders"]) for lv in snapshot["bids"]}
    book |= {("sell", lv["price"]): (lv["qty"], lv["orders"]) for lv in snapshot["asks"]}
    last = snapshot["seq"]
    bob.submit([new(market, "b1", B, "buy", "7", "1"), new(market, "b2", B, "buy", "6", "2")])
    alice.submit([cancel(market, "a1", A), new(market, "a3", A, "sell", "6.5", "1")])
    alice.submit([new(market, "a4", A, "sell", "6", "1")])
    for _ in range(3):
        md = feed.next(topic(market))
        if md["seq"] <= last:
            continue
        assert md["seq"] == last + 1, "no gap on a loopback feed read promptly"
        assert md["run"] == snapshot["run"]
        for lv in md["levels"]:
            if lv["orders"] == 0:
                book.pop((lv["side"], lv["price"]), None)
            else:
                book[(lv["side"], lv["price"])] = (lv["qty"], lv["orders"])
        last = md["seq"]
    later = bob.snapshot(market)
    assert later["seq"] == last
    expected = {("buy", lv["price"]): (lv["qty"], lv["orders"]) for lv in later["bids"]}
    expected |= {("sell", lv["price"]): (lv["qty"], lv["orders"]) for lv in later["asks"]}
    assert book == expected


def test_an_unregistered_key_gets_no_market_data(node, alice, feed, market):
    """§2: a key not on the allowlist "is refused **silently**: ... nothing is ever delivered, and
    **no reply or error message ever comes** on any socket"."""
    stranger = node.context.socket(zmq.SUB)
    stranger.linger = 0
    stranger.curve_serverkey = node.server_key
    stranger.curve_publickey, stranger.curve_secretkey = zmq.curve_keypair()
    stranger.connect(node.endpoint("market_data"))
    stranger.subscribe(b"md.")
    feed.watch(topic(market))  # meanwhile the stranger has had time to connect and subscribe
    until = time.monotonic() + QUIET_S
    n = 0
    while time.monotonic() < until:
        n += 1
        alice.submit([new(market, f"z{n}", A, "buy", "1")])
        assert feed.next(topic(market))["seq"] == n  # published
        assert not stranger.poll(100), "a refused key received market data"
    stranger.close(linger=0)

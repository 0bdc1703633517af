"""Execution reports, where they go, and open orders scoped to the peer's owners
(docs/protocol.md §4 open_orders, §6 report / open_orders, §9)."""

from __future__ import annotations

import time

import pytest
import zmq

from .wire import QUIET_S, NoAnswer, cancel, encode, new, poll_until, replace

A = "0xa11ce"
B = "0xb0b"


def report_events(peer) -> list[dict]:
    return [e for report in peer.reports for e in report["events"]]


def check_report(report: dict) -> None:
    """§6 report: keys `type`, `v`, `events`; "No `ref`: a report answers no request"."""
    assert set(report) == {"type", "v", "events"}, report
    seqs = [e["seq"] for e in report["events"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"§9: in `seq` order: {report}"


# -- who gets what ---------------------------------------------------------------------------------


def test_the_maker_gets_its_fill_in_a_report_the_taker_does_not(alice, bob, market):
    """§9: `trade` is "copied in a report to the peer that placed the **maker** order, when that
    is not the requester"; `accepted`, `rejected`, `rested`, `replaced` to nobody; §6: the
    report holds "`trade` events in which an order this peer placed was the maker"."""
    alice.submit([new(market, "a1", A, "sell", "100.5", "3")])
    reply = bob.submit([new(market, 7, B, "buy", "101", 1, tif="IOC")])
    trade = reply["events"][1]
    assert trade["event"] == "trade" and trade["taker_id"] == 7 and trade["maker_id"] == "a1"
    (report,) = alice.wait_reports(1)
    check_report(report)
    assert report["events"] == [trade]
    assert bob.reports_before_pong() == []
    assert alice.reports_before_pong() == [], "one copy only"


def test_one_report_per_peer_per_batch_in_seq_order(alice, bob, market):
    """§9: "One `report` per peer per batch, holding all of that peer's events of the batch in
    `seq` order" (one submit's commands are processed together)."""
    alice.submit(
        [
            new(market, "m1", A, "sell", "10", "1"),
            new(market, "m2", A, "sell", "11", "1"),
            new(market, "m3", A, "sell", "12", "5"),
        ]
    )
    reply = bob.submit([new(market, "t1", B, "buy", "12", "3")])
    trades = [e for e in reply["events"] if e["event"] == "trade"]
    assert len(trades) == 3
    (report,) = alice.wait_reports(1)
    check_report(report)
    assert report["events"] == trades
    assert alice.reports_before_pong() == []


def test_a_cancel_by_another_peer_is_reported_to_the_placer(alice, carol, mm, market):
    """§9: "A relayer (or another peer registered for the same owner) that cancels an order
    placed by another peer finds `accepted` and `cancelled` in its reply, and the peer that
    placed the order receives the `cancelled` in a report"; §5: "any peer allowed to act for
    that owner may cancel or replace the order, whichever peer placed it"."""
    alice.submit([new(market, "c1", A, "buy", "5", "2"), new(market, "c2", A, "buy", "5", "2")])
    by_carol = carol.submit([cancel(market, "c1", A)])
    by_mm = mm.submit([cancel(market, "c2", A)])
    for reply in (by_carol, by_mm):
        assert [e["event"] for e in reply["events"]] == ["accepted", "cancelled"], reply
        assert reply["events"][1]["reason"] == "user"
    reports = alice.wait_reports(2)
    for report in reports:
        check_report(report)
    assert report_events(alice) == [by_carol["events"][1], by_mm["events"][1]]
    assert carol.reports_before_pong() == [] and mm.reports_before_pong() == []


def test_a_replace_by_another_peer_is_reported_to_the_placer(alice, carol, bob, market):
    """§9: "every event about an order goes to the peer that placed it [...] when another peer
    replaces your order [...] you receive the `replaced`, the fills the re-entered order takes
    as the taker [...] and its `rested`, in one report, in seq order; the maker's peer of each
    fill receives that `trade` too"."""
    bob.submit([new(market, "b1", B, "sell", "6", "1")])
    alice.submit([new(market, "r1", A, "buy", "5", "3")])
    reply = carol.submit([replace(market, "r1", A, price="6")])
    assert [e["event"] for e in reply["events"]] == ["accepted", "replaced", "trade", "rested"], (
        reply
    )
    (placer_report,) = alice.wait_reports(1)
    assert placer_report["events"] == reply["events"][1:]
    (maker_report,) = bob.wait_reports(1)  # bob's order was the maker
    assert maker_report["events"] == [reply["events"][2]]
    orders = [o for o in alice.open_orders()["orders"] if o["market"] == market]
    assert orders == [
        {"market": market, "id": "r1", "owner": A, "side": "buy", "price": "6", "qty": "2"}
    ]


def test_a_stp_cancel_of_another_peers_order_is_reported(alice, carol, market):
    """§9: "when a command's order cuts or cancels a resting order of the same owner that another
    peer placed, the `cancelled` (reason `stp`) is in the reply and in a report to that peer"."""
    carol.submit([new(market, "k1", A, "sell", "10", "4")])
    reply = alice.submit([new(market, "k2", A, "buy", "10", "1", stp="cancel_oldest")])
    assert [e["event"] for e in reply["events"]] == ["accepted", "cancelled", "rested"], reply
    cut = reply["events"][1]
    assert (cut["id"], cut["reason"]) == ("k1", "stp")
    (report,) = carol.wait_reports(1)
    assert report["events"] == [cut]
    assert alice.reports_before_pong() == []


def test_reports_never_carry_events_of_the_receivers_own_requests(node, market):
    """§9: "**Reports never carry events of the receiver's own requests**: those are in the
    replies to its requests, whichever of its connections sent them; a peer that placed both
    orders of a trade sees the trade once, in its reply"."""
    first, second = node.peer("alice"), node.peer("alice")
    try:
        first.ping()
        first.submit([new(market, "s1", A, "sell", "10", "2")])
        second.ping()  # the reports would now come here
        reply = second.submit([new(market, "s2", A, "buy", "10", "1", stp="none")])
        assert [e["event"] for e in reply["events"]] == ["accepted", "trade"], reply
        assert second.reports_before_pong() == []
        first.ping()
        assert first.reports == [] and second.reports == []
    finally:
        first.close()
        second.close()


def test_reports_go_to_the_connection_that_sent_last(node, bob, market):
    """§9 "Where reports go": "to the connection on which the peer most recently sent a message
    (any request ..., even one answered by an `error`) ... A peer with several connections
    receives all of its reports on the one that sent last"."""
    first, second = node.peer("alice"), node.peer("alice")
    try:
        first.submit([new(market, "s1", A, "sell", "10", "5")])
        second.ping()
        bob.submit([new(market, "t1", B, "buy", "10", "1")])
        assert len(second.wait_reports(1)) == 1
        first.request({"v": 1, "type": "snapshot", "market": "NOPE-ETH"})  # an error answer
        bob.submit([new(market, "t2", B, "buy", "10", "1")])
        assert len(first.wait_reports(1)) == 1
        second.send_raw(b"\xc1")  # undecodable: still "a message"
        assert second.answer()["type"] == "error"
        bob.submit([new(market, "t3", B, "buy", "10", "1")])
        assert len(second.wait_reports(2)) == 2
        assert first.reports_before_pong() == [] and len(first.reports) == 1
    finally:
        first.close()
        second.close()


# -- open orders -----------------------------------------------------------------------------------


@pytest.fixture
def dave(node):
    peer = node.peer("dave")
    peer.ping()
    yield peer
    peer.close()


@pytest.fixture
def erin(node):
    peer = node.peer("erin")
    peer.ping()
    yield peer
    peer.close()


def test_open_orders_are_scoped_to_the_peers_owners(dave, erin, mm, market, market2):
    """§4 open_orders: "Without `owner` (or with nil): every resting order of every owner this
    peer may act for (a relayer: every order on the node). With an `owner` the peer may act
    for: that owner's orders, whichever peer placed them. With an `owner` it may not act for:
    `error`/`not_authorized`"."""
    D1, D2 = "0xda7e", "0xda7e2"
    dave.submit([new(market, "d1", D1, "buy", "5", "1"), new(market2, "d2", D2, "sell", "9", "2")])
    erin.submit([new(market, "e1", D2, "buy", "4", "3")])
    d1 = {"market": market, "id": "d1", "owner": D1, "side": "buy", "price": "5", "qty": "1"}
    d2 = {"market": market2, "id": "d2", "owner": D2, "side": "sell", "price": "9", "qty": "2"}
    e1 = {"market": market, "id": "e1", "owner": D2, "side": "buy", "price": "4", "qty": "3"}

    def listed(answer):
        assert answer["type"] == "open_orders", answer
        assert set(answer) == {"type", "v", "orders", "ref"}, answer
        return answer["orders"]

    assert listed(dave.open_orders()) == [d1, e1, d2]
    assert listed(dave.request({"v": 1, "type": "open_orders", "owner": None, "ref": 1})) == [
        d1,
        e1,
        d2,
    ]
    assert listed(dave.open_orders(D1)) == [d1]
    assert listed(erin.open_orders()) == [e1, d2]
    assert listed(erin.open_orders(D2)) == [e1, d2]
    refused = erin.open_orders(D1)
    assert (refused["type"], refused["reason"]) == ("error", "not_authorized"), refused
    everything = listed(mm.open_orders())
    assert all(o in everything for o in (d1, e1, d2))
    assert listed(mm.open_orders(D1)) == [d1]
    assert listed(mm.open_orders("0xnobody")) == []


def test_open_orders_come_in_market_bid_ask_price_time_order(dave, market, market2, bob):
    """§6 open_orders: "Orders come market by market (in the node's configured order), bids then
    asks, best price first, then in time priority"; `qty` is "the remaining quantity"."""
    D1 = "0xda7e"
    dave.submit(
        [
            new(market2, "z1", D1, "buy", "1", "1"),
            new(market, "a1", D1, "sell", "20", "1"),
            new(market, "a2", D1, "sell", "19", "1"),
            new(market, "b1", D1, "buy", "5", "1"),
            new(market, "b2", D1, "buy", "6", "1"),
            new(market, "b3", D1, "buy", "5", "4"),
            new(market, "a3", D1, "sell", "19", "3"),
        ]
    )
    bob.submit([new(market, "x", B, "buy", "19", "2")])  # a2 filled, a3 left with 2
    mine = [o for o in dave.open_orders(D1)["orders"] if o["market"] in (market, market2)]
    assert [(o["market"], o["id"], o["qty"]) for o in mine] == [
        (market, "b2", "1"),
        (market, "b1", "1"),
        (market, "b3", "4"),
        (market, "a3", "2"),
        (market, "a1", "1"),
        (market2, "z1", "1"),
    ]


def test_open_orders_of_an_owner_show_orders_placed_by_any_peer(alice, carol, market):
    """§4 open_orders: "With an `owner` the peer may act for: that owner's orders, whichever peer
    placed them"."""
    carol.submit([new(market, "c1", A, "buy", "3", "1")])
    alice.submit([new(market, "a1", A, "buy", "2", "1")])
    for peer in (alice, carol):
        ids = [o["id"] for o in peer.open_orders(A)["orders"] if o["market"] == market]
        assert ids == ["c1", "a1"]


# -- the node's own cancels ------------------------------------------------------------------------


def test_disable_peer_cancels_and_reports_and_refuses_its_commands(node, admin, market):
    """§9: "when the operator disables a peer (admin `disable_peer`, §13): every resting order it
    placed, `cancelled` with reason `peer_disabled`. The peer stays connected and receives the
    report"; §10: `peer_disabled` for "every command of the message", `seq` nil; §11: "Admin
    actions that cancel orders (disabling a peer) ... publish too"."""
    D = "0xd15"
    dis = node.peer("dis")
    feed = node.feed("dis")
    topic = f"md.{market}.".encode()
    feed.subscribe(topic)
    feed.sync(dis, D)
    dis.submit([new(market, "x1", D, "buy", "5", "2"), new(market, "x2", D, "sell", "9", "1")])
    assert feed.next(topic)["seq"] == 1
    try:
        result = admin("disable_peer", peer="dis")
        assert result["disabled"] is True and result["orders_cancelled"] == 2, result
        (report,) = dis.wait_reports(1)
        assert [(e["event"], e["id"], e["reason"], e["remaining"]) for e in report["events"]] == [
            ("cancelled", "x1", "peer_disabled", "0"),
            ("cancelled", "x2", "peer_disabled", "0"),
        ], report
        md = feed.next(topic)
        assert md["seq"] == 2 and {(lv["price"], lv["orders"]) for lv in md["levels"]} == {
            ("5", 0),
            ("9", 0),
        }, md
        reply = dis.submit(
            [new(market, "x3", D, "buy", "5", "1"), cancel(market, "x1", D), {"op": "new"}]
        )
        got = [(e["event"], e["reason"], e["seq"]) for e in reply["events"]]
        assert got[:2] == [("rejected", "peer_disabled", None)] * 2, reply
        # §10: "each command ... gets the first of these that applies": malformed comes first
        assert got[2] == ("rejected", "malformed", None), reply
        dis.ping()  # still connected and answered
        assert dis.snapshot(market)["bids"] == []
    finally:
        admin("enable_peer", peer="dis")
    reply = dis.submit([new(market, "x3", D, "buy", "5", "1")])
    assert [e["event"] for e in reply["events"]] == ["accepted", "rested"], reply
    dis.close()


def test_cancel_on_disconnect_cancels_when_the_last_connection_goes(node, mm, market):
    """§12: "When the last connection of a peer registered with `--cancel-on-disconnect` goes
    ..., the node cancels every resting order that peer placed (`cancelled` events with reason
    `disconnect` ..., market data published). Only connections to the order socket that have
    sent at least one message count; while another one of the peer's connections that has sent
    a message is open, nothing is cancelled"."""
    C = "0xc0d"
    feed = node.feed("mm")
    topic = f"md.{market}.".encode()
    feed.subscribe(topic)
    feed.sync(mm, "0xmm")
    first, second, silent = node.peer("cod"), node.peer("cod"), node.peer("cod")
    first.submit([new(market, "c1", C, "buy", "5", "2")])
    assert feed.next(topic)["seq"] == 1
    second.ping()
    first.close()
    # the other connection that has sent is open: the order stays (checked for a while)
    until = time.monotonic() + QUIET_S
    while time.monotonic() < until:
        assert [o["id"] for o in mm.open_orders(C)["orders"]] == ["c1"]
    second.close()  # `silent` never sent anything: it does not count

    def gone():
        return mm.open_orders(C)["orders"] == []

    poll_until(gone, what="cod's order cancelled after its last connection went")
    md = feed.next(topic)
    assert md["seq"] == 2 and md["levels"] == [
        {"side": "buy", "price": "5", "qty": "0", "orders": 0}
    ], md
    silent.close()
    again = node.peer("cod")
    again.ping()
    assert again.open_orders()["orders"] == []
    again.close()


# -- keys ------------------------------------------------------------------------------------------


def test_an_unknown_key_hears_nothing(node):
    """§2 "Unknown keys get nowhere": "A key that is not on the allowlist ... is refused
    **silently**: ... **no reply or error message ever comes** on any socket. The same happens
    with a wrong server key"."""
    stranger = node.peer_with_keys(*zmq.curve_keypair())
    stranger.send({"v": 1, "type": "ping", "ref": 1})
    wrong_server = node.peer_with_keys(*node.key_pair("alice"), server_key=zmq.curve_keypair()[0])
    wrong_server.send({"v": 1, "type": "ping", "ref": 1})
    with pytest.raises(NoAnswer):
        stranger.recv(timeout=QUIET_S)
    with pytest.raises(NoAnswer):
        wrong_server.recv(timeout=0.1)
    stranger.close()
    wrong_server.close()


def test_a_peer_revoked_while_connected(node, market):
    """§2: "When the operator revokes a peer [...] the node cancels its resting orders
    (`cancelled`, reason `peer_revoked` [...]) and drops its order-socket and market-data
    connections; a new connection with the key gets nothing"."""
    R = "0x4e7"
    rev = node.peer("rev")
    feed = node.feed("rev")
    topic = f"md.{market}.".encode()
    feed.subscribe(topic)
    feed.sync(rev, R)
    rev.submit([new(market, "v1", R, "buy", "5", "1")])
    assert feed.next(topic)["seq"] == 1
    said = node.mnode("peers", "revoke", "rev")
    assert "1 resting order" in said.stdout + said.stderr, said
    other = node.peer("mm")
    assert other.snapshot(market)["bids"] == []
    # its feed is dropped: the change its cancel made may be on its way still, then nothing,
    # not even what is published afterwards
    heard_md = []
    with pytest.raises(NoAnswer):
        while True:
            heard_md.append(feed.next(topic, timeout=QUIET_S))
    assert len(heard_md) <= 1, heard_md
    other.submit([new(market, "after-revoke", "0x77", "buy", "4", "1")])
    with pytest.raises(NoAnswer):
        feed.next(topic, timeout=QUIET_S)
    # its open connection was dropped, and a new one with the key gets nothing (a send may
    # find no connection to queue on while libzmq reconnects: that is nothing too)
    fresh = node.peer_with_keys(*node.key_pair("rev"))
    for peer in (rev, fresh):
        try:
            peer.sock.send(encode({"v": 1, "type": "ping", "ref": "after"}), zmq.NOBLOCK)
        except zmq.Again:
            continue
        heard = []
        with pytest.raises(NoAnswer):
            while True:  # the report of its cancelled order may still arrive (§9): no answer
                heard.append(peer.recv(timeout=QUIET_S))
        assert all(message["type"] == "report" for message in heard), heard
    for sock in (rev, other, fresh):
        sock.close()

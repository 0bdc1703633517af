"""A node with `[security] curve = false`: anonymous peers, one per connection (docs/protocol.md §2
"CURVE off"), and what a restart does to seqs and runs (§8, §11), on a node of this module's own."""

from __future__ import annotations

import re

import pytest

from .wire import Node, answers, cancel, new, standard_markets

SETTINGS = {
    ("security", "curve"): "false",
    ("limits", "peer_rate_per_s"): "1",
    ("limits", "peer_burst"): "2",
    ("limits", "max_open_orders_per_owner"): "2",
}
MARKETS = standard_markets("P", 6)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = Node(tmp_path_factory.mktemp("curve-off-node"), settings=SETTINGS, markets=MARKETS)
    n.create()
    n.start()
    yield n
    n.stop()


@pytest.fixture
def anon(node):
    peer = node.anonymous()
    peer.ping()
    yield peer
    peer.close()


def whoami(peer) -> dict:
    answer = peer.request({"v": 1, "type": "whoami", "ref": "me"})
    assert answer["type"] == "whoami", answer
    return answer


def test_connections_without_curve_are_anonymous_peers(node, anon):
    """§2 CURVE off: "Clients then connect without setting any CURVE option ... **each connection
    to the order socket acts as an anonymous peer** named `anon-` followed by the connection's
    routing id in hex"; §6 whoami: `curve` false, `registered` "false with CURVE off", `owners`
    empty, `relayer` "true with CURVE off"."""
    assert node.info["curve"] is False  # §1: node.json says so
    me = whoami(anon)
    assert re.fullmatch(r"anon-[0-9a-f]+", me["name"]), me
    assert (
        me["curve"],
        me["registered"],
        me["owners"],
        me["relayer"],
        me["disabled"],
        me["cancel_on_disconnect"],
    ) == (False, False, [], True, False, False), me
    other = node.anonymous()
    assert whoami(other)["name"] != me["name"], "a new connection is a new peer"
    other.close()
    # §13 status: `peers_seen` "with CURVE off, `anon-…` names"
    assert me["name"] in node.admin()("status")["peers_seen"]


def test_an_anonymous_peer_may_act_for_every_owner_and_is_not_throttled(anon):
    """§2: "may act for every owner (no `not_authorized`)"; "is not rate-limited (no
    `throttled`)"; §10: "With CURVE off (§2) there are no `peer_disabled`, `throttled` or
    `not_authorized` rejects"; §6 markets: `rate_per_s`, `burst` "nil with CURVE off"."""
    reply = anon.submit([cancel("P01-ETH", i, f"0xowner{i}") for i in range(10)])  # burst is 2
    assert [a["reason"] for a in answers(reply)] == ["unknown_order"] * 10, reply
    limits = anon.request({"v": 1, "type": "markets"})["limits"]
    assert (limits["rate_per_s"], limits["burst"], limits["max_open_orders_per_owner"]) == (
        None,
        None,
        2,
    ), limits


def test_open_orders_without_owner_lists_every_order(node, anon):
    """§2: "`open_orders` without an owner lists every order on the node"; "reports about
    orders placed on a connection that has closed are lost (`open_orders` still shows them)"."""
    other = node.anonymous()
    other.submit([new("P02-ETH", "x1", "0xone", "buy", "1")])
    other.close()
    anon.submit([new("P02-ETH", "y1", "0xtwo", "buy", "2")])
    orders = anon.open_orders()["orders"]
    assert {(o["id"], o["owner"]) for o in orders if o["market"] == "P02-ETH"} == {
        ("x1", "0xone"),
        ("y1", "0xtwo"),
    }
    assert [o["id"] for o in anon.open_orders("0xone")["orders"]] == ["x1"]


def test_reports_go_to_the_connection_that_placed_the_order(node, anon):
    """§2: an anonymous peer "does get execution reports (§9) for the orders placed on its
    connection, on that connection"; §9: "A *peer* here is ... (with CURVE off, one anonymous
    peer per connection)"."""
    taker = node.anonymous()
    anon.submit([new("P03-ETH", "m1", "0xmaker", "sell", "5", "2")])
    reply = taker.submit([new("P03-ETH", "t1", "0xtaker", "buy", "5", "1")])
    trade = reply["events"][1]
    assert trade["event"] == "trade"
    (report,) = anon.wait_reports(1)
    assert report["events"] == [trade]
    assert taker.reports_before_pong() == []
    taker.close()


def test_halts_and_too_many_orders_still_apply(node, anon):
    """§2: "Everything else on this page is unchanged (halts, `too_many_orders`, every message and
    event)"."""
    reply = anon.submit([new("P04-ETH", f"o{i}", "0xfull", "buy", "1") for i in range(3)])
    assert [(a["event"], a.get("reason")) for a in answers(reply)] == [
        ("accepted", None),
        ("accepted", None),
        ("rejected", "too_many_orders"),
    ], reply
    admin = node.admin()
    admin("halt", market="P05-ETH")
    try:
        (answer,) = answers(anon.submit([new("P05-ETH", "h", "0xh", "buy", "1")]))
        assert (answer["reason"], answer["seq"]) == ("market_halted", None)
    finally:
        admin("resume", market="P05-ETH")


def test_a_restart_keeps_the_engine_seq_and_starts_a_new_run(node):
    """§8: the engine `seq` is "gapless, increasing, and kept across restarts"; §11: "when the node
    restarts, every topic counts from 1 again (a snapshot of a market with no message since the
    start has `seq` 0), and the node has a new `run`"; the book is kept."""
    peer = node.anonymous()
    peer.submit([new("P06-ETH", "r1", "0xr", "buy", "3")])
    before = peer.snapshot("P06-ETH")
    assert before["seq"] >= 1
    last = peer.submit([cancel("P06-ETH", "nope", "0xr")])["events"][0]["seq"]
    peer.close()
    node.mnode("stop")
    node.process.wait(timeout=30)
    node.start()
    peer = node.anonymous()
    after = peer.snapshot("P06-ETH")
    assert after["run"] != before["run"] and after["run"] > before["run"]
    assert after["seq"] == 0
    assert after["bids"] == before["bids"] == [{"price": "3", "qty": "1", "orders": 1}]
    reply = peer.submit([cancel("P06-ETH", "nope", "0xr")])
    assert reply["events"][0]["seq"] == last + 1
    peer.close()

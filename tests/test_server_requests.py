"""The order socket's `markets` and `whoami` requests on a real node: over raw MessagePack, as
docs/protocol.md shows them, and through the blocking and asyncio clients; with CURVE on (a
registered peer, a relayer, a disabled and a revoked one) and off (an anonymous peer)."""

from __future__ import annotations

import asyncio
import time

import msgspec
import zmq

from marketnode.node.client.address import ClientError
from marketnode.node.client.async_peer import AsyncClient
from marketnode.node.client.peer import Client
from marketnode.node.home.peers import load_allowlist, save_allowlist

WAIT_MS = 5000
PUNK_RULES = {
    "market": "PUNK-ETH",
    "base": "PUNK",
    "quote": "ETH",
    "tick": "0.01",
    "lot": "1",
    "min_qty": "1",
    "max_qty": "500",
    "max_notional": "40000",
    "stp": "cancel_newest",
    "halted": False,
    # the settlement settings of a market that takes no signed orders (nothing configured)
    "signatures": "off",
    "chain_id": None,
    "contract": None,
    "base_token": None,
    "quote_token": None,
    "base_token_id": "0",
    "lot_units": None,
    "tick_units": None,
    "fee_bps": 0,
}
DEFAULT_LIMITS = {
    "rate_per_s": 200000,
    "burst": 400000,
    "max_open_orders_per_owner": 100000,
    "max_commands_per_message": 1000,
    "max_message_bytes": 1048576,
}


def ask(sock: zmq.Socket, message: dict) -> dict:
    sock.send(msgspec.msgpack.encode(message))
    assert sock.poll(WAIT_MS), f"no answer to {message}"
    return msgspec.msgpack.decode(sock.recv())


def test_markets_lists_every_market_with_its_rules_and_the_peers_limits(running_node):
    alice = running_node.raw_socket(
        zmq.DEALER, running_node.address.orders, running_node.keys["alice"]
    )
    running_node.admin().call("halt", market="LAND-ETH")
    answer = ask(alice, {"v": 1, "type": "markets", "ref": 1})
    assert (answer["type"], answer["v"], answer["ref"]) == ("markets", 1, 1)
    configured = [spec.symbol for spec in running_node.home.config().markets]
    assert [market["market"] for market in answer["markets"]] == configured
    assert answer["markets"][0] == PUNK_RULES
    assert [m["halted"] for m in answer["markets"]] == [m == "LAND-ETH" for m in configured]
    assert answer["limits"] == DEFAULT_LIMITS
    # what it says holds: an order within the rules rests, one a lot over max_qty does not
    placed = ask(alice, {"v": 1, "type": "submit", "ref": 2, "cmds": [
        {"op": "new", "market": "PUNK-ETH", "id": n, "owner": "0xa11ce", "side": "buy",
         "price": "10", "qty": qty} for n, qty in ((1, "500"), (2, "501"))
    ]})  # fmt: skip
    answers = [e for e in placed["events"] if e["event"] in ("accepted", "rejected")]
    assert [a.get("reason") for a in answers] == [None, "qty_above_max"]


def test_whoami_says_who_the_connection_is_and_what_it_may_do(running_node):
    running_node.add_peer("relay", (), relayer=True)
    alice = Client(running_node.address, running_node.keys["alice"], timeout_s=5)
    relay = Client(running_node.address, running_node.keys["relay"], timeout_s=5)
    running_node.clients.extend([alice, relay])
    me = alice.whoami()
    assert (me.curve, me.name, me.registered, me.owners, me.relayer) == (
        True, "alice", True, ["0xa11ce"], False,
    )  # fmt: skip
    assert (me.disabled, me.cancel_on_disconnect) == (False, False)
    assert (relay.whoami().relayer, relay.whoami().owners) == (True, [])
    running_node.admin().call("disable_peer", peer="alice")
    assert alice.whoami().disabled is True
    # a key revoked while connected acts for no one
    path = running_node.home.peers_path(running_node.home.config())
    save_allowlist(path, load_allowlist(path).without("relay"))
    deadline = time.monotonic() + 10  # the node rereads the file within half a second
    while (revoked := relay.whoami()).registered:
        assert time.monotonic() < deadline, "the revocation was not seen"
        time.sleep(0.05)
    assert (revoked.registered, revoked.name, revoked.owners, revoked.relayer) == (
        False, "", [], False,
    )  # fmt: skip


def test_with_curve_off_whoami_and_markets_say_so(node_factory):
    running = node_factory("[security]\ncurve = false\n")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(running.address.orders)
    running.clients.append(sock)
    me = ask(sock, {"v": 1, "type": "whoami"})
    assert me["curve"] is False and me["name"].startswith("anon-")
    assert (me["registered"], me["owners"], me["relayer"], me["ref"]) == (False, [], True, None)
    limits = ask(sock, {"v": 1, "type": "markets"})["limits"]
    assert limits == {**DEFAULT_LIMITS, "rate_per_s": None, "burst": None}
    # the name is the one in status `peers_seen`
    assert me["name"] in running.admin().call("status")["peers_seen"]


def test_the_asyncio_client_asks_markets_and_whoami(running_node):
    async def session() -> tuple:
        async with AsyncClient(running_node.address, running_node.keys["bob"]) as bob:
            return await bob.markets(), await bob.whoami(), await bob.ping()

    markets, me, _ = asyncio.run(session())
    assert msgspec.to_builtins(markets.markets[0]) == PUNK_RULES
    assert (me.name, me.owners) == ("bob", ["0xb0b"])


def test_the_client_reports_an_error_answer_as_a_client_error(node_factory):
    running = node_factory(peers={"alice": ("0xa11ce",)})
    alice = Client(running.address, running.keys["alice"], timeout_s=5)
    running.clients.append(alice)
    alice.socket.send(msgspec.msgpack.encode({"v": 1, "type": "whoami", "ref": 1, 3: 4}))
    # the error (ref nil: a key that is not a str) answers the oldest request waiting
    try:
        alice.markets()
    except ClientError as error:
        assert str(error).startswith("malformed: ")
    else:
        raise AssertionError("the malformed request's error was not seen")
    assert alice.markets().markets[0].market == "PUNK-ETH"

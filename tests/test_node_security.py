"""Who gets into the running node and what it lets them do: CURVE keys and the live allowlist,
owner binding, the operator's admin socket, and each limit with its own answer."""

from __future__ import annotations

import dataclasses
import select
import socket
import threading
import time

import msgspec
import pytest
import zmq
from typer.testing import CliRunner
from zmq.utils.monitor import recv_monitor_message

from marketnode.cli.main import app
from marketnode.node.client import AdminClient, Client, ClientError, Subscriber
from marketnode.node.core.commands import CancelOrder
from marketnode.node.home.keys import OPERATOR, PEERS_FOLDER, create_key_pair, load_key_pair
from marketnode.node.home.peers import Peer, load_allowlist, save_allowlist
from marketnode.node.protocol.messages import (
    PROTOCOL_VERSION,
    ErrorReply,
    Pong,
    admin_reply_decoder,
    encoder,
    node_reply_decoder,
)
from marketnode.node.store.lmdb_store import Store

PUNK = "PUNK-ETH"
LAND = "LAND-ETH"
GOLD = "GOLD-USDC"
ALICE = "0xa11ce"
BOB = "0xb0b"
CAROL = "0xca401"
REFUSED_WAIT_S = 0.6
"""How long a refused connection is given to answer (it never should)."""

runner = CliRunner()


def new(order_id, side, price, qty, owner, market=PUNK, **fields) -> dict:
    command = {"op": "new", "market": market, "id": order_id, "owner": owner, "side": side}
    command.update(qty=qty, price=price, **fields)
    return command


def cancel(order_id, owner, market=PUNK) -> dict:
    return {"op": "cancel", "market": market, "id": order_id, "owner": owner}


def replace(order_id, owner, market=PUNK, **fields) -> dict:
    return {"op": "replace", "market": market, "id": order_id, "owner": owner, **fields}


def submit(client: Client, commands: list) -> list[dict]:
    return msgspec.to_builtins(client.submit(commands).events)


def outcome(events: list[dict]) -> list[tuple]:
    return [
        (event["event"], event.get("reason"), event["id"])
        for event in events
        if event["event"] in ("accepted", "rejected")
    ]


def gateway_rejects(events: list[dict], reason: str) -> list:
    """Ids rejected with `reason`; such answers come from the gateway and carry no seq."""
    rejected = [e for e in events if e["event"] == "rejected" and e["reason"] == reason]
    assert all(e["seq"] is None for e in rejected)
    return [e["id"] for e in rejected]


def report_events(client: Client, wanted: int, timeout_ms: int = 5000) -> list[dict]:
    events: list[dict] = []
    while len(events) < wanted:
        report = client.next_report(timeout_ms)
        assert report is not None, f"expected {wanted} reported events, got {events}"
        events.extend(msgspec.to_builtins(report.events))
    return events


def no_reports(client: Client) -> None:
    client.ping()
    assert not client.reports


def stranger_key(tmp_path, name: str = "stranger"):
    """A CURVE key pair nobody registered."""
    return create_key_pair(tmp_path / "unregistered", name)


def refused(running, key) -> bool:
    """True if a new connection with `key` gets no answer to a ping."""
    client = Client(running.address, key, timeout_s=REFUSED_WAIT_S)
    try:
        client.ping()
    except ClientError as error:
        assert error.unreachable
        return True
    finally:
        client.close()
    return False


def raw_dealer(running, key) -> zmq.Socket:
    return running.raw_socket(zmq.DEALER, running.address.orders, key)


def until(condition, what: str, timeout_s: float = 5.0, every_s: float = 0.02):
    """Poll `condition` until it returns something truthy, or fail after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every_s)


# -- keys and the allowlist -------------------------------------------------------------------


def test_with_no_peers_registered_nobody_gets_in(node_factory, tmp_path):
    running = node_factory()
    assert running.admin().call("status")["peers_registered"] == 0
    assert refused(running, stranger_key(tmp_path))


def test_unknown_keys_get_no_answer_while_peers_are_served(running_node, tmp_path):
    alice = running_node.client("alice")
    stranger = stranger_key(tmp_path)
    assert refused(running_node, stranger)
    # nor any market data
    listening = Subscriber(running_node.address, stranger, [PUNK])
    running_node.clients.append(listening)
    watching = running_node.subscriber("bob", [PUNK])
    attempt = 0
    while watching.receive(100) is None:
        attempt += 1
        submit(alice, [new(f"w{attempt}", "buy", "1", "1", ALICE), cancel(f"w{attempt}", ALICE)])
        assert attempt < 100
    assert listening.receive(300) is None
    alice.ping()


def test_a_peer_registered_while_running_gets_in_without_restart(running_node, tmp_path):
    key = stranger_key(tmp_path, "dave")
    assert refused(running_node, key)
    path = running_node.home.peers_path(running_node.home.config())
    save_allowlist(path, load_allowlist(path).with_peer(Peer("dave", key.public_text, ("0xda7e",))))
    dave = Client(running_node.address, key, timeout_s=5)
    running_node.clients.append(dave)
    assert outcome(submit(dave, [new("d1", "buy", "10", "1", "0xda7e")])) == [
        ("accepted", None, "d1")
    ]
    # and one made with `mnode peers add` as well
    added = runner.invoke(
        app, ["peers", "add", "erin", "--owner", "0xe", "--home", str(running_node.home.path)]
    )
    assert added.exit_code == 0, added.stderr
    erin = Client(
        running_node.address,
        load_key_pair(running_node.home.path / "keys" / PEERS_FOLDER / "erin.key_secret"),
        timeout_s=5,
    )
    running_node.clients.append(erin)
    assert outcome(submit(erin, [new("e1", "buy", "10", "1", "0xe")])) == [("accepted", None, "e1")]


def test_a_revoked_key_is_refused_without_restart(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    assert outcome(submit(alice, [new("a0", "buy", "10", "1", ALICE)])) == [
        ("accepted", None, "a0")
    ]
    revoked = runner.invoke(
        app, ["peers", "revoke", "alice", "--home", str(running_node.home.path)]
    )
    assert revoked.exit_code == 0, revoked.stderr
    # the connection already open is dropped by the node (issue 12: revocation drops them)
    assert "1 connection dropped" in revoked.stderr, revoked.stderr
    # a new connection with the key gets nothing at all
    assert refused(running_node, running_node.keys["alice"])
    # others are served throughout
    assert outcome(submit(bob, [new("b1", "buy", "10", "1", BOB)])) == [("accepted", None, "b1")]


def test_the_admin_socket_answers_the_operator_key_only(running_node, tmp_path):
    for key in (running_node.keys["alice"], stranger_key(tmp_path)):
        admin = AdminClient(running_node.address, key, timeout_s=REFUSED_WAIT_S)
        try:
            with pytest.raises(ClientError) as error:
                admin.call("status")
            assert error.value.unreachable
        finally:
            admin.close()
    assert running_node.admin().call("status")["markets"] == 3


# -- owners -----------------------------------------------------------------------------------


def test_a_peer_acts_only_for_its_owners_and_a_relayer_for_any(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    events = submit(
        bob,
        [
            new("x1", "buy", "10", "1", ALICE),
            new("b1", "buy", "10", "1", BOB),
            new("x2", "buy", "10", "1", "0xsomeone"),
        ],
    )
    assert outcome(events) == [
        ("rejected", "not_authorized", "x1"),
        ("accepted", None, "b1"),
        ("rejected", "not_authorized", "x2"),
    ]
    assert gateway_rejects(events, "not_authorized") == ["x1", "x2"]

    running_node.add_peer("relay", (), relayer=True)
    relay = running_node.client("relay")
    submit(alice, [new("a1", "sell", "100", "2", ALICE)])
    events = submit(
        relay,
        [
            new("r1", "buy", "10", "1", ALICE),
            new("r2", "buy", "10", "1", "0xsomeone"),
            cancel("a1", ALICE),
        ],
    )
    assert outcome(events) == [
        ("accepted", None, "r1"),
        ("accepted", None, "r2"),
        ("accepted", None, "a1"),
    ]
    # the cancelled order was alice's: she is told
    [cancelled] = report_events(alice, 1)
    assert (cancelled["event"], cancelled["id"], cancelled["reason"]) == ("cancelled", "a1", "user")
    no_reports(bob)


def test_a_peer_never_cancels_or_replaces_another_owners_order(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    submit(alice, [new("a1", "sell", "100", "2", ALICE)])
    events = submit(
        bob,
        [
            cancel("a1", ALICE),
            cancel("a1", BOB),
            replace("a1", ALICE, price="99"),
            replace("a1", BOB, qty="1"),
            replace("a1", BOB, price="100", qty="5"),
        ],
    )
    assert outcome(events) == [
        ("rejected", "not_authorized", "a1"),
        ("rejected", "unknown_order", "a1"),
        ("rejected", "not_authorized", "a1"),
        ("rejected", "unknown_order", "a1"),
        ("rejected", "unknown_order", "a1"),
    ]
    assert [(o.id, o.price, o.qty) for o in alice.open_orders().orders] == [("a1", "100", "2")]
    no_reports(alice)


# -- limits -----------------------------------------------------------------------------------


def _ping_of_size(size: int, ref: str = "") -> bytes:
    """An encoded ping of exactly `size` bytes (padded through its ref)."""
    base = len(encoder.encode({"v": PROTOCOL_VERSION, "type": "ping", "ref": ref}))
    padding = size - base
    for extra in range(padding, padding - 4, -1):
        payload = encoder.encode({"v": PROTOCOL_VERSION, "type": "ping", "ref": ref + "x" * extra})
        if len(payload) == size:
            return payload
    raise AssertionError(f"cannot make a ping of {size} bytes")


@pytest.mark.parametrize("limit", [4096, 1024])
def test_a_message_of_exactly_max_message_bytes_is_taken(node_factory, limit):
    running = node_factory(f"[limits]\nmax_message_bytes = {limit}\n", {"alice": (ALICE,)})
    sock = raw_dealer(running, running.keys["alice"])
    sock.send(_ping_of_size(limit, "fits"))
    assert sock.poll(2000), "a message of exactly max_message_bytes got no answer"
    assert type(node_reply_decoder.decode(sock.recv())) is Pong


def test_an_oversized_message_disconnects_its_peer_and_others_are_served(node_factory):
    running = node_factory(
        "[limits]\nmax_message_bytes = 4096\n", {"alice": (ALICE,), "bob": (BOB,)}
    )
    bob = running.client("bob")
    sock = raw_dealer(running, running.keys["alice"])
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        sock.send(encoder.encode({"v": PROTOCOL_VERSION, "type": "ping", "ref": 1}))
        assert sock.poll(5000)
        sock.recv()
        oversized = encoder.encode(
            {
                "v": PROTOCOL_VERSION,
                "type": "submit",
                "cmds": [new("big", "buy", "10", "1", ALICE)],
                "ref": "x" * 4096,
            }
        )
        sock.send(oversized)
        assert monitor.poll(5000), "the peer was not disconnected"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        assert outcome(submit(bob, [new("b1", "buy", "10", "1", BOB)])) == [
            ("accepted", None, "b1")
        ]
        assert sock.poll(0) == 0, "an oversized message was answered"
        assert running.admin().call("status")["resting_orders"] == 1  # bob's only
        # the peer's socket reconnects by itself and is served again
        sock.send(encoder.encode({"v": PROTOCOL_VERSION, "type": "ping", "ref": 2}))
        assert sock.poll(5000)
        assert node_reply_decoder.decode(sock.recv()).ref == 2
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)


def test_a_message_with_too_many_commands_is_refused_whole(node_factory):
    running = node_factory("[limits]\nmax_commands_per_message = 5\n", {"alice": (ALICE,)})
    alice = running.client("alice")
    five = [new(f"a{n}", "buy", str(10 + n), "1", ALICE) for n in range(5)]
    assert [kind for kind, _, _ in outcome(submit(alice, five))] == ["accepted"] * 5
    six = [new(f"b{n}", "buy", str(20 + n), "1", ALICE) for n in range(6)]
    ref = alice.send_submit(six)
    error = alice.receive()
    assert type(error) is ErrorReply
    assert (error.reason, error.ref) == ("too_many_commands", ref)
    assert sorted(o.id for o in alice.open_orders().orders) == [f"a{n}" for n in range(5)]
    assert running.admin().call("status")["seq"] == 10


def test_a_peer_over_its_rate_is_throttled(node_factory):
    running = node_factory(
        "[limits]\npeer_rate_per_s = 1\npeer_burst = 3\n", {"alice": (ALICE,), "bob": (BOB,)}
    )
    alice, bob = running.client("alice"), running.client("bob")
    events = submit(alice, [new(f"a{n}", "buy", str(10 + n), "1", ALICE) for n in range(5)])
    assert outcome(events) == [
        ("accepted", None, "a0"),
        ("accepted", None, "a1"),
        ("accepted", None, "a2"),
        ("rejected", "throttled", "a3"),
        ("rejected", "throttled", "a4"),
    ]
    assert gateway_rejects(events, "throttled") == ["a3", "a4"]
    # each peer has its own bucket
    events = submit(bob, [new(f"b{n}", "buy", str(10 + n), "1", BOB) for n in range(3)])
    assert [kind for kind, _, _ in outcome(events)] == ["accepted"] * 3
    # tokens come back with time
    attempt = 0

    def admitted():
        nonlocal attempt
        attempt += 1
        return (
            outcome(submit(alice, [new(f"r{attempt}", "buy", "30", "1", ALICE)]))[0][0]
            == "accepted"
        )

    until(admitted, "a token", timeout_s=5, every_s=0.1)
    assert running.admin().call("metrics")["rejects"]["throttled"] >= 2


def test_the_burst_is_not_exceeded_after_an_idle_spell(node_factory):
    # one token a second: between two back-to-back submits (well under a second, even on a
    # loaded machine) at most one token is earned
    running = node_factory("[limits]\npeer_rate_per_s = 1\npeer_burst = 3\n", {"alice": (ALICE,)})
    alice = running.client("alice")
    assert alice.submit([]).events == []  # the peer's bucket now exists, full
    time.sleep(3.5)  # idle: the bucket stays full, it cannot hold more than the burst
    first = submit(alice, [new(f"a{n}", "buy", str(10 + n), "1", ALICE) for n in range(3)])
    second = submit(alice, [new(f"b{n}", "buy", str(20 + n), "1", ALICE) for n in range(3)])
    assert [kind for kind, _, _ in outcome(first)] == ["accepted"] * 3
    assert len(gateway_rejects(second, "throttled")) >= 2, outcome(second)


def test_an_owner_over_its_open_order_limit_gets_too_many_orders(node_factory):
    running = node_factory(
        "[limits]\nmax_open_orders_per_owner = 2\n", {"alice": (ALICE,), "bob": (BOB,)}
    )
    running.add_peer("relay", (), relayer=True)
    alice, bob, relay = (running.client(name) for name in ("alice", "bob", "relay"))
    events = submit(
        alice,
        [
            new("a1", "buy", "10", "1", ALICE),
            new("a2", "buy", "1", "1", ALICE, market=LAND),
            new("a3", "buy", "1", "1", ALICE, market=GOLD),
        ],
    )
    assert outcome(events)[2] == ("rejected", "too_many_orders", "a3")
    assert gateway_rejects(events, "too_many_orders") == ["a3"]
    # the limit is the owner's, whoever sends for it
    assert outcome(submit(relay, [new("r1", "buy", "10", "1", ALICE)])) == [
        ("rejected", "too_many_orders", "r1")
    ]
    # other owners are not affected
    events = submit(bob, [new("b1", "sell", "20", "1", BOB), new("b2", "sell", "21", "1", BOB)])
    assert [kind for kind, _, _ in outcome(events)] == ["accepted", "accepted"]
    # a gone order makes room again
    events = submit(alice, [cancel("a1", ALICE), new("a4", "buy", "11", "1", ALICE)])
    assert outcome(events) == [("accepted", None, "a1"), ("accepted", None, "a4")]


def test_a_disabled_peer_is_refused_and_its_resting_orders_cancelled(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    submit(alice, [new("a1", "buy", "10", "1", ALICE), new("a2", "sell", "2", "3", ALICE, LAND)])
    submit(bob, [new("b1", "buy", "9", "1", BOB)])
    admin = running_node.admin()
    result = admin.call("disable_peer", peer="alice")
    assert result == {"peer": "alice", "disabled": True, "orders_cancelled": 2}
    reported = report_events(alice, 2)
    assert sorted(
        (e["event"], e["market"], e["id"], e["reason"], e["remaining"]) for e in reported
    ) == [
        ("cancelled", LAND, "a2", "peer_disabled", "0"),
        ("cancelled", PUNK, "a1", "peer_disabled", "0"),
    ]
    events = submit(alice, [new("a3", "buy", "10", "1", ALICE), cancel("a1", ALICE)])
    assert outcome(events) == [
        ("rejected", "peer_disabled", "a3"),
        ("rejected", "peer_disabled", "a1"),
    ]
    assert gateway_rejects(events, "peer_disabled") == ["a3", "a1"]
    assert alice.open_orders().orders == []
    assert [o.id for o in bob.open_orders().orders] == ["b1"]
    assert outcome(submit(bob, [new("b2", "buy", "9", "1", BOB)])) == [("accepted", None, "b2")]
    rows = {row["name"]: row for row in admin.call("peers")}
    assert rows["alice"]["disabled"] is True
    assert rows["bob"]["disabled"] is False
    path = running_node.home.peers_path(running_node.home.config())
    assert load_allowlist(path).named("alice").disabled

    assert admin.call("enable_peer", peer="alice")["disabled"] is False
    assert outcome(submit(alice, [new("a4", "buy", "10", "1", ALICE)])) == [
        ("accepted", None, "a4")
    ]
    with pytest.raises(ClientError, match="no peer named"):
        admin.call("disable_peer", peer="nobody")


def test_a_halted_market_refuses_commands_until_resumed(running_node):
    alice = running_node.client("alice")
    admin = running_node.admin()
    submit(alice, [new("r1", "buy", "9", "1", ALICE), new("r2", "buy", "8", "1", ALICE)])
    assert admin.call("halt", market=PUNK) == {"halted": [PUNK]}
    events = submit(
        alice,
        [
            new("a1", "buy", "10", "1", ALICE),
            new("l1", "buy", "1", "1", ALICE, LAND),
            replace("r1", ALICE, price="9.5"),
            cancel("r2", ALICE),  # getting out of a halted market is always allowed
        ],
    )
    assert outcome(events) == [
        ("rejected", "market_halted", "a1"),
        ("accepted", None, "l1"),
        ("rejected", "market_halted", "r1"),
        ("accepted", None, "r2"),
    ]
    assert gateway_rejects(events, "market_halted") == ["a1", "r1"]
    assert [(o.id, o.price) for o in alice.open_orders().orders if o.market == PUNK] == [
        ("r1", "9")
    ]
    rows = {row["market"]: row for row in admin.call("markets")}
    assert rows[PUNK]["halted"] is True
    assert rows[LAND]["halted"] is False
    assert admin.call("status")["halted"] == [PUNK]
    assert admin.call("resume", market=PUNK) == {"halted": []}
    assert outcome(submit(alice, [new("a2", "buy", "10", "1", ALICE)])) == [
        ("accepted", None, "a2")
    ]
    with pytest.raises(ClientError, match="unknown market"):
        admin.call("halt", market="NOPE-ETH")


def test_a_cancel_on_disconnect_peer_loses_its_orders_when_it_goes(node_factory):
    running = node_factory(
        "[limits]\nheartbeat_ms = 100\nheartbeat_timeout_ms = 400\n",
        {"alice": (ALICE,), "bob": (BOB,)},
    )
    running.add_peer("carol", (CAROL,), cancel_on_disconnect=True)
    alice, bob, carol = (running.client(name) for name in ("alice", "bob", "carol"))
    submit(carol, [new("c1", "buy", "10", "1", CAROL), new("c2", "sell", "2", "1", CAROL, LAND)])
    submit(alice, [new("a1", "buy", "11", "1", ALICE)])
    submit(bob, [new("b1", "buy", "12", "1", BOB)])
    admin = running.admin()
    before = admin.call("status")
    assert before["resting_orders"] == 4

    alice.close()  # not registered to lose its orders
    carol.close()

    def carol_gone():
        book = admin.call("book", market=PUNK)
        land = admin.call("book", market=LAND)
        return land["asks"] == [] and [level["price"] for level in book["bids"]] == ["12", "11"]

    until(carol_gone, "carol's orders to be cancelled")
    assert admin.call("status")["resting_orders"] == 2
    assert [o.id for o in bob.open_orders().orders] == ["b1"]
    assert bob.open_orders().orders[0].owner == BOB
    # the cancellations are sequenced like any other (accepted and cancelled for each)
    events = submit(bob, [new("b2", "buy", "1", "1", BOB)])
    assert events[0]["seq"] == before["seq"] + 2 * 2 + 1
    # journaled as the node's own cancels, saying why; the journal replays to the same books
    running.stop()
    store = Store(running.home.store_path(running.home.config()), readonly=True)
    try:
        cancels = [c for _, c in store.journal() if type(c) is CancelOrder]
    finally:
        store.close()
    assert sorted((c.market, c.id, c.owner, c.reason) for c in cancels) == [
        (LAND, "c2", CAROL, "disconnect"),
        (PUNK, "c1", CAROL, "disconnect"),
    ]
    verified = runner.invoke(app, ["verify", "--home", str(running.home.path)])
    assert verified.exit_code == 0, verified.stdout


class FreezableRelay:
    """A TCP relay between one client and the node that can stop passing bytes while keeping
    both connections open: a peer gone silent (a partition), not one that hung up."""

    def __init__(self, endpoint: str) -> None:
        host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.frozen = threading.Event()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.listener.settimeout(10)
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        upstream = socket.create_connection(self.target)
        other = {client: upstream, upstream: client}
        try:
            while not self.closing.is_set():
                if self.frozen.is_set():
                    time.sleep(0.01)
                    continue
                readable, _, _ = select.select(list(other), [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    other[sock].sendall(data)
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self.closing.set()
        self.thread.join(timeout=5)
        self.listener.close()


def test_a_silent_cancel_on_disconnect_peer_is_dropped_after_the_heartbeat_timeout(node_factory):
    running = node_factory(
        "[limits]\nheartbeat_ms = 100\nheartbeat_timeout_ms = 400\n", {"bob": (BOB,)}
    )
    running.add_peer("carol", (CAROL,), cancel_on_disconnect=True)
    relay = FreezableRelay(running.address.orders)
    try:
        address = dataclasses.replace(running.address, orders=relay.endpoint)
        carol = Client(address, running.keys["carol"], timeout_s=5)
        running.clients.append(carol)
        submit(carol, [new("c1", "buy", "10", "1", CAROL)])
        admin = running.admin()
        assert admin.call("status")["resting_orders"] == 1
        relay.frozen.set()  # carol's host stops answering; nobody closes anything
        until(
            lambda: admin.call("status")["resting_orders"] == 0,
            "the silent peer's orders to be cancelled",
            timeout_s=4,
            every_s=0.1,
        )
    finally:
        relay.close()


# -- the admin socket -------------------------------------------------------------------------


def test_admin_status_metrics_markets_book_and_peers(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    submit(alice, [new("a1", "sell", "100", "2", ALICE), new("a2", "sell", "101", "1", ALICE)])
    submit(bob, [new("b1", "buy", "99", "1", BOB), new("bad", "sideways", "1", "1", BOB)])
    submit(bob, [new("x", "buy", "1", "1", ALICE)])
    admin = running_node.admin()

    status = admin.call("status")
    assert status["seq"] == 7
    assert status["resting_orders"] == 3
    assert status["markets"] == 3
    assert status["halted"] == []
    assert status["peers_registered"] == 2
    assert status["peers_seen"] == ["alice", "bob"]
    assert status["endpoints"] == running_node.node.endpoints

    metrics = admin.call("metrics")
    assert metrics["messages"] >= 3
    assert metrics["commands"] == 5
    assert metrics["rejects"] == {"bad_side": 1, "not_authorized": 1}
    assert metrics["events"]["accepted"] == 3
    assert metrics["events"]["rested"] == 3
    assert metrics["answers_dropped"] == 0

    rows = {row["market"]: row for row in admin.call("markets")}
    assert set(rows) == {PUNK, LAND, GOLD}
    assert (rows[PUNK]["best_bid"], rows[PUNK]["best_ask"], rows[PUNK]["resting_orders"]) == (
        "99",
        "100",
        3,
    )
    assert rows[LAND]["best_bid"] is None

    book = admin.call("book", market=PUNK, depth=1)
    assert book["bids"] == [{"price": "99", "qty": "1", "orders": 1}]
    assert book["asks"] == [{"price": "100", "qty": "2", "orders": 1}]
    assert len(admin.call("book", market=PUNK)["asks"]) == 2
    assert book["md_seq"] == rows[PUNK]["md_seq"] == 2

    peers = {row["name"]: row for row in admin.call("peers")}
    assert peers["alice"]["owners"] == [ALICE]
    assert peers["alice"]["seen"] is True
    assert peers["alice"]["public_key"] == running_node.keys["alice"].public_text

    with pytest.raises(ClientError, match="depth must be at least 1"):
        admin.call("book", market=PUNK, depth=0)
    with pytest.raises(ClientError, match="unknown market"):
        admin.call("book", market="NOPE-ETH")
    with pytest.raises(ClientError, match="unknown admin command"):
        admin.call("explode")


def test_admin_answers_bad_input_with_an_error(running_node):
    operator = load_key_pair(running_node.home.path / "keys" / f"{OPERATOR}.key_secret")
    address = running_node.address
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.curve_serverkey = address.server_key
    sock.curve_publickey = operator.public
    sock.curve_secretkey = operator.secret
    sock.connect(address.admin)
    running_node.clients.append(sock)
    for payload, error in (
        (b"\xc1", "malformed"),
        (encoder.encode({"type": "admin", "cmd": "status"}), "malformed"),
        (encoder.encode([1, 2, 3]), "malformed"),
        (encoder.encode({"v": 2, "type": "admin", "cmd": "status", "ref": 1}), "bad_version"),
    ):
        sock.send(payload)
        assert sock.poll(5000)
        reply = admin_reply_decoder.decode(sock.recv())
        assert reply.ok is False
        assert reply.error.startswith(error)
        assert reply.result is None
    assert reply.ref == 1  # a versioned request is answered with its ref
    status = encoder.encode({"v": 1, "type": "admin", "cmd": "status", "ref": 2})
    sock.send_multipart([status, status])
    assert sock.poll(5000)
    reply = admin_reply_decoder.decode(sock.recv())
    assert (reply.ok, reply.error.startswith("malformed")) == (False, True)
    sock.send(status)
    assert sock.poll(5000)
    reply = admin_reply_decoder.decode(sock.recv())
    assert (reply.ok, reply.ref, reply.result["seq"]) == (True, 2, 0)


def test_admin_shutdown_stops_the_node(running_node):
    alice = running_node.client("alice", timeout_s=REFUSED_WAIT_S)
    submit(alice, [new("a1", "buy", "10", "1", ALICE)])
    result = running_node.admin().call("shutdown")
    assert result == {"stopping": True, "seq": 2}
    running_node.thread.join(timeout=10)
    assert not running_node.thread.is_alive()
    assert not running_node.home.runtime_path.exists()
    with pytest.raises(ClientError):
        alice.ping()
    for client in running_node.clients:
        client.close()


def test_replies_to_a_gateway_reject_keep_their_place(running_node):
    """Gateway answers and engine answers interleave in command order within one reply."""
    bob = running_node.client("bob")
    events = submit(
        bob,
        [
            new("b1", "buy", "10", "1", BOB),
            new("x1", "buy", "10", "1", ALICE),
            new("b2", "buy", "1.001", "1", BOB),
            new("b3", "buy", "11", "1", BOB),
        ],
    )
    assert outcome(events) == [
        ("accepted", None, "b1"),
        ("rejected", "not_authorized", "x1"),
        ("rejected", "off_tick", "b2"),
        ("accepted", None, "b3"),
    ]


@pytest.mark.timeout(60)
def test_a_client_whose_handshake_was_refused_fails_its_next_request_instead_of_waiting(
    running_node, tmp_path
):
    """Once the node refused its handshake, each request fails as unreachable within the
    client's timeout, the send included: on a loaded run a ping's send waited for a connection
    until the suite's 600 s bound (the client now sends only within its timeout)."""
    client = Client(running_node.address, stranger_key(tmp_path), timeout_s=REFUSED_WAIT_S)
    monitor = client.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    try:
        assert monitor.poll(30_000), "the node never refused the handshake"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
        for request in (client.ping, lambda: client.submit([new("s1", "buy", "10", "1", ALICE)])):
            with pytest.raises(ClientError) as failed:
                request()
            assert failed.value.unreachable
    finally:
        client.socket.disable_monitor()
        monitor.close(linger=0)
        client.close()

"""`mnode peers revoke`: against a running node (its resting orders cancelled with reason
`peer_revoked`, journaled and reported; its connection dropped; `--keep-orders` leaves the
orders), and with no node running (the allowlist edited and the orders cancelled in the store,
so none is on the books at the next start)."""

from __future__ import annotations

import time

import msgspec
import zmq
from typer.testing import CliRunner
from zmq.utils.monitor import recv_monitor_message

from marketnode.cli.main import app
from marketnode.node.core.commands import CancelOrder
from marketnode.node.core.reasons import CancelReason
from marketnode.node.store.lmdb_store import Store

PUNK = "PUNK-ETH"
ALICE, BOB = "0xa11ce", "0xb0b"
WAIT_S = 30.0
runner = CliRunner()


def sell(order_id: str, owner: str, price: str = "150") -> dict:
    return {"op": "new", "market": PUNK, "id": order_id, "owner": owner, "side": "sell",
            "price": price, "qty": "1"}  # fmt: skip


def rest(client, *orders: dict) -> None:
    events = msgspec.to_builtins(client.submit(list(orders)).events)
    assert [e["event"] for e in events if e["event"] == "rested"] == ["rested"] * len(orders)


def revoke(home, *args: str):
    return runner.invoke(app, ["peers", "revoke", *args, "--home", str(home.path)])


def ask_prices(home) -> list[str]:
    book = runner.invoke(app, ["book", PUNK, "--json", "--home", str(home.path)])
    assert book.exit_code == 0, book.stderr
    return [level["price"] for level in msgspec.json.decode(book.stdout)["asks"]]


def last_cancels(home) -> list[tuple[str, str]]:
    """(id, reason) of the cancels among the journal's last commands (the node stopped: LMDB
    opens a store once per process)."""
    with Store(home.store_path(home.config()), readonly=True) as store:
        length = store.state().journal_length
        return [
            (command.id, command.reason)
            for _, command in store.journal(start=max(0, length - 10))
            if type(command) is CancelOrder
        ]


def until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_revoke_cancels_the_peers_orders_and_drops_its_connection(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    rest(alice, sell("a1", ALICE), sell("a2", ALICE, "151"))
    rest(bob, sell("b1", BOB, "152"))
    monitor = alice.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    revoked = revoke(running_node.home, "alice")
    assert revoked.exit_code == 0, revoked.stderr
    assert revoked.stderr == (
        "revoked peer alice: 2 resting orders cancelled (peer_revoked); 1 connection dropped; "
        "0 market-data connections dropped; its key is refused\n"
    )
    assert monitor.poll(WAIT_S * 1000), "alice's connection was not dropped"
    assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
    status = running_node.admin().call("status")
    assert status["resting_orders"] == 1
    assert "alice" not in {p["name"] for p in running_node.admin().call("peers")}
    # others are served throughout
    rest(bob, sell("b2", BOB, "153"))
    running_node.stop()
    assert sorted(last_cancels(running_node.home)) == [
        ("a1", CancelReason.PEER_REVOKED),
        ("a2", CancelReason.PEER_REVOKED),
    ]


def test_revoke_drops_the_peers_market_data_connections(running_node):
    watching = running_node.subscriber("alice", [PUNK])
    other = running_node.subscriber("bob", [PUNK])
    bob = running_node.client("bob")
    # both subscriptions are live (a slow joiner misses what was sent before it subscribed)
    count = 0

    def both_receive() -> bool:
        nonlocal count
        count += 1
        rest(bob, sell(f"warm{count}", BOB, f"{160 + count}"))
        return watching.receive(200) is not None and other.receive(200) is not None

    until(both_receive, "both subscribers to receive market data")
    while watching.receive(100) is not None or other.receive(100) is not None:
        pass
    monitor = watching.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    revoked = revoke(running_node.home, "alice")
    assert revoked.exit_code == 0, revoked.stderr
    assert "1 market-data connection dropped" in revoked.stderr
    assert monitor.poll(WAIT_S * 1000), "alice's market-data connection was not dropped"
    assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
    # what is published now reaches bob's subscription and not alice's (refused on reconnect)
    rest(bob, sell("after", BOB, "199"))
    assert other.receive(int(WAIT_S * 1000)) is not None
    assert watching.receive(500) is None


def test_revoke_keep_orders_leaves_them_on_the_books(running_node):
    alice = running_node.client("alice")
    rest(alice, sell("a1", ALICE))
    revoked = revoke(running_node.home, "alice", "--keep-orders")
    assert revoked.exit_code == 0, revoked.stderr
    assert revoked.stderr.startswith("revoked peer alice: resting orders kept (--keep-orders); ")
    assert running_node.admin().call("status")["resting_orders"] == 1


def test_revoke_an_unknown_peer_is_one_line(running_node):
    refused = revoke(running_node.home, "mallory")
    assert refused.exit_code == 2
    assert refused.stderr == "mnode: no peer named 'mallory'\n"


def test_revoke_with_no_node_running_cancels_in_the_store(node_factory):
    running = node_factory(peers={"alice": (ALICE,), "bob": (BOB,)})
    rest(running.client("alice"), sell("a1", ALICE), sell("a2", ALICE, "151"))
    rest(running.client("bob"), sell("b1", BOB, "152"))
    running.stop()
    until(lambda: not running.home.runtime_path.exists(), "the node to stop")
    home = running.home
    assert ask_prices(home) == ["150", "151", "152"]

    revoked = revoke(home, "alice")
    assert revoked.exit_code == 0, revoked.stderr
    assert revoked.stderr == (
        "revoked peer alice (no node running): 2 resting orders cancelled (peer_revoked) in "
        "the store\n"
    )
    assert sorted(last_cancels(home)) == [
        ("a1", CancelReason.PEER_REVOKED),
        ("a2", CancelReason.PEER_REVOKED),
    ]
    assert ask_prices(home) == ["152"]
    verified = runner.invoke(app, ["verify", "--home", str(home.path)])
    assert verified.exit_code == 0, verified.stdout
    listed = runner.invoke(app, ["peers", "list", "--json", "--home", str(home.path)])
    assert [peer["name"] for peer in msgspec.json.decode(listed.stdout)] == ["bob"]
    again = revoke(home, "alice")
    assert again.exit_code == 2  # an unknown name is an input error, as with a node running
    assert again.stderr == "mnode: no peer named 'alice'\n"

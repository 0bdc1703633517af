"""A market taking signed orders moved between two real nodes (CURVE, LMDB, their verifier
processes) by the admin requests `mnode markets move` makes: the moved signed order matches on
the destination and is cancelled there by its owner's signed cancel, a replay of a nonce used
on the source is refused `nonce_used`, and `mnode verify` passes on both nodes."""

from __future__ import annotations

import pytest
from conftest import LOOPBACK_ENDPOINTS, NO_ANALYTICS, RunningNode, start_node
from signed_orders import WALLETS, signed_cancel, signed_home, signed_new
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.chain.journal_trades import JournalTrades
from marketnode.node.home.peers import Peer, load_allowlist, save_allowlist
from marketnode.node.store.lmdb_store import Store

ALICE, BOB = WALLETS[0], WALLETS[1]
MARKET = "PUNK-ETH"
WAIT_S = 30.0


@pytest.fixture
def two_nodes(tmp_path):
    """Nodes a and b with the signed markets, the same relaying peer registered on both."""
    started: list[RunningNode] = []
    for name in ("a", "b"):
        running = start_node(signed_home(tmp_path / name, LOOPBACK_ENDPOINTS + NO_ANALYTICS))
        started.append(running)
    source, destination = started
    key = source.add_peer("relay", (), relayer=True)
    path = destination.home.peers_path(destination.home.config())
    relay = Peer("relay", key.public_text, (), relayer=True)
    save_allowlist(path, load_allowlist(path).with_peer(relay))
    destination.keys["relay"] = key
    yield source, destination
    for running in started:
        if running.thread.is_alive():
            running.stop()


def outcome(reply) -> list[tuple[str, str | None]]:
    return [(type(e).__struct_config__.tag, getattr(e, "reason", None)) for e in reply.events]


def test_a_signed_market_moves_and_its_used_nonces_are_refused_there(two_nodes):
    source, destination = two_nodes
    on_source = source.client("relay", WAIT_S)
    resting = signed_new(ALICE, "sell", "100.5", "3", nonce=1)
    cancelled = signed_new(ALICE, "sell", "102", "1", nonce=2)
    assert outcome(on_source.submit([resting, cancelled])) == [
        ("accepted", None), ("rested", None), ("accepted", None), ("rested", None)]  # fmt: skip
    assert outcome(on_source.submit([signed_cancel(ALICE, cancelled)]))[-1] == ("cancelled", "user")

    with source.admin() as admin:
        book = admin.call("market_export", market=MARKET, params=["b", "move-1"])
    book = {key: value for key, value in book.items() if key not in ("seq", "again")}
    assert [order[1] for order in book["orders"]] == [resting["id"]]  # array-like: owner, id, ...
    assert any(owner[0] == ALICE.address.lower() for owner in book["nonces"])
    placed = book["orders"][0][10]  # the journaled signed `new`, for the destination's relayer
    assert (placed["sig"], placed["qty"], placed["max_fee_bps"]) == (resting["sig"], "3", 30)
    with destination.admin() as admin:
        admin.call("halt", market=MARKET)
        imported = admin.call("market_import", market=MARKET, params=[book])
        assert (imported["hash"], imported["orders"]) == (book["hash"], 1)
        admin.call("resume", market=MARKET)

    on_destination = destination.client("relay", WAIT_S)
    buy = signed_new(BOB, "buy", "100.5", "2", nonce=1)
    reply = on_destination.submit([buy])
    assert outcome(reply) == [("accepted", None), ("trade", None)]
    assert (reply.events[1].maker_id, reply.events[1].qty) == (resting["id"], "2")
    replays = [{**resting, "id": "resting-again"}, cancelled]
    assert outcome(on_destination.submit(replays)) == [("rejected", "nonce_used")] * 2
    assert outcome(on_destination.submit([signed_cancel(ALICE, resting)])) == [
        ("accepted", None), ("cancelled", "user")]  # fmt: skip
    assert outcome(on_source.submit([signed_new(ALICE, "sell", "100", "1", nonce=3)])) == [
        ("rejected", "market_halted")]  # fmt: skip

    for running in (source, destination):
        running.stop()
        verified = CliRunner().invoke(app, ["verify", "--home", str(running.home.path)])
        assert verified.exit_code == 0, verified.output

    # the destination's relayer settles the moved order's trade as the same signed order
    home = destination.home
    with Store(home.store_path(home.config()), readonly=True) as store:
        trades = [t for _, found in JournalTrades(store, 30.0).follow(0) for t in found]
    assert [(t.seq, t.qty) for t in trades] == [(reply.events[1].seq, 2)]
    sell_order = trades[0].entry[2]
    assert sell_order[0].lower() == ALICE.address.lower() and sell_order[6] == 3  # signed qty
    assert trades[0].entry[4] == resting["sig"]  # the sell side's signature

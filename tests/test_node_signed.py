"""Signed orders through a running node over CURVE: accepted end to end, each reject reason on
the wire, the per-market signature modes, answers kept in order while signatures are checked,
verifier workers killed mid-flight, expiry while resting, and the journal's replay (verify,
restart) reproducing the books, the nonces and the state hash."""

from __future__ import annotations

import os
import signal
import time

import msgspec
import pytest
from conftest import LOOPBACK_ENDPOINTS, NO_ANALYTICS, RunningNode, start_node
from signed_orders import (
    CHAIN_ID,
    CONTRACT,
    WALLETS,
    signed_cancel,
    signed_home,
    signed_new,
)

from marketnode.node.home.layout import Home
from marketnode.node.protocol.messages import Pong, Reply
from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.verify import verify_store

ALICE, BOB = WALLETS[0], WALLETS[1]
WAIT_S = 30.0


@pytest.fixture
def signed_node(tmp_path):
    started: list[RunningNode] = []

    def start(path_name: str = "home") -> RunningNode:
        path = tmp_path / path_name
        restart = path.exists()
        home = Home(path) if restart else signed_home(path, LOOPBACK_ENDPOINTS + NO_ANALYTICS)
        running = start_node(home)
        if restart:
            running.keys.update(started[0].keys)
        else:
            running.add_peer("relay", (), relayer=True)
            running.add_peer("plain", ("0xa11ce",))
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


def kinds(reply: Reply) -> list[str]:
    return [type(event).__struct_config__.tag for event in reply.events]


def reasons(reply: Reply) -> list[tuple[str, int | None]]:
    return [(event.reason, event.seq) for event in reply.events]


def test_signed_orders_trade_end_to_end_over_curve(signed_node):
    running = signed_node()
    relay = running.client("relay", WAIT_S)
    (punk, land, gold) = relay.markets().markets
    assert (punk.signatures, land.signatures, gold.signatures) == ("optional", "required", "off")
    assert (punk.chain_id, punk.contract) == (CHAIN_ID, CONTRACT.lower())
    assert (punk.lot_units, punk.tick_units, punk.fee_bps) == (str(10**18), str(10**16), 10)
    assert gold.chain_id == CHAIN_ID and gold.base_token is None

    sell = signed_new(ALICE, "sell", "100.5", "3", nonce=1)
    assert kinds(relay.submit([sell])) == ["accepted", "rested"]
    buy = signed_new(BOB, "buy", "100.5", "2", nonce=1, market="PUNK-ETH")
    reply = relay.submit([buy])
    assert kinds(reply) == ["accepted", "trade"]
    trade = reply.events[1]
    assert (trade.maker_owner, trade.taker_owner) == (ALICE.address.lower(), BOB.address.lower())
    assert (trade.price, trade.qty) == ("100.5", "2")

    # in the journal: the digest and the signature with each order
    running.stop()
    with Store(running.home.store_path(running.home.config()), readonly=True) as store:
        commands = [command for _, command in store.journal()]
        news = [c for c in commands if type(c).__name__ == "NewOrder"]
        assert [c.sig for c in news] == [sell["sig"], buy["sig"]]
        assert all(c.order_hash and len(c.order_hash) == 66 for c in news)
        assert any(type(c).__name__ == "Clock" for c in commands)


def test_each_reject_reason_on_the_wire(signed_node):
    running = signed_node()
    relay = running.client("relay", WAIT_S)
    assert kinds(relay.submit([signed_new(ALICE, "sell", "101", "1", nonce=7)])) == [
        "accepted",
        "rested",
    ]
    tampered = signed_new(ALICE, "sell", "101", "1", nonce=8, tamper={"price": "102"})
    other_chain = signed_new(ALICE, "sell", "101", "1", nonce=9, tamper={"chain_id": 1})
    signed_elsewhere = signed_new(ALICE, "sell", "101", "1", nonce=10, sign_chain_id=5)
    expired = signed_new(ALICE, "sell", "101", "1", nonce=11, expiry=int(time.time()) - 1)
    replayed = signed_new(ALICE, "sell", "103", "1", nonce=7)
    high_fee = signed_new(ALICE, "sell", "101", "1", nonce=12, tamper={"max_fee_bps": 70000})
    stranger = signed_new(BOB, "sell", "101", "1", nonce=13, tamper={"owner": ALICE.address})
    market_order = signed_new(ALICE, "sell", "101", "1", nonce=14, tamper={"type": "market"})
    reply = relay.submit(
        [tampered, other_chain, signed_elsewhere, expired, replayed, high_fee, stranger,
         market_order]
    )  # fmt: skip
    got = reasons(reply)
    assert got[:5] == [
        ("bad_signature", None),
        ("wrong_chain", None),
        ("bad_signature", None),
        ("expired", got[3][1]),
        ("nonce_used", got[4][1]),
    ]
    assert isinstance(got[3][1], int) and isinstance(got[4][1], int)  # the engine's, journaled
    assert [reason for reason, _ in got[5:]] == ["malformed", "bad_signature", "malformed"]
    assert reply.events[7].detail == "a signed order is a limit order, side buy or sell"
    # a signed order in a market that takes none, a missing signed field
    gold = signed_new(ALICE, "sell", "101", "1", nonce=15, market="PUNK-ETH")
    gold["market"] = "GOLD-USDC"
    missing = signed_new(ALICE, "sell", "101", "1", nonce=16)
    del missing["expiry"]
    reply = relay.submit([gold, missing, {**missing, "sig": "0x1234"}])
    assert [reason for reason, _ in reasons(reply)] == ["malformed"] * 3
    assert reply.events[0].detail == "market GOLD-USDC does not take signed orders"


def test_required_market_refuses_unsigned_and_optional_takes_both(signed_node):
    running = signed_node()
    relay = running.client("relay", WAIT_S)
    unsigned = {"op": "new", "market": "LAND-ETH", "id": "u1", "owner": "0xa11ce",
                "side": "buy", "price": "1", "qty": "1"}  # fmt: skip
    assert reasons(relay.submit([unsigned])) == [("bad_signature", None)]
    land = signed_new(ALICE, "buy", "1", "1", nonce=1, market="LAND-ETH")
    assert kinds(relay.submit([land])) == ["accepted", "rested"]
    # in the required market: an unsigned cancel and a replace are refused, a signed cancel taken
    cancel = {"op": "cancel", "market": "LAND-ETH", "id": land["id"], "owner": ALICE.address}
    replace = {**cancel, "op": "replace", "qty": "1"}
    assert reasons(relay.submit([cancel, replace])) == [("bad_signature", None)] * 2
    forged = signed_cancel(BOB, land, {"owner": ALICE.address})
    assert reasons(relay.submit([forged])) == [("bad_signature", None)]
    assert kinds(relay.submit([signed_cancel(ALICE, land)])) == ["accepted", "cancelled"]

    plain = {**unsigned, "market": "PUNK-ETH"}
    punk = signed_new(BOB, "sell", "1", "1", nonce=1)
    reply = relay.submit([plain, punk])
    assert kinds(reply) == ["accepted", "rested", "accepted", "trade"]
    # an unsigned peer's plain cancel of a signed order is taken in an optional market
    rest = signed_new(BOB, "sell", "5", "1", nonce=2)
    relay.submit([rest])
    cancel = {"op": "cancel", "market": "PUNK-ETH", "id": rest["id"], "owner": BOB.address}
    assert kinds(relay.submit([cancel])) == ["accepted", "cancelled"]


def test_answers_stay_in_order_for_a_connection_mixing_signed_and_unsigned(signed_node):
    running = signed_node()
    relay = running.client("relay", WAIT_S)
    other = running.client("plain", WAIT_S)
    sent = []
    for index in range(40):
        if index % 3 == 0:
            command = signed_new(ALICE, "sell", f"{200 + index}", "1", nonce=100 + index)
        else:
            command = {"op": "new", "market": "PUNK-ETH", "id": f"u{index}", "owner": "0xa11ce",
                       "side": "buy", "price": f"{1 + index}", "qty": "1"}  # fmt: skip
        sent.append(relay.send_submit([command]))
        if index % 7 == 0:
            sent.append(f"ping{index}")
            relay.socket.send(msgspec.msgpack.encode({"v": 1, "type": "ping", "ref": sent[-1]}))
    # another connection goes on meanwhile
    assert type(other.ping()) is Pong
    answers = []
    while len(answers) < len(sent):
        message = relay.receive()
        assert message is not None, f"{len(answers)} of {len(sent)} answers"
        if hasattr(message, "ref"):
            answers.append(message)
    assert [message.ref for message in answers] == sent
    assert all(kinds(message)[:1] == ["accepted"] for message in answers if type(message) is Reply)


def test_verifier_workers_killed_mid_flight_lose_nothing(signed_node):
    running = signed_node()
    relay = running.client("relay", 60.0)
    pool = running.node.signed.pool
    refs = []
    for batch in range(20):
        commands = [
            signed_new(ALICE, "sell", f"{300 + batch}", "1", nonce=1000 + batch * 10 + index)
            for index in range(10)
        ]
        refs.append(relay.send_submit(commands))
        if batch in (3, 11):
            for pid in pool.worker_pids():
                os.kill(pid, signal.SIGKILL)
    replies = []
    while len(replies) < len(refs):
        message = relay.receive()
        assert message is not None, f"{len(replies)} of {len(refs)} replies"
        replies.append(message)
    assert [reply.ref for reply in replies] == refs
    assert all(kinds(reply) == ["accepted", "rested"] * 10 for reply in replies)
    assert pool.restarts >= 1


def test_an_order_expiring_while_it_rests_is_cancelled_by_the_node(signed_node):
    running = signed_node()
    relay = running.client("relay", WAIT_S)
    soon = signed_new(ALICE, "sell", "150", "1", nonce=1, expiry=int(time.time()) + 2)
    assert kinds(relay.submit([soon])) == ["accepted", "rested"]
    report = relay.next_report(timeout_ms=int(WAIT_S * 1000))
    assert report is not None, "no report of the expired order"
    (cancelled,) = report.events
    assert (cancelled.id, cancelled.reason, cancelled.remaining) == (soon["id"], "expired", "0")
    assert relay.open_orders().orders == []


def test_replay_verify_and_restart_reproduce_signed_orders_and_nonces(signed_node):
    running = signed_node()
    relay = running.client("relay", WAIT_S)
    for nonce in (1, 2, 5, 9):
        relay.submit([signed_new(ALICE, "sell", f"{100 + nonce}", "2", nonce=nonce)])
    relay.submit([signed_new(BOB, "buy", "102", "3", nonce=1)])
    relay.submit([signed_new(BOB, "buy", "102", "1", nonce=1)])  # nonce_used
    state_hash = running.node.status()["state_hash"]
    running.stop()
    with Store(running.home.store_path(running.home.config()), readonly=True) as store:
        report = verify_store(store)
        assert report.ok, report.problems
        assert report.state_hash == state_hash
        state, _ = store.snapshot()
        assert len(state.nonce_records) == 2
    again = signed_node("home")
    relay = again.client("relay", WAIT_S)
    assert again.node.status()["state_hash"] == state_hash
    replayed = relay.submit([signed_new(ALICE, "sell", "131", "1", nonce=9)])
    assert [reason for reason, _ in reasons(replayed)] == ["nonce_used"]
    fresh = relay.submit([signed_new(ALICE, "sell", "132", "1", nonce=3)])
    assert kinds(fresh) == ["accepted", "rested"]


def test_no_verifier_runs_while_every_market_has_signatures_off(node_factory):
    assert node_factory().node.signed is None

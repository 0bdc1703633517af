"""A raised minimum nonce in the engine (`RaiseMinNonce`), on both cores: the owner's resting
signed orders below it are cancelled (reason `min_nonce`), a new one below it is refused
`nonce_used`, a lower or equal one changes nothing; the store keeps each resting order's nonce
across a restart, and a store written before orders kept it still verifies, to the same state
hash, and is given its orders' nonces from the journal.
"""

from __future__ import annotations

import msgspec
import pytest
from engine_cores import CORES, assert_same_events, engine_of, state_hash, state_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketnode.node.core.commands import (
    CancelOrder,
    Clock,
    MalformedCommand,
    NewOrder,
    RaiseMinNonce,
    decode_json_command,
)
from marketnode.node.core.events import Cancelled, Rejected
from marketnode.node.core.reasons import CancelReason, Reason
from marketnode.node.home.config import default_markets
from marketnode.node.protocol.decoding import decode_command
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.statehash import order_key
from marketnode.node.store.verify import verify_store

MARKETS = default_markets()
SIGNED = {"sig": "0x" + "11" * 65, "chain_id": 31337, "max_fee_bps": 30}
ALICE, BOB = f"0x{1:040x}", f"0x{2:040x}"
EXPIRY = 10_000


def signed(order_id, owner: str, side: str, price: str, nonce, market="PUNK-ETH") -> NewOrder:
    """A signed order whose digest stands for its id (the engine takes the node's word)."""
    digest = f"0x{abs(hash((owner, order_id))) % 2**256:064x}"
    return NewOrder(order_id, owner, market, side, price=price, qty="1", nonce=nonce,
                    expiry=EXPIRY, order_hash=digest, **SIGNED)  # fmt: skip


def resting_nonces(engine, owner: str) -> dict:
    return {order.id: order.nonce for order in engine.resting_orders() if order.owner == owner}


@pytest.mark.parametrize("core", CORES)
def test_raising_the_minimum_cancels_the_orders_below_it_and_refuses_new_ones(core):
    engine = engine_of(core, MARKETS)
    engine.process(Clock(1_000), [])
    engine.process_all([signed(f"a{n}", ALICE, "buy", str(10 + n % 3), n) for n in range(6)])
    engine.process_all([signed("b0", BOB, "buy", "10", 0), signed("b1", BOB, "sell", "50", 1)])
    engine.process_all([NewOrder("u", ALICE, "PUNK-ETH", "buy", price="9", qty="1")])
    assert resting_nonces(engine, ALICE) == {f"a{n}": n for n in range(6)} | {"u": None}

    out = engine.process_all([RaiseMinNonce(ALICE, 3)])
    assert [(type(e), e.id, e.reason, e.qty, e.remaining) for e in out] == [
        (Cancelled, f"a{n}", CancelReason.MIN_NONCE, 1, 0) for n in range(3)
    ]
    assert [event.seq for event in out] == sorted(event.seq for event in out)
    assert resting_nonces(engine, ALICE) == {"a3": 3, "a4": 4, "a5": 5, "u": None}
    assert len(resting_nonces(engine, BOB)) == 2
    assert engine.nonces.state_of(ALICE) == (6, [])

    before = (engine.seq, state_hash(engine))
    for lower_or_equal in (3, 2, "0"):
        assert engine.process_all([RaiseMinNonce(ALICE, lower_or_equal)]) == []
    assert (engine.seq, state_hash(engine)) == before

    refused = engine.process_all([signed("late", ALICE, "buy", "10", 2)])
    assert [(type(e), e.reason) for e in refused] == [(Rejected, Reason.NONCE_USED)]
    out = engine.process_all([RaiseMinNonce(ALICE, str(2**200)), RaiseMinNonce(f"0x{9:040x}", 4)])
    assert [event.id for event in out] == ["a3", "a4", "a5"]
    assert engine.nonces.state_of(ALICE) == (2**200, [])
    assert engine.nonces.state_of(f"0x{9:040x}") == (4, [])
    refused = engine.process_all([signed("big", ALICE, "buy", "10", str(2**200 - 1))])
    assert [(type(e), e.reason) for e in refused] == [(Rejected, Reason.NONCE_USED)]
    assert resting_nonces(engine, ALICE) == {"u": None}


def test_a_peer_cannot_send_a_raised_minimum():
    """Only the node journals it (from the chain): from a peer it is not a command."""
    command = {"op": "min_nonce", "owner": ALICE, "min_nonce": 10**9, "id": "x"}
    with pytest.raises(MalformedCommand):
        decode_json_command(msgspec.json.encode(command))
    refused = decode_command(msgspec.Raw(msgspec.msgpack.encode(command)))
    assert (type(refused), refused.reason) == (Rejected, Reason.MALFORMED)


@pytest.mark.parametrize("core", CORES)
def test_a_raised_floor_drops_the_used_nonces_under_it(core):
    engine = engine_of(core, MARKETS)
    engine.process(Clock(1_000), [])
    engine.process_all([signed(f"a{n}", ALICE, "buy", "10", n) for n in (0, 4, 7, 8)])
    assert engine.nonces.state_of(ALICE) == (1, [4, 7, 8])
    out = engine.process_all([RaiseMinNonce(ALICE, 7)])
    assert [event.id for event in out] == ["a0", "a4"]
    assert engine.nonces.state_of(ALICE) == (9, [])  # 7 and 8 were used: the floor passes them


OWNERS = (ALICE, BOB, f"0x{3:040x}")
step = st.one_of(
    st.tuples(st.just("new"), st.sampled_from(OWNERS), st.integers(0, 12), st.sampled_from(
        ("buy", "sell")), st.integers(8, 14)),
    st.tuples(st.just("raise"), st.sampled_from(OWNERS), st.integers(0, 14)),
    st.tuples(st.just("cancel"), st.sampled_from(OWNERS), st.integers(0, 40)),
    st.tuples(st.just("clock"), st.integers(1_000, 1_010)),
)  # fmt: skip


def commands_of(steps: list[tuple]) -> list:
    commands: list = [Clock(1_000)]
    for number, (kind, *fields) in enumerate(steps):
        if kind == "new":
            owner, nonce, side, price = fields
            expiry = 1_000 + number % 12
            order = signed(number, owner, side, str(price), nonce)
            commands.append(msgspec.structs.replace(order, expiry=expiry))
        elif kind == "raise":
            commands.append(RaiseMinNonce(fields[0], fields[1]))
        elif kind == "cancel":
            commands.append(CancelOrder(fields[1], fields[0], "PUNK-ETH"))
        else:
            commands.append(Clock(fields[0]))
    return commands


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=80), st.integers(1, 9))
def test_both_cores_give_the_same_events_and_state_with_raised_minimums(steps, batch):
    """Signed orders of few owners crossing, expiring and cancelled, with their minimums
    raised in between: the same events, books, nonces and state hash from both cores, and no
    resting order below its owner's raised minimum."""
    commands = commands_of(steps)
    python, compiled_engine = engine_of("python", MARKETS), engine_of("compiled", MARKETS)
    raised: dict[str, int] = {}
    for start in range(0, len(commands), batch):
        chunk = commands[start : start + batch]
        want, got = python.process_all(chunk), compiled_engine.process_all(chunk)
        assert_same_events(got, want)
        assert state_of(compiled_engine) == state_of(python)
        for command in chunk:
            if type(command) is RaiseMinNonce:
                raised[command.owner] = max(raised.get(command.owner, 0), command.min_nonce)
        for order in python.resting_orders():
            assert order.nonce >= raised.get(order.owner, 0)


def test_the_store_keeps_resting_nonces_and_an_older_store_verifies(tmp_path):
    """A restart restores each resting order's nonce; records as a store wrote them before
    orders kept their nonce (eight fields) hash the same, verify against the replay, and are
    given their nonces from the journal when the store is opened."""
    commands = [Clock(1_000), *(signed(f"a{n}", ALICE, "buy", str(10 + n), n) for n in range(4)),
                signed("b0", BOB, "sell", "50", 0)]  # fmt: skip
    with Store(tmp_path / "store", map_size=32 << 20) as store:
        durable = DurableEngine(store)
        durable.configure(MARKETS)
        durable.submit(commands)
        live_hash = durable.book_hash.value
        older = [(order_key(o), msgspec.msgpack.encode(
            (o.is_buy, o.price, o.remaining, o.priority, o.stp, o.peer, o.expiry, o.order_hash)))
            for o in durable.engine.resting_orders()]  # fmt: skip
        store.put_orders(older)
    with Store(tmp_path / "store", readonly=True) as store:
        report = verify_store(store)
        assert report.ok, report.problems
        assert report.state_hash == f"{live_hash:016x}"
        assert {key: value for key, value in store.snapshot()[1]} == dict(older)

    with Store(tmp_path / "store", map_size=32 << 20) as store:
        reopened = DurableEngine(store)
        assert reopened.book_hash.value == live_hash
        assert resting_nonces(reopened.engine, ALICE) == {f"a{n}": n for n in range(4)}
        events = reopened.submit([RaiseMinNonce(ALICE, 2)])
        assert [event.id for event in events] == ["a0", "a1"]
    with Store(tmp_path / "store", map_size=32 << 20) as store:
        again = DurableEngine(store)
        assert resting_nonces(again.engine, ALICE) == {"a2": 2, "a3": 3}
        assert resting_nonces(again.engine, BOB) == {"b0": 0}
        assert again.engine.nonces.state_of(ALICE) == (4, [])
        assert verify_store(store).ok

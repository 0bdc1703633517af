"""The signed commands held in one turn of the node's loop go to the verifier pool together,
whatever messages they came in, and the messages still leave in their connection's order with
each one's own verdicts (in-process: the intake and a real pool, no node)."""

from __future__ import annotations

import time

from marketnode.node.chain.orders import dev_wallets
from marketnode.node.core.engine import Engine
from marketnode.node.server.answers import Pending
from marketnode.node.server.signed_intake import MAX_BATCH_ITEMS, Held, SignedIntake
from marketnode.node.tools.e2e import make_signed, prepare_home
from marketnode.node.tools.load import signed_flow

WAIT_S = 60.0
CONNECTIONS = (b"\x00first", b"\x00second")


def _held_messages(tmp_path, count: int):
    """`count` one-order messages of signed orders, alternating between two connections, and
    the intake of a node whose markets take them (the e2e bench's settings)."""
    home, _ = prepare_home(tmp_path / "home")
    make_signed(home.path)
    config = home.config()
    markets = [spec for spec in config.markets if spec.signatures != "off"]
    orders = signed_flow(count, 3, markets, config.settlement, dev_wallets(4))
    orders[1].sig = orders[1].sig[:-2] + ("1b" if orders[1].sig[-2:] != "1b" else "1c")
    engine = Engine(config.markets)
    messages = [Held(Pending(CONNECTIONS[n % 2], None, "load", n), [order], None, 1)
                for n, order in enumerate(orders)]  # fmt: skip
    return SignedIntake(config.settlement, engine.books), engine.books, messages


def test_one_order_messages_are_checked_in_one_batch_and_leave_in_order(tmp_path):
    count = MAX_BATCH_ITEMS + 10
    intake, books, messages = _held_messages(tmp_path, count)
    now = int(time.time())
    try:
        for held in messages:
            intake.hold(held, books, now)
        assert intake.pool.pending == 1  # a full batch went as soon as it was gathered
        assert intake.ready  # the rest go at the loop's next turn, which comes at once
        assert list(intake.release(books, now)) == []
        assert intake.pool.pending == 2
        released: list[Held] = []
        deadline = time.monotonic() + WAIT_S
        while len(released) < count:
            assert time.monotonic() < deadline, f"{len(released)} of {count} released"
            intake.pool.socket.poll(100)
            intake.collect()
            released += intake.release(books, now)
    finally:
        intake.close()
    for connection in CONNECTIONS:
        refs = [held.pending.ref for held in released if held.pending.identity == connection]
        assert refs == sorted(refs) and len(refs) == count // 2
    reasons = {held.pending.ref: held.verdicts[0].reason for held in released}
    assert reasons[1] == "bad_signature"  # its signature's v flipped
    assert {reason for ref, reason in reasons.items() if ref != 1} == {None}
    assert all(held.verdicts[0].order_hash for held in released)

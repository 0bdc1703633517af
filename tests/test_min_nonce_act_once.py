"""The node acts on each relayer notice exactly once: the record that a notice was acted on is
written in the LMDB transaction of the commands acting on it. A node process killed right
after that transaction has journaled the commands and recorded the notice, so the notice sent
again changes nothing; killed inside it, it has done neither, and the notice sent again is
acted on then. Shown for a failed trade (the owner's cancels) and a raised minimum nonce.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from marketnode.node.core.commands import CancelOrder, Clock, NewOrder, RaiseMinNonce
from marketnode.node.core.reasons import CancelReason
from marketnode.node.home.config import SettlementConfig, default_markets
from marketnode.node.home.layout import Home
from marketnode.node.ops.metrics import LoopMetrics
from marketnode.node.protocol.settlement import MinNonceNotice, TradeNotice
from marketnode.node.server.answers import Outbox
from marketnode.node.server.marketdata import MarketDataPublisher
from marketnode.node.server.settlement_link import SettlementLink
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store

OWNER, OTHER = f"0x{0xA1:040x}", f"0x{0xB2:040x}"
SIGNED = {"sig": "0x" + "11" * 65, "chain_id": 31337, "max_fee_bps": 30, "expiry": 10**9}
FAILED = TradeNotice(41, "PUNK-ETH", "failed", "seller_transfer_failed", "0x" + "ab" * 32, 9,
                     OTHER, OWNER, "sell", None, None)  # fmt: skip
RAISED = MinNonceNotice(OWNER, "2", 9)


def signed(order_id: str, owner: str, side: str, price: str, nonce: int) -> NewOrder:
    return NewOrder(order_id, owner, "PUNK-ETH", side, price=price, qty="1", nonce=nonce,
                    order_hash=f"0x{nonce:064x}", **SIGNED)  # fmt: skip


class Node:
    """What the node's settlement link needs around it: the durable engine on a real store,
    the order and market-data sockets (real, unconnected), and the link itself."""

    def __init__(self, folder: Path) -> None:
        self.store = Store(folder / "store", map_size=32 << 20)
        self.durable = DurableEngine(self.store)
        self.context = zmq.Context()
        orders, data = self.context.socket(zmq.ROUTER), self.context.socket(zmq.PUB)
        for socket in (orders, data):
            socket.linger = 0
        self.link = SettlementLink(
            Home(folder), SettlementConfig(), self.context, self.durable,
            Outbox(orders, LoopMetrics(), {}), MarketDataPublisher(data, 1), None,  # type: ignore[arg-type]
        )  # fmt: skip

    def close(self) -> None:
        self.context.destroy()
        self.store.close()

    def journal(self) -> list:
        return [command for _, command in self.store.journal()]


def prepared(folder: Path) -> None:
    node = Node(folder)
    node.durable.configure(default_markets())
    node.durable.submit([Clock(1_000), *(signed(f"s{n}", OWNER, "sell", str(50 + n), n)
                                         for n in range(4))])  # fmt: skip
    node.close()


def killed_at(folder: Path, where: str, act: Callable[[SettlementLink], object]) -> None:
    """Run `act` in a child process that dies (as by SIGKILL: no clean-up) at `where`:
    "after" the commit's transaction, or "inside" it, before it commits."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            original = Store._write if where == "inside" else Store.commit

            def dying(*arguments, **keywords):
                original(*arguments, **keywords)
                os._exit(0)

            setattr(Store, "_write" if where == "inside" else "commit", dying)
            act(Node(folder).link)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child did not die at the commit"


def settlement_cancels(journal: list) -> list:
    return [c.id for c in journal
            if type(c) is CancelOrder and c.reason == CancelReason.SETTLEMENT_FAILED]  # fmt: skip


@pytest.mark.parametrize("where", ["after", "inside"])
def test_a_failed_trade_is_acted_on_once_whenever_the_node_dies(tmp_path, where):
    prepared(tmp_path)
    killed_at(tmp_path, where, lambda link: link.handle(FAILED))
    node = Node(tmp_path)
    try:
        done = where == "after"
        assert settlement_cancels(node.journal()) == (["s0", "s1", "s2", "s3"] if done else [])
        assert ("41" in node.link.handled) is done
        node.durable.submit([signed("s9", OWNER, "sell", "60", 9)])
        assert node.link.handle(FAILED)  # the notice sent again: acknowledged
        resting = {order.id for order in node.durable.engine.resting_orders()}
        assert resting == ({"s9"} if done else set())
        assert sorted(settlement_cancels(node.journal())) == (
            ["s0", "s1", "s2", "s3"] if done else ["s0", "s1", "s2", "s3", "s9"]
        )
    finally:
        node.close()


@pytest.mark.parametrize("where", ["after", "inside"])
def test_a_raised_minimum_is_journaled_once_whenever_the_node_dies(tmp_path, where):
    prepared(tmp_path)
    killed_at(tmp_path, where, lambda link: link.handle_min_nonce(RAISED))
    node = Node(tmp_path)
    try:
        raises = [c for c in node.journal() if type(c) is RaiseMinNonce]
        assert len(raises) == (1 if where == "after" else 0)
        assert node.link.handle_min_nonce(RAISED)
        assert node.link.handle_min_nonce(RAISED)  # heard twice in one run, too
        raises = [c for c in node.journal() if type(c) is RaiseMinNonce]
        assert [(c.owner, c.min_nonce) for c in raises] == [(OWNER, "2")]
        assert {order.id for order in node.durable.engine.resting_orders()} == {"s2", "s3"}
        assert node.durable.engine.nonces.state_of(OWNER) == (4, [])
    finally:
        node.close()

"""The relayer follows the settlement contract's `MinNonceRaised` logs on anvil: from the
contract's deployment block, only once a log's block is under the confirmations (a raise
reorganised out before that is never told), resumed from the block kept in its state store
after a restart; each raise is a notice for the node, sent until the node acknowledges it.
"""

from __future__ import annotations

import time

import pytest
import zmq
from chain_fixtures import Market, anvil_web3_fixture, open_market  # noqa: F401 - a fixture
from test_relayer import RELAYER, anvil_call, mine

from marketnode.node.chain.journal_trades import JournalTrades
from marketnode.node.chain.relayer import Relayer, RelayerSettings, deployment_block
from marketnode.node.chain.relayer_service import NodeNotifier
from marketnode.node.chain.settlement_store import SettlementStore
from marketnode.node.protocol.settlement import (
    MinNonceNotices,
    MinNoncesAcknowledged,
    settlement_encoder,
)
from marketnode.node.server.settlement_link import relayer_decoder
from marketnode.node.store.lmdb_store import Store

CONFIRMATIONS = 3
WAIT_S = 60.0


@pytest.fixture
def market(anvil_web3) -> Market:
    return open_market(anvil_web3)


@pytest.fixture
def journal(tmp_path):
    Store(tmp_path / "store").close()  # an empty journal: no trades to settle here
    with Store(tmp_path / "store", readonly=True) as store:
        yield JournalTrades(store, 1.0)


def relayer_of(market: Market, state: SettlementStore, journal: JournalTrades) -> Relayer:
    return Relayer(market.w3, RELAYER, market.deployment.settlement, state, journal,
                   RelayerSettings(confirmations=CONFIRMATIONS))  # fmt: skip


def raised(state: SettlementStore) -> list[tuple]:
    rows = state.db.execute("SELECT owner, min_nonce, block FROM min_nonces ORDER BY block")
    return [tuple(row) for row in rows]


def test_raised_minimums_are_read_under_the_confirmations_once_and_resumed(
    market, journal, tmp_path
):
    w3, seller = market.w3, market.seller
    settlement = market.deployment.settlement
    state = SettlementStore(tmp_path / "state.sqlite")
    relayer = relayer_of(market, state, journal)
    first = deployment_block(w3, settlement, w3.eth.block_number)
    assert w3.eth.get_code(settlement, first) and not w3.eth.get_code(settlement, first - 1)

    receipt = market.as_owner(seller, market.settlement.functions.set_min_nonce(5))
    assert relayer.follow_min_nonces() == 0  # its block is not under the confirmations yet
    assert state.meta("min_nonce_block") == receipt["blockNumber"] - CONFIRMATIONS + 2
    assert first <= state.meta("min_nonce_block")
    mine(w3, CONFIRMATIONS - 1)
    assert relayer.follow_min_nonces() == 1
    owner = seller.address.lower()
    assert raised(state) == [(owner, "5", receipt["blockNumber"])]

    # a raise whose block is replaced before it is final is never read
    market.as_owner(seller, market.settlement.functions.increment_min_nonce())
    anvil_call(w3, "anvil_reorg", 1, [])
    assert market.settlement.functions.min_nonce(seller.address).call() == 5
    mine(w3, CONFIRMATIONS)
    assert relayer.follow_min_nonces() == 0

    # a new run resumes where the store says: what came meanwhile is read, nothing twice
    state.close()
    big = market.as_owner(seller, market.settlement.functions.set_min_nonce(2**200))
    mine(w3, CONFIRMATIONS - 1)
    state = SettlementStore(tmp_path / "state.sqlite")
    again = relayer_of(market, state, journal)
    assert again.follow_min_nonces() == 1
    assert raised(state) == [(owner, "5", receipt["blockNumber"]),
                             (owner, str(2**200), big["blockNumber"])]  # fmt: skip
    assert again.follow_min_nonces() == 0
    state.close()


def test_each_raise_is_told_to_the_node_until_it_acknowledges(market, journal, tmp_path):
    state = SettlementStore(tmp_path / "state.sqlite")
    relayer = relayer_of(market, state, journal)
    market.as_owner(market.seller, market.settlement.functions.set_min_nonce(7))
    mine(market.w3, CONFIRMATIONS - 1)
    relayer.follow_min_nonces()
    context = zmq.Context()
    endpoint = f"ipc://{tmp_path / 'notices.sock'}"
    node = context.socket(zmq.ROUTER)
    node.linger = 0
    node.bind(endpoint)
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    socket.connect(endpoint)
    notifier = NodeNotifier(socket, b"token", state, relayer.contract, relayer.chain_id,
                            CONFIRMATIONS)  # fmt: skip
    try:
        heard = []
        deadline = time.monotonic() + WAIT_S
        while len(heard) < 2:  # the first sending and the one after RESEND_S unacknowledged
            assert time.monotonic() < deadline, "the notice was not sent again"
            notifier.step()
            if node.poll(50):
                identity, token, payload = node.recv_multipart()
                message = relayer_decoder.decode(payload)
                if type(message) is MinNonceNotices:
                    heard.append((identity, message.notices))
        assert token == b"token"
        identity, notices = heard[-1]
        assert [(n.owner, n.min_nonce) for n in notices] == [(market.seller.address.lower(), "7")]
        assert heard[0][1] == notices
        node.send_multipart([identity, settlement_encoder.encode(
            MinNoncesAcknowledged([notices[0].key]))])  # fmt: skip
        deadline = time.monotonic() + WAIT_S
        while state.unacknowledged_min_nonces(10):
            assert time.monotonic() < deadline, "the acknowledgement was not taken"
            notifier.step()
            time.sleep(0.02)
    finally:
        context.destroy()
        state.close()

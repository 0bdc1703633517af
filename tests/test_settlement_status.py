"""The relayer's loose ends, on real chains and a real node: a trade the contract skips as
already settled (its batch sent again by a relayer that lost its state) is confirmed, never a
failure; a failed trade's notice is resolved without reading the journal again; the node's
`status` and `metrics` show the relayer's state and figures as the relayer last sent them, with
their age (the node no longer opens its SQLite file for them); a state file made before the
peers and base fee were kept gets their columns."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest
import zmq
from chain_fixtures import Market, anvil_web3_fixture, open_market  # noqa: F401 - fixtures
from test_relayer import (
    RELAYER,
    in_process_relayer,
    mnode,
    settled,
    signed_node,  # noqa: F401 - a fixture, found by its name
    trade_through_node,
    use_relayer_key,
    wait_for,
)

from marketnode.node.chain import rpc
from marketnode.node.chain.journal_trades import JournalTrades
from marketnode.node.chain.relayer import Relayer, RelayerSettings
from marketnode.node.chain.relayer_service import NodeNotifier
from marketnode.node.chain.settlement_store import (
    CONFIRMED,
    FAILED,
    SETTLED_BEFORE,
    PendingTrade,
    SettlementStore,
    state_path,
)
from marketnode.node.server.settlement_link import METRICS, settlement_metrics
from marketnode.node.store.lmdb_store import Store

WAIT_S = 120.0


class CountingStore(Store):
    """The node's real LMDB store, counting the journal's commands handed out."""

    commands_read = 0

    def journal(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, object]]:
        for number, command in super().journal(start, stop):
            self.commands_read += 1
            yield number, command


def relayer_on(market: Market, state: SettlementStore, store: Store) -> Relayer:
    settings = RelayerSettings(confirmations=2, batch_size=4)
    return Relayer(market.w3, RELAYER, market.deployment.settlement, state,
                   JournalTrades(store, 1.0), settings)  # fmt: skip


@pytest.fixture
def embedded_market() -> Market:
    return open_market(rpc.embedded_web3())


def test_a_trade_an_earlier_transaction_settled_is_confirmed_not_failed(
    embedded_market,
    signed_node,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    market = embedded_market
    use_relayer_key(market)
    running = signed_node(market)
    trade_through_node(running, market, rounds=1, tag="again")
    running.stop()
    relayer, store = in_process_relayer(running.home, market)
    try:
        wait_for(settled(relayer.state), market.w3, relayer.step)
        assert relayer.state.counts()[CONFIRMED] == 3
        # a relayer whose state is gone follows the same journal and sends the trades again
        fresh = SettlementStore(tmp_path / "lost" / "state.sqlite")
        again = relayer_on(market, fresh, store)
        wait_for(settled(fresh), market.w3, again.step)
        assert fresh.counts() == {"pending": 0, "submitted": 0, "confirmed": 3, "failed": 0}
        assert {trade["reason"] for trade in fresh.trades()} == {SETTLED_BEFORE}
        assert fresh.unacknowledged(10) == []  # nothing for the node to act on
        assert [batch["state"] for batch in fresh.batches()] == [CONFIRMED]
    finally:
        store.close()


def test_a_failed_trade_is_resolved_without_reading_the_journal_again(
    embedded_market,
    signed_node,  # noqa: F811 - the fixture
):
    market = embedded_market
    use_relayer_key(market)
    running = signed_node(market)
    trade_through_node(running, market, rounds=1, tag="r")
    market.as_owner(market.buyer, market.quote.functions.approve(market.deployment.settlement, 0))
    running.stop()
    store = CountingStore(running.home.store_path(running.home.config()), readonly=True)
    state = SettlementStore(state_path(running.home.path))
    relayer = relayer_on(market, state, store)
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)  # no node listens: the notices wait, resolved
    socket.linger = 0
    socket.connect(f"ipc://{running.home.path.resolve() / 'nobody.sock'}")
    try:
        notifier = NodeNotifier(socket, b"token", state, relayer.contract, relayer.chain_id, 2)
        wait_for(settled(state), market.w3, relayer.step)
        journal_length = sum(1 for _ in Store.journal(store))
        read_by_following = store.commands_read
        assert read_by_following == journal_length
        notifier.step()
        rows = state.unacknowledged(10)
        assert len(rows) == 3 and all(row["resolved"] for row in rows)
        assert {(row["state"], row["reason"], row["at_fault"]) for row in rows} == {
            (FAILED, "buyer_transfer_failed", "buy")
        }
        assert {(row["buyer_peer"], row["seller_peer"]) for row in rows} == {("relay", "relay")}
        assert store.commands_read == read_by_following  # not one command read again
    finally:
        context.destroy()
        state.close()
        store.close()


def test_node_status_and_metrics_carry_the_relayers_state_and_its_age(
    anvil_web3,
    signed_node,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    market = open_market(anvil_web3)
    use_relayer_key(market)
    key_file = tmp_path / "relayer.key"
    key_file.write_text(RELAYER.key.hex())
    running = signed_node(
        market,
        f"""enabled = true
rpc = "{market.w3.provider.endpoint_uri}"
key_file = "{key_file}"
confirmations = 2
batch_size = 3
max_delay_s = 1
poll_interval_ms = 50
""",
    )
    admin = running.admin()
    first = admin.call("status")["settlement"]
    assert set(first) >= {"state", "age_s"}
    trade_through_node(running, market, rounds=2, tag="m")

    def confirmed_in_status() -> bool:
        shown = admin.call("status")["settlement"]
        return shown.get("trades", {}).get(CONFIRMED) == 6

    wait_for(confirmed_in_status, market.w3, timeout_s=WAIT_S)
    shown = admin.call("status")["settlement"]
    assert shown["state"].startswith("running since")
    assert isinstance(shown["age_s"], float) and shown["age_s"] >= 0
    assert shown["head"] >= max(batch["block"] for batch in json.loads(
        mnode("settlement", "batches", "--json", home=running.home).stdout))  # fmt: skip
    assert shown["lag_p50_s"] > 0 and shown["lag_p99_s"] >= shown["lag_p50_s"]
    assert shown["gas_per_trade"] > 21_000 and shown["fee_per_trade_wei"] > 0
    assert shown["fee_per_trade_gwei"] == round(shown["fee_per_trade_wei"] / 1e9, 3)
    assert shown["failures"] == [] and shown["trades"]["failed"] == 0
    assert shown["confirmations"] == 2 and shown["base_fee_now"] > 0
    metrics = settlement_metrics(shown)
    assert set(metrics) == {"age_s", *METRICS} and metrics["gas_per_trade"] > 0
    answered = admin.call("metrics")["settlement"]
    assert set(answered) == {"age_s", *METRICS} and answered["gas_per_trade"] > 0
    # what the CLI reads from the file itself agrees with what the node was sent
    cli = json.loads(mnode("settlement", "status", "--json", home=running.home).stdout)
    assert cli["trades"] == shown["trades"] and cli["gas_per_trade"] == shown["gas_per_trade"]
    running.stop()


def test_a_state_file_of_the_first_schema_gets_the_new_columns(tmp_path):
    path = tmp_path / "state.sqlite"
    first = sqlite3.connect(path)
    first.executescript("""
CREATE TABLE trades (
    seq INTEGER PRIMARY KEY, market TEXT NOT NULL, buyer TEXT NOT NULL, seller TEXT NOT NULL,
    price INTEGER NOT NULL, qty INTEGER NOT NULL, entry TEXT NOT NULL,
    traded_at REAL NOT NULL, deadline REAL NOT NULL, state TEXT NOT NULL,
    batch INTEGER, tx_hash TEXT, block INTEGER, reason TEXT, settled_at REAL
);
CREATE TABLE batches (
    id INTEGER PRIMARY KEY, nonce INTEGER NOT NULL UNIQUE, state TEXT NOT NULL,
    tx_hash TEXT NOT NULL, trades INTEGER NOT NULL, created_at REAL NOT NULL,
    block INTEGER, block_hash TEXT, gas_used INTEGER, gas_price INTEGER, reason TEXT
);
INSERT INTO trades VALUES (1, 'TOK-USD', '0xb', '0xs', 100, 1, '[]', 0, 30, 'pending',
                           NULL, NULL, NULL, NULL, NULL);
""")  # fmt: skip
    first.close()
    state = SettlementStore(path)
    try:
        state.add_trades([PendingTrade(2, "TOK-USD", "0xb", "0xs", 101, 1, [], 1.0, 31.0,
                                       "buyers", "sellers")], position=7)  # fmt: skip
        rows = state.db.execute("SELECT seq, buyer_peer, seller_peer FROM trades").fetchall()
        assert [tuple(row) for row in rows] == [(1, None, None), (2, "buyers", "sellers")]
        columns = {row[1] for row in state.db.execute("PRAGMA table_info(batches)")}
        assert "base_fee" in columns and state.position == 7
    finally:
        state.close()

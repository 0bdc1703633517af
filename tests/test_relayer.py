"""The relayer on real chains: trades between signed orders made by a real node settle on the
chain (eth-tester in process, and anvil), and the token balances equal what the journal's
trades imply; the relayer process killed mid-batch and restarted by the node's supervisor
settles no trade twice and loses none; a transaction held in the mempool is replaced at its
nonce with both fees raised; a reorganised-out batch is sent again; a trade whose buyer
revoked its approval ends failed with the contract's reason."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from chain_fixtures import (  # noqa: F401 - fixtures, found by pytest under their names
    BUY,
    SELL,
    Market,
    anvil_web3_fixture,
    chain_fixture,
    market_fixture,
    open_market,
)
from conftest import LOOPBACK_ENDPOINTS, NO_ANALYTICS, RunningNode, start_node
from eth_account import Account
from web3 import EthereumTesterProvider, Web3

from marketnode.node.chain import rpc
from marketnode.node.chain.fees import bumped
from marketnode.node.chain.journal_trades import JournalTrades
from marketnode.node.chain.relayer import Relayer, RelayerSettings
from marketnode.node.chain.settlement_store import (
    CONFIRMED,
    FAILED,
    MINED,
    SettlementStore,
    state_path,
)
from marketnode.node.core.engine import Engine
from marketnode.node.core.events import Trade
from marketnode.node.core.markets import ConfigError
from marketnode.node.home.config import parse_config
from marketnode.node.home.layout import Home
from marketnode.node.store.lmdb_store import Store
from marketnode.plugins.settlement_timing import send_now, timing_manager

SYMBOL = "TOK-USD"
FEE_BPS = 10
RELAYER = Account.from_key(Web3.keccak(text="marketnode test relayer"))
WAIT_S = 120.0


def settlement_home(path: Path, market: Market, settlement: str = "") -> Home:
    """A home whose one market takes signed orders for `market`'s deployment."""
    home = Home.create(path)
    home.config_path.write_text(
        LOOPBACK_ENDPOINTS
        + NO_ANALYTICS
        + f"""
[settlement]
chain_id = {market.chain_id}
contract = "{market.deployment.settlement}"
verifier_workers = 1
{settlement}
[[markets]]
symbol = "{SYMBOL}"
base = "TOK"
quote = "USD"
tick_size = "0.01"
lot_size = "1"
signatures = "required"
base_token = "{market.deployment.base_token}"
quote_token = "{market.deployment.quote_token}"
lot_units = "{market.lot_units}"
tick_units = "{market.tick_units}"
fee_bps = "{FEE_BPS}"
"""
    )
    return home


def signed_command(market: Market, wallet, side: int, ticks: int, lots: int, order_id: str
                   ) -> dict:  # fmt: skip
    """A signed `new` as a peer sends it, signed with eth-account by the chain fixtures."""
    order = market.order(wallet, side, ticks, lots, expiry=int(time.time()) + 3600, maxFeeBps=30)
    return {
        "op": "new", "market": SYMBOL, "id": order_id, "owner": wallet.address,
        "side": "buy" if side == BUY else "sell", "price": str(Decimal(ticks) / 100),
        "qty": str(lots), "chain_id": market.chain_id, "nonce": order.nonce,
        "expiry": order.expiry, "max_fee_bps": 30, "sig": "0x" + market.sign(order).hex(),
    }  # fmt: skip


def trade_through_node(running: RunningNode, market: Market, rounds: int, tag: str) -> None:
    """`rounds` times: the seller rests three one-lot sells, the buyer takes them (3 trades)."""
    relay = running.client("relay", 60.0)
    for index in range(rounds):
        sells = [signed_command(market, market.seller, SELL, 100 + step, 1, f"{tag}s{index}.{step}")
                 for step in range(3)]  # fmt: skip
        reply = relay.submit(sells)
        assert all(type(event).__name__ != "Rejected" for event in reply.events), reply
        buy = signed_command(market, market.buyer, BUY, 102, 3, f"{tag}b{index}")
        reply = relay.submit([buy])
        assert [type(e).__name__ for e in reply.events].count("WireTrade") == 3, reply


def journal_trades(store: Store) -> list[Trade]:
    """The journal's trades, by a fresh engine of the test's own."""
    engine, trades = Engine(), []
    for _, command in store.journal():
        out: list = []
        engine.process(command, out)
        trades.extend(event for event in out if type(event) is Trade)
    return trades


def balances(market: Market) -> dict[str, int]:
    who = {"buyer": market.buyer.address, "seller": market.seller.address,
           "fees": market.fee_recipient}  # fmt: skip
    return {
        f"{name} {token}": getattr(market, token).functions.balanceOf(address).call()
        for name, address in who.items()
        for token in ("base", "quote")
    }


def implied_change(trades: list[Trade], market: Market) -> dict[str, int]:
    """What the trades move: base to the buyer, quote less the fees to the seller."""
    change = dict.fromkeys(balances(market), 0)
    for trade in trades:
        quote = trade.price * trade.qty * market.tick_units
        fee = quote * FEE_BPS // 10_000
        change["buyer base"] += trade.qty * market.lot_units
        change["seller base"] -= trade.qty * market.lot_units
        change["buyer quote"] -= quote + fee
        change["seller quote"] += quote - fee
        change["fees quote"] += 2 * fee
    return change


def mine(w3: Web3, blocks: int = 1) -> None:
    for _ in range(blocks):
        if isinstance(w3.provider, EthereumTesterProvider):
            w3.provider.ethereum_tester.mine_blocks(1)
        else:
            w3.provider.make_request("evm_mine", [])


def wait_for(condition: Callable[[], bool], w3: Web3, step: Callable[[], None] = lambda: None,
             timeout_s: float = WAIT_S, mining: bool = True) -> None:  # fmt: skip
    """Step (and mine a block) until `condition` holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come to hold"
        step()
        if mining:
            mine(w3)
        else:
            time.sleep(0.05)


def use_relayer_key(market: Market) -> None:
    """The test relayer's key funded and made the contract's relayer."""
    rpc.fund(market.w3, market.admin, RELAYER.address, 10**20)
    rpc.send(market.w3, market.settlement.functions.set_relayer(RELAYER.address), market.admin)


@pytest.fixture
def signed_node(tmp_path):
    started: list[RunningNode] = []

    def start(market: Market, settlement: str = "") -> RunningNode:
        running = start_node(settlement_home(tmp_path / "home", market, settlement))
        running.add_peer("relay", (), relayer=True)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


def in_process_relayer(home: Home, market: Market, max_delay_s: float = 1.0,
                       clock: Callable[[], float] = time.time, **settings
                       ) -> tuple[Relayer, Store]:  # fmt: skip
    store = Store(home.store_path(home.config()), readonly=True)
    state = SettlementStore(state_path(home.path))
    relayer = Relayer(
        market.w3, RELAYER, market.deployment.settlement, state,
        JournalTrades(store, max_delay_s),
        RelayerSettings(**{"confirmations": 2, "batch_size": 4} | settings), clock=clock,
    )  # fmt: skip
    return relayer, store


def settled(state: SettlementStore) -> Callable[[], bool]:
    def all_final() -> bool:
        counts = state.counts()
        return counts["pending"] == counts["submitted"] == 0 and sum(counts.values()) > 0

    return all_final


def test_trades_settle_and_balances_match_the_journal(market, signed_node):
    use_relayer_key(market)
    running = signed_node(market)
    before = balances(market)
    trade_through_node(running, market, rounds=3, tag="a")
    running.stop()  # one process opens an LMDB store once: the relayer reads it after the node
    relayer, store = in_process_relayer(running.home, market)
    try:
        wait_for(settled(relayer.state), market.w3, relayer.step)
        trades = journal_trades(store)
        assert len(trades) == 9
        assert relayer.state.counts()[CONFIRMED] == 9
        change = implied_change(trades, market)
        assert balances(market) == {key: before[key] + change[key] for key in before}
        one = relayer.state.trade(trades[0].seq)
        assert one["state"] == CONFIRMED and one["tx_hash"].startswith("0x") and one["block"]
        assert all(market.settlement.functions.is_settled(t.seq).call() for t in trades)
    finally:
        store.close()
    shown = mnode("settlement", "trade", str(trades[0].seq), "--json", home=running.home)
    assert shown.returncode == 0 and json.loads(shown.stdout)["state"] == CONFIRMED
    status = json.loads(mnode("settlement", "status", "--json", home=running.home).stdout)
    assert status["trades"][CONFIRMED] == 9 and status["batches_in_flight"] == []
    assert len(json.loads(mnode("settlement", "batches", "--json", home=running.home).stdout)) == 3


def mnode(*arguments: str, home: Home) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "marketnode.cli", *arguments, "--home",
                           str(home.path)], capture_output=True, text=True, timeout=60)  # fmt: skip


def test_settlement_cli_mistakes_are_one_line(tmp_path):
    home = Home.create(tmp_path / "home")
    missing = mnode("settlement", "status", home=home)
    assert missing.returncode == 4 and missing.stderr.count("\n") == 1
    SettlementStore(state_path(home.path)).close()
    unknown = mnode("settlement", "trade", "12", home=home)
    assert unknown.returncode == 2 and "no signed trade with seq 12" in unknown.stderr


def test_revoked_approval_fails_the_trade_with_its_reason(market, signed_node):
    use_relayer_key(market)
    running = signed_node(market)
    trade_through_node(running, market, rounds=1, tag="r")
    market.as_owner(market.buyer, market.quote.functions.approve(market.deployment.settlement, 0))
    running.stop()
    relayer, store = in_process_relayer(running.home, market)
    try:
        wait_for(settled(relayer.state), market.w3, relayer.step)
        rows = list(relayer.state.trades())
        assert {(row["state"], row["reason"]) for row in rows} == {
            (FAILED, "buyer_transfer_failed")
        }
    finally:
        store.close()


def anvil_call(w3: Web3, method: str, *params) -> None:
    answer = w3.provider.make_request(method, list(params))
    assert "error" not in answer, answer


@pytest.fixture
def anvil_market(anvil_web3):
    market = open_market(anvil_web3)
    yield market
    anvil_call(anvil_web3, "evm_setAutomine", True)


def test_stuck_transaction_replaced_at_its_nonce_with_both_fees_raised(anvil_market, signed_node):
    market = anvil_market
    use_relayer_key(market)
    running = signed_node(market)
    before = balances(market)
    trade_through_node(running, market, rounds=1, tag="f")
    running.stop()
    relayer, store = in_process_relayer(running.home, market, stuck_after_s=1.0)
    state = relayer.state
    try:
        anvil_call(market.w3, "evm_setAutomine", False)  # blocks held: the batch waits
        wait_for(lambda: bool(state.open_batches()), market.w3, relayer.step, mining=False)
        batch = state.open_batches()[0]
        anvil_call(market.w3, "anvil_setNextBlockBaseFeePerGas", hex(200 * 10**9))  # a spike
        wait_for(lambda: len(state.sent(batch["id"])) >= 2, market.w3, relayer.step, mining=False)
        first, replacement = state.sent(batch["id"])[-1], state.sent(batch["id"])[-2]
        assert replacement.max_fee >= bumped(first.max_fee) and replacement.tip >= bumped(first.tip)
        assert replacement.max_fee > 200 * 10**9  # over the spiked base fee: it can be mined
        anvil_call(market.w3, "evm_setAutomine", True)
        wait_for(settled(state), market.w3, relayer.step)
        final = state.batches()[0]
        assert final["nonce"] == batch["nonce"] and final["tx_hash"] != first.tx_hash
        assert market.w3.eth.get_transaction_count(RELAYER.address) == batch["nonce"] + 1
        assert state.counts()[CONFIRMED] == 3
        change = implied_change(journal_trades(store), market)
        assert balances(market) == {key: before[key] + change[key] for key in before}
    finally:
        store.close()


def test_reorganised_out_batch_is_sent_again_and_final_only_after_k(anvil_market, signed_node):
    market = anvil_market
    use_relayer_key(market)
    running = signed_node(market)
    before = balances(market)
    trade_through_node(running, market, rounds=1, tag="g")
    running.stop()
    relayer, store = in_process_relayer(running.home, market, confirmations=4)
    state = relayer.state
    try:

        def mined() -> bool:
            return any(row["state"] == MINED for row in state.open_batches())

        wait_for(mined, market.w3, relayer.step, mining=False)  # automine: in a block at once
        batch = state.open_batches()[0]
        assert state.counts()[CONFIRMED] == 0  # under fewer than 4 blocks: not final
        depth = market.w3.eth.block_number - batch["block"] + 1
        anvil_call(market.w3, "anvil_reorg", depth, [])  # the batch's block is replaced
        wait_for(settled(state), market.w3, relayer.step)
        final = state.batches()[0]
        assert final["id"] == batch["id"] and final["block_hash"] != batch["block_hash"]
        assert state.counts()[CONFIRMED] == 3
        change = implied_change(journal_trades(store), market)
        assert balances(market) == {key: before[key] + change[key] for key in before}
    finally:
        store.close()


@pytest.mark.slow
def test_relayer_killed_mid_batch_settles_every_trade_once(anvil_market, signed_node, tmp_path):
    market = anvil_market
    use_relayer_key(market)
    key_file = tmp_path / "relayer.key"
    key_file.write_text(RELAYER.key.hex())
    running = signed_node(
        market,
        f"""enabled = true
rpc = "{market.w3.provider.endpoint_uri}"
key_file = "{key_file}"
confirmations = 2
batch_size = 2
max_delay_s = 1
poll_interval_ms = 50
""",
    )
    before = balances(market)
    trade_through_node(running, market, rounds=3, tag="k")
    supervisor = running.node.settlement.supervisor
    path = state_path(running.home.path)

    def read(what: Callable[[SettlementStore], object]) -> object:
        if not path.exists():
            return None
        state = SettlementStore(path, readonly=True)
        try:
            return what(state)
        except sqlite3.OperationalError:  # its tables are not made yet
            return None
        finally:
            state.close()

    anvil_call(market.w3, "evm_setAutomine", False)  # blocks held: batches stay on their way
    for _ in range(2):  # killed twice, each time with a batch sent and not mined
        wait_for(lambda: bool(read(lambda s: s.open_batches())), market.w3, mining=False)
        killed = supervisor.pid
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda k=killed: supervisor.pid not in (None, k), market.w3, mining=False)
    anvil_call(market.w3, "evm_setAutomine", True)
    wait_for(lambda: read(lambda s: s.counts()[CONFIRMED]) == 9, market.w3)
    final = {"pending": 0, "submitted": 0, "confirmed": 9, "failed": 0}
    assert read(lambda s: s.counts()) == final
    link = running.node.settlement  # what the node's status carries, as the relayer sent it
    wait_for(lambda: link.status().get("trades") == final, market.w3, mining=False)
    assert link.status()["state"].startswith("running since")
    logs = market.settlement.events.TradeSettled().get_logs(from_block=0)
    settled_ids = sorted(log["args"]["trade_id"] for log in logs)
    running.stop()
    with Store(running.home.store_path(running.home.config()), readonly=True) as store:
        trades = journal_trades(store)
    assert settled_ids == sorted(trade.seq for trade in trades)  # each once, none lost
    change = implied_change(trades, market)
    assert balances(market) == {key: before[key] + change[key] for key in before}


def test_batch_whose_nonce_another_transaction_took_is_settled_in_a_new_one(
    anvil_market, signed_node
):
    market = anvil_market
    use_relayer_key(market)
    running = signed_node(market)
    before = balances(market)
    trade_through_node(running, market, rounds=1, tag="n")
    running.stop()
    relayer, store = in_process_relayer(running.home, market, stuck_after_s=1.0)
    state = relayer.state
    try:
        anvil_call(market.w3, "evm_setAutomine", False)
        wait_for(lambda: bool(state.open_batches()), market.w3, relayer.step, mining=False)
        batch = state.open_batches()[0]
        first = state.sent(batch["id"])[0]
        # the same key spends the nonce elsewhere, outbidding the batch in the mempool
        other = RELAYER.sign_transaction({
            "to": market.admin, "value": 1, "gas": 21_000, "nonce": batch["nonce"],
            "chainId": market.chain_id, "maxFeePerGas": 4 * first.max_fee,
            "maxPriorityFeePerGas": 4 * first.tip,
        })  # fmt: skip
        market.w3.eth.send_raw_transaction(other.raw_transaction)
        anvil_call(market.w3, "evm_setAutomine", True)
        wait_for(settled(state), market.w3, relayer.step)
        batches = {row["id"]: row for row in state.batches()}
        assert batches[batch["id"]]["state"] == FAILED
        assert state.counts() == {"pending": 0, "submitted": 0, "confirmed": 3, "failed": 0}
        change = implied_change(journal_trades(store), market)
        assert balances(market) == {key: before[key] + change[key] for key in before}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('enabled = true\nkey_file = "k"\nrpc = "http://127.0.0.1:8545"',
         "[settlement]: contract: missing"),
        (f'enabled = true\ncontract = "{"0x" + "11" * 20}"\nrpc = "http://127.0.0.1:8545"',
         "[settlement]: key_file: missing"),
        (f'enabled = true\ncontract = "{"0x" + "11" * 20}"\nkey_file = "k"',
         '[settlement]: rpc: "embedded" cannot be shared'),
        ('rpc = "ws://127.0.0.1:8546"', '[settlement]: rpc: must be "embedded" or a JSON-RPC URL'),
        ("batch_size = 101", "[settlement]: batch_size: must be from 1 to 100"),
        ("confirmations = 0", "[settlement]: confirmations: must be from 1 to 1000"),
    ],
)  # fmt: skip
def test_settlement_config_mistakes_are_one_line(table, error):
    with pytest.raises(ConfigError) as raised:
        parse_config(f"[settlement]\n{table}\n", "config.toml")
    assert str(raised.value).startswith(f"config.toml: {error}")
    assert "\n" not in str(raised.value)


def test_cheap_fees_policy():
    calm = [100] * 10
    assert send_now(timing_manager(), [*calm, 90], seconds_left=60)  # a dip: cheap
    assert not send_now(timing_manager(), [*calm, 500], seconds_left=60)  # a spike: wait
    assert send_now(timing_manager(), [*calm, 500], seconds_left=1)  # the deadline is near
    assert send_now(timing_manager(), [500, 500], seconds_left=60)  # too little history


def test_partial_batch_waits_out_a_fee_spike_until_its_deadline(anvil_market, signed_node):
    market = anvil_market
    use_relayer_key(market)
    running = signed_node(market)
    trade_through_node(running, market, rounds=1, tag="t")
    running.stop()
    now = [time.time()]
    relayer, store = in_process_relayer(running.home, market, max_delay_s=600,
                                        clock=lambda: now[0])  # fmt: skip
    state = relayer.state
    try:
        mine(market.w3, 10)  # a fee history
        anvil_call(market.w3, "anvil_setNextBlockBaseFeePerGas", hex(500 * 10**9))
        relayer.step()
        assert state.counts()["pending"] == 3 and not state.open_batches()  # fees high: waits
        now[0] = state.earliest_deadline() + 1  # its deadline passed: sent whatever fees are
        relayer.step()
        assert state.counts()["submitted"] == 3
        wait_for(settled(state), market.w3, relayer.step)
        assert state.counts()[CONFIRMED] == 3
    finally:
        store.close()

"""Settlement under faults: signed load, and every trade ends confirmed on chain exactly once.

    python bench/settlement_chaos.py [--duration S] [--rate N] [--wallets N] [--json]

Starts the pinned anvil on a free loopback port (blocks every `--block-time` s), a node whose
relayer settles on it, deploys the contracts and funds the dev wallets with the CLI (`mnode
chain deploy`, `mnode chain fund-dev-wallets`), and runs `mnode load --signed` for `--duration`
seconds while it, in turn: SIGKILLs the relayer with a batch on its way (by the pid the node's
status gives) and waits until the restarted one has made a trade final, raises the next
block's base fee (`anvil_setNextBlockBaseFeePerGas`), SIGKILLs the node and starts it again at
once (its relayer, sent SIGTERM as its parent died, may still be ending its step), reorganises
the blocks from a mined, not yet final batch's block on (`anvil_reorg`), and SIGKILLs the
relayer once more. Then it waits (bounded) until the relayer has caught up and
nothing is pending, stops the node and checks:

- `all_confirmed`: every trade the journal holds (replayed by an engine of this script) is
  `confirmed` in the relayer's store, none failed or left behind, its position at the end of
  the journal;
- `settled_once`: the chain's `TradeSettled` events name each journal trade exactly once, and
  nothing else;
- `k_confirmations`: each of those events lies under at least `confirmations` blocks;
- `balances`: every wallet's and the fee recipient's base and quote balance is its balance
  before the load plus what the journal's trades imply;
- `faults`: each fault happened (a relayer killed with a batch in flight twice and restarted,
  the node killed and restarted, a mined batch reorganised out, the fee spike in a block).

Prints each check ok/FAIL, the trade counts and the settlement lag (journal commit -> final on
chain) p50/p99; `--json` prints one object instead. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.exceptions import Web3Exception

from marketnode.node.chain import rpc
from marketnode.node.chain.deploy import bound
from marketnode.node.chain.orders import dev_wallets
from marketnode.node.chain.settlement_store import SettlementStore, state_path
from marketnode.node.core.engine import Engine
from marketnode.node.core.events import Trade
from marketnode.node.home.layout import Home
from marketnode.node.store.lmdb_store import Store
from marketnode.node.tools.e2e import prepare_home, start_node_process, stop_node_process
from marketnode.node.tools.load import percentile

MNODE = [sys.executable, "-m", "marketnode.cli"]
SYMBOL = "PUNK-ETH"
FEE_BPS = 10
SPIKE_WEI = 200 * 10**9
DEPLOYER = Account.from_key(Web3.keccak(text="marketnode chaos deployer"))
SETTLEMENT = """
[settlement]
contract = ""
verifier_workers = 1
enabled = true
key_file = "{key_file}"
confirmations = {confirmations}
batch_size = 50
max_delay_s = 5
stuck_after_s = 5
poll_interval_ms = 200
"""


def mnode(home: Home, *arguments: str, timeout_s: float = 120.0) -> str:
    """Runs an `mnode` command on `home`; its stdout, or RuntimeError with its stderr."""
    done = subprocess.run([*MNODE, *arguments, "--home", str(home.path)], capture_output=True,
                          text=True, timeout=timeout_s)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"mnode {' '.join(arguments)}: {done.stderr.strip()}")
    return done.stdout


STARTED = time.monotonic()


def say(what: str) -> None:
    """A progress line on stderr, with the seconds since the start."""
    print(f"settlement chaos {time.monotonic() - STARTED:6.1f} s: {what}", file=sys.stderr)


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, step_s: float = 0.2
             ) -> Any:  # fmt: skip
    """Polls `condition` until it is truthy (its value) or RuntimeError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(step_s)


def prepare(folder: Path, w3: Web3, confirmations: int, wallets: int) -> tuple[Home, str]:
    """A home on fixed loopback ports (a restarted node binds them again, so the load's
    connection comes back), its relayer enabled on `w3`'s anvil; the contracts deployed and
    the dev wallets funded through the CLI. Returns the home and the peer's name."""
    home, _ = prepare_home(folder / "home", analytics=False, metrics=False)
    text = home.config_path.read_text()
    for _ in range(3):  # each endpoint its own port, the same across restarts
        text = text.replace("tcp://127.0.0.1:*", f"tcp://127.0.0.1:{rpc.free_loopback_port()}", 1)
    text = text.replace(f'symbol = "{SYMBOL}"', f'symbol = "{SYMBOL}"\nfee_bps = "{FEE_BPS}"', 1)
    key_file = folder / "deployer.key"
    key_file.write_text(DEPLOYER.key.hex())
    settlement = SETTLEMENT.format(key_file=key_file, confirmations=confirmations)
    home.config_path.write_text(settlement + text)
    rpc.fund(w3, w3.eth.accounts[0], DEPLOYER.address, 5000 * 10**18)
    url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
    mnode(home, "chain", "deploy", "--rpc", url, "--key-file", str(key_file), "--test-tokens",
          "--market", SYMBOL)  # fmt: skip
    mnode(home, "chain", "fund-dev-wallets", "--rpc", url, "--key-file", str(key_file),
          "--wallets", str(wallets))  # fmt: skip
    return home, "load"


def balances(w3: Web3, home: Home, owners: list[str]) -> dict[str, int]:
    """(owner, token) -> balance of the market's base and quote tokens."""
    spec = next(spec for spec in home.config().markets if spec.symbol == SYMBOL)
    found = {}
    for name, token in (("base", spec.base_token), ("quote", spec.quote_token)):
        contract = bound(w3, "ERC20", token)  # type: ignore[arg-type]
        for owner in owners:
            found[f"{owner} {name}"] = contract.functions.balanceOf(
                Web3.to_checksum_address(owner)
            ).call()
    return found


def journal_trades(store: Store) -> list[Trade]:
    """The journal's trades, by a fresh engine of this script."""
    engine, trades = Engine(), []
    for _, command in store.journal():
        out: list = []
        engine.process(command, out)
        trades.extend(event for event in out if type(event) is Trade)
    return trades


def implied(trades: list[Trade], home: Home, fee_recipient: str) -> Counter:
    """What the trades move: base to the buyer, quote (plus its fee) from the buyer, quote
    (less its fee) to the seller, both fees to the fee recipient."""
    spec = next(spec for spec in home.config().markets if spec.symbol == SYMBOL)
    lot_units, tick_units = int(spec.lot_units), int(spec.tick_units)  # type: ignore[arg-type]
    change: Counter = Counter()
    for trade in trades:
        buyer, seller = (trade.taker_owner, trade.maker_owner) if trade.aggressor == "buy" else (
            trade.maker_owner, trade.taker_owner)  # fmt: skip
        quote = trade.price * trade.qty * tick_units
        fee = quote * FEE_BPS // 10_000
        change[f"{buyer} base"] += trade.qty * lot_units
        change[f"{seller} base"] -= trade.qty * lot_units
        change[f"{buyer} quote"] -= quote + fee
        change[f"{seller} quote"] += quote - fee
        change[f"{fee_recipient} quote"] += 2 * fee
    return change


class Chaos:
    """The node process, its relayer and the chain, and the faults done to them."""

    def __init__(self, home: Home, w3: Web3, confirmations: int) -> None:
        self.home = home
        self.w3 = w3
        self.confirmations = confirmations
        self.node = start_node_process(home)
        self.done: Counter = Counter()

    def state(self, read: Callable[[SettlementStore], Any]) -> Any:
        """`read` of the relayer's store, None while it has none (or no tables yet)."""
        try:
            store = SettlementStore(state_path(self.home.path), readonly=True)
        except (FileNotFoundError, sqlite3.Error):  # not made yet
            return None
        try:
            return read(store)
        except sqlite3.Error:  # its tables are not made yet
            return None
        finally:
            store.close()

    def relayer_pid(self) -> int | None:
        """The relayer's pid as the node's status gives it (None while it is not running)."""
        try:
            status = json.loads(mnode(self.home, "status", "--json", timeout_s=30))
        except (RuntimeError, subprocess.TimeoutExpired, ValueError):
            return None
        state = status.get("settlement")
        text = state.get("state", "") if isinstance(state, dict) else str(state)
        found = re.search(r"running since .* \(pid (\d+)\)", text)
        return int(found.group(1)) if found else None

    def kill_relayer(self, timeout_s: float) -> None:
        """SIGKILL the relayer once a batch is on its way; wait until the node has restarted it
        and the new one has made a trade final (so the next fault meets a working relayer)."""
        wait_for(lambda: self.state(lambda s: s.open_batches()), timeout_s, "a batch in flight")
        killed = wait_for(self.relayer_pid, timeout_s, "the relayer running")
        confirmed = self.state(lambda s: s.counts()["confirmed"])
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: self.relayer_pid() not in (None, killed), 60, "the relayer restarted")
        wait_for(lambda: self.state(lambda s: s.counts()["confirmed"]) > confirmed, timeout_s,
                 "a trade made final by the restarted relayer")  # fmt: skip
        self.done["relayer_kills"] += 1

    def kill_node(self, timeout_s: float) -> None:
        """SIGKILL the node and start it again at once, as a service manager would: its relayer
        gets its death signal (SIGTERM) and ends its step, maybe beside the new node's."""
        relayer = wait_for(self.relayer_pid, timeout_s, "the relayer running")
        os.kill(self.node.pid, signal.SIGKILL)
        self.node.wait(timeout=30)
        self.node = start_node_process(self.home)
        self.done["node_kills"] += 1
        self.done["old_relayer_alive_at_restart"] += _alive(relayer)

    def fee_spike(self, timeout_s: float) -> None:
        """The next block's base fee set to SPIKE_WEI. The block numbered before the call, so
        the spiked block is one of the two after it: the next, or the one after that when a
        block was mined between the reading and the call (anvil mines every second)."""
        start = self.w3.eth.block_number
        self._anvil("anvil_setNextBlockBaseFeePerGas", hex(SPIKE_WEI))
        wait_for(lambda: self.w3.eth.block_number > start + 1, timeout_s,
                 "two blocks after the spike")  # fmt: skip
        fees = [self.w3.eth.get_block(start + n)["baseFeePerGas"] for n in (1, 2)]
        self.done["fee_spike_blocks"] += any(fee >= SPIKE_WEI for fee in fees)

    def reorg(self, timeout_s: float) -> None:
        """Replace the blocks from a mined, not yet final batch's block on (a depth under the
        confirmations, so nothing final is undone)."""

        def mined_batch() -> int | None:
            rows = self.state(lambda s: [dict(r) for r in s.open_batches()]) or []
            latest = self.w3.eth.block_number
            blocks = [row["block"] for row in rows if row["block"]
                      and latest - row["block"] + 1 < self.confirmations]  # fmt: skip
            return min(blocks) if blocks else None

        block = wait_for(mined_batch, timeout_s, "a mined batch not yet final", step_s=0.05)
        depth = self.w3.eth.block_number - block + 1
        self._anvil("anvil_reorg", depth, [])
        self.done["reorgs"] += 1
        self.done["reorg_depth"] = depth

    def _anvil(self, method: str, *params: Any) -> None:
        answer = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")

    def stop(self) -> None:
        stop_node_process(self.node)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass(frozen=True)
class Plan:
    duration_s: float = 40.0
    rate: int = 100
    wallets: int = 8
    confirmations: int = 3
    block_time_s: int = 1
    settle_timeout_s: float = 240.0
    calm: bool = False
    """No faults: the same load and checks, for the lag without them."""


def run(plan: Plan, keep: Path | None = None) -> dict[str, Any]:
    """The run in a new folder (under `keep`, left there, else removed)."""
    anvil = rpc.Anvil(rpc.anvil_binary())
    w3 = anvil.start()
    try:
        if keep is not None:
            folder = Path(tempfile.mkdtemp(prefix="mnode-chaos-", dir=keep))
            say(f"the home and its logs stay in {folder}")
            return _run(folder, w3, plan)
        with tempfile.TemporaryDirectory(prefix="mnode-chaos-") as name:
            return _run(Path(name), w3, plan)
    finally:
        anvil.stop()


def _run(folder: Path, w3: Web3, plan: Plan) -> dict[str, Any]:
    duration_s, rate, wallets = plan.duration_s, plan.rate, plan.wallets
    confirmations = plan.confirmations
    home, peer = prepare(folder, w3, confirmations, wallets)
    owners = [wallet.text for wallet in dev_wallets(wallets)] + [DEPLOYER.address.lower()]
    before = balances(w3, home, owners)
    say("contracts deployed and wallets funded")
    w3.provider.make_request("evm_setIntervalMining", [plan.block_time_s])  # type: ignore[arg-type]
    chaos = Chaos(home, w3, confirmations)
    report: dict[str, Any] = {"plan": asdict(plan)}
    load = None
    try:
        load = subprocess.Popen(
            [*MNODE, "load", "--signed", "--as", peer, "--rate", str(rate), "--duration",
             str(duration_s), "--owners", str(wallets), "--markets", SYMBOL, "--json",
             "--home", str(home.path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        fault_s = max(30.0, duration_s)  # each fault waits this long at most for its moment
        faults = (chaos.kill_relayer, chaos.fee_spike, chaos.kill_node, chaos.reorg,
                  chaos.kill_relayer)  # fmt: skip
        for fault in () if plan.calm else faults:
            fault(fault_s)
            say(f"{fault.__name__} done at block {w3.eth.block_number}")
        out, err = load.communicate(timeout=duration_s + 120)
        if load.returncode != 0:
            raise RuntimeError(f"mnode load failed: {err.strip()}")
        report["load"] = json.loads(out)

        store = Store(home.store_path(home.config()), readonly=True)

        def caught_up() -> bool:
            """Nothing pending or on its way, the relayer at the journal's end."""
            read = chaos.state(lambda s: (s.counts(), s.position))
            return bool(read) and read[0]["pending"] == read[0]["submitted"] == 0 and (
                read[1] == store.state().journal_length)  # fmt: skip

        started = time.monotonic()
        say("load done: waiting for settlement to finish")
        wait_for(caught_up, plan.settle_timeout_s, "settlement idle", step_s=1.0)
        report["settle_wait_s"] = round(time.monotonic() - started, 1)
    finally:
        if load is not None and load.poll() is None:  # a fault failed: the load is stopped too
            load.kill()
            load.wait()
        chaos.stop()
    report["faults"] = dict(chaos.done)
    try:
        report.update(_checks(home, store, w3, chaos, before, owners, plan))
    finally:
        store.close()
    return report


def _checks(home: Home, store: Store, w3: Web3, chaos: Chaos, before: dict[str, int],
            owners: list[str], plan: Plan) -> dict[str, Any]:  # fmt: skip
    trades, commands = journal_trades(store), store.state().journal_length
    seqs = Counter(trade.seq for trade in trades)
    rows = chaos.state(lambda s: {row["seq"]: row["state"] for row in s.trades()}) or {}
    position = chaos.state(lambda s: s.position)
    lags = sorted(
        chaos.state(
            lambda s: [
                row["settled_at"] - row["traded_at"]
                for seq in seqs
                if (row := s.trade(seq)) and row["settled_at"]
            ]
        )
        or []
    )
    batches = chaos.state(lambda s: s.batches(limit=1_000_000)) or []
    final = [row for row in batches if row["state"] == "confirmed"]
    settlement = bound(w3, "Settlement", home.config().settlement.contract)
    logs = settlement.events.TradeSettled().get_logs(from_block=0)
    settled = Counter(log["args"]["trade_id"] for log in logs)
    latest = w3.eth.block_number
    after = balances(w3, home, owners)
    change = implied(trades, home, DEPLOYER.address.lower())
    wrong = {key: (after[key] - before[key], change[key]) for key in after
             if after[key] - before[key] != change[key]}  # fmt: skip
    faults = chaos.done
    checks = {
        "all_confirmed": bool(trades) and position == commands
        and all(rows.get(seq) == "confirmed" for seq in seqs) and set(rows) == set(seqs),
        "settled_once": settled == seqs,
        "k_confirmations": all(latest - log["blockNumber"] + 1 >= plan.confirmations
                               for log in logs),
        "balances": not wrong,
        "faults": not faults if plan.calm else faults["relayer_kills"] == 2
        and faults["node_kills"] == 1 and faults["reorgs"] == 1
        and faults["fee_spike_blocks"] == 1,
    }  # fmt: skip
    states = Counter(rows.values())
    return {
        "checks": checks,
        "trades": {"journal": len(trades), "on_chain_events": sum(settled.values()),
                   "twice": sum(1 for n in settled.values() if n > 1),
                   "missing": len(set(seqs) - set(settled)), **states},
        "commands": commands,
        "relayer_position": position,
        "lag_p50_s": round(percentile(lags, 0.5), 2),
        "lag_p99_s": round(percentile(lags, 0.99), 2),
        "batches": {"final": len(final), "sent_more_than_once": sum(
            1 for row in batches if row["sent"] > 1)},
        "gas_per_trade": sum(row["gas_used"] for row in final) // max(1, sum(
            row["trades"] for row in final)),
        "balance_mismatches": {key: list(pair) for key, pair in list(wrong.items())[:5]},
        "failed_batches": [_failed_batch(w3, row) for row in batches if row["state"] == "failed"],
    }  # fmt: skip


def _failed_batch(w3: Web3, row: dict[str, Any]) -> dict[str, Any]:
    """What the chain says of a failed batch's transaction: where it was mined, whether it
    ran out of the gas it was given."""
    found = {key: row[key] for key in ("id", "nonce", "tx_hash", "block", "reason", "sent")}
    try:
        receipt = w3.eth.get_transaction_receipt(row["tx_hash"])
        sent = w3.eth.get_transaction(row["tx_hash"])
    except Web3Exception as error:  # not found, say: reported as it is
        return found | {"receipt": str(error)}
    return found | {"status": receipt["status"], "gas_used": receipt["gasUsed"],
                    "gas_limit": sent["gas"], "mined_block": receipt["blockNumber"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=Plan.duration_s,
                        help="seconds of load")  # fmt: skip
    parser.add_argument("--rate", type=int, default=Plan.rate, help="signed orders/s offered")
    parser.add_argument("--wallets", type=int, default=Plan.wallets)
    parser.add_argument("--confirmations", type=int, default=Plan.confirmations)
    parser.add_argument("--block-time", type=int, default=Plan.block_time_s,
                        help="anvil's seconds per block")  # fmt: skip
    parser.add_argument("--settle-timeout", type=float, default=Plan.settle_timeout_s,
                        help="longest wait for the relayer to finish after the load")  # fmt: skip
    parser.add_argument("--calm", action="store_true", help="no faults (the lag without them)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="leave the home (node.log: the node's and relayer's logs) in DIR",
                        )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    plan = Plan(args.duration, args.rate, args.wallets, args.confirmations, args.block_time,
                args.settle_timeout, args.calm)  # fmt: skip
    try:
        report = run(plan, args.keep)
    except (RuntimeError, rpc.ChainError, subprocess.TimeoutExpired) as error:
        print(f"settlement chaos: {error}", file=sys.stderr)
        sys.exit(2)
    ok = all(report["checks"].values())
    if args.json:
        print(json.dumps(report))
    else:
        for name, passed in report["checks"].items():
            print(f"{name:16} {'ok' if passed else 'FAIL'}")
        print(f"trades {report['trades']}; faults {report['faults']}")
        print(f"settlement lag p50 {report['lag_p50_s']} s, p99 {report['lag_p99_s']} s "
              f"(journal commit -> {plan.confirmations} confirmations, "
              f"{plan.block_time_s} s blocks)")  # fmt: skip
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""The demo's chain: the embedded one (eth-tester on py-evm) in a child process of the demo, the
settlement contract and the test tokens deployed on it, the dev wallets funded, and a relayer
settling the journal's signed trades there.

Why a child, at nice 10: py-evm is pure Python, and a batch of ten trades costs it about a
second of CPU to mine. In the demo's process it would hold the interpreter the dashboard draws
with; beside the node it must not take the core the node's matching thread needs. So it runs
apart and yields: a busy second delays settlement, never an acknowledgement or a keypress. The
demo's signed flow is sized to what it settles (one trade every two seconds,
tools/demo_traders.py). Its batches carry a gas limit from their size instead of an estimate:
eth-tester estimates by a binary search over a dozen runs of the batch (6.5 s of the 8.6 s of
CPU a ten-trade batch took, on a loaded core), which at nice 10 left the chain behind the flow.

Why the addresses are known before the chain exists: every signature names the chain and the
settlement contract, so the node must have them in its config when it starts, and building the
chain (py-evm's genesis) takes seconds the demo does not make anyone wait. A contract's address
is keccak(rlp([deployer, nonce])) and the demo's deployer is a fixed key whose first four
transactions are the four deployments (tools/demo_markets.py writes them into the home), so
they are the same on every run; the child checks that its deployment landed there.

Confirmations are 1: the embedded chain mines a block per transaction and never reorganises,
so a batch's own block is final (the relayer's K-block wait is for real chains).

The child writes its report whole every second to settlement/demo-chain.json in the home: its
phase (starting, settling, or failed and why), the relayer's trade counts and figures, and
whether everything journaled so far is settled (`caught_up`). Its log goes beside it. The
relayer keeps its state where a node's own relayer would, settlement/state.sqlite: the node's
analytics process copies each trade's progress from there (node/analytics/settlement_progress.py),
so the dashboard's Settlement panel and `mnode sql` show the demo's settlement though the node
has no relayer of its own.

    python -m marketnode.node.server.supervisor PID SIGNAL marketnode.node.tools.demo_chain HOME
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rlp
from coincurve import PrivateKey

from ..chain.keccak import keccak256
from ..chain.orders import Wallet, dev_wallets, wallet_of
from ..home.layout import Home
from ..server.supervisor import Supervisor

EMBEDDED_CHAIN_ID = 131_277_322_940_537
"""eth-tester's chain id (its py-evm backend's): the one every demo signature names."""
DEPLOYER = wallet_of(PrivateKey(keccak256(b"marketnode demo chain")))
"""Deploys the contracts, mints the test tokens and is the contract's relayer. Its key is
derived from a public label, like the dev wallets': for the embedded chain only."""
CONTRACTS = ("settlement", "base_token", "quote_token", "collection")
"""What `deploy_all` deploys, in the order of its transactions (the deployer's nonces 0-3)."""
DEV_WALLETS = 4
REPORT_FILE = ("settlement", "demo-chain.json")
LOG_FILE = ("settlement", "demo-chain.log")
NICENESS = 10
POLL_S = 0.5
MAX_DELAY_S = 2.0
"""A signed trade waits at most this long for its batch."""
BATCH_SIZE = 10
GAS_PER_BATCH, GAS_PER_TRADE = 100_000, 300_000
"""A batch's gas limit: more than the contract spends (236k for a batch of one, 95k a trade in
a batch of ten, on the embedded chain); only the gas used is paid."""
DEPLOYER_GAS_WEI = 10**21
STOP_WITHIN_S = 10.0


def planned_addresses() -> dict[str, str]:
    """Where `deploy_all` by `DEPLOYER` puts each contract on a fresh chain (lowercase hex)."""
    return {
        name: "0x" + keccak256(rlp.encode([DEPLOYER.address, nonce]))[12:].hex()
        for nonce, name in enumerate(CONTRACTS)
    }


def report_path(home: Path) -> Path:
    return home.joinpath(*REPORT_FILE)


# -- in the demo -------------------------------------------------------------------------------


class ChainProcess:
    """The demo's chain child as the demo sees it: `start`, its latest `report`, a wait until
    what was traded is settled, `stop`."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._supervisor = Supervisor("demo chain", __name__, [str(home.path.resolve())])

    def start(self) -> None:
        self._supervisor.start()

    def report(self) -> dict[str, Any]:
        """The child's latest report ({} before its first)."""
        try:
            return json.loads(report_path(self.home.path).read_text())
        except (OSError, ValueError):
            return {}

    def wait_settled(self, patience_s: float, on_note: Callable[[str], None]) -> dict[str, Any]:
        """Wait (saying each second what for) until everything journaled is settled or failed,
        the chain has failed, or `patience_s` is over; the latest report."""
        deadline = time.monotonic() + patience_s
        while True:
            report = self.report()
            left = deadline - time.monotonic()
            if report.get("caught_up") or report.get("phase") == "failed" or left <= 0:
                return report
            if not self._supervisor.running:
                return report | {"phase": "failed", "error": "the chain's process ended"}
            on_note(f"waiting for settlement on the embedded chain: {_waiting_for(report)}, "
                    f"{left:.0f} s left")  # fmt: skip
            time.sleep(1)

    def stop(self) -> dict[str, Any]:
        self._supervisor.stop(within_s=STOP_WITHIN_S)
        return self.report()


def _waiting_for(report: dict[str, Any]) -> str:
    if report.get("phase") != "settling":
        return "the chain is being set up (contracts, wallets)"
    trades = report.get("trades", {})
    open_trades = trades.get("pending", 0) + trades.get("submitted", 0)
    if not open_trades:
        return "reading the journal"
    return f"{open_trades} signed trade{'s' if open_trades > 1 else ''} pending"


# -- in the child ------------------------------------------------------------------------------


def main(arguments: list[str]) -> int:
    """Set the chain up, then settle until SIGTERM; 1 when the chain could not be set up."""
    home = Home(Path(arguments[0]))
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the demo's Ctrl-C: the demo stops us
    os.nice(NICENESS)
    log_path = home.path.joinpath(*LOG_FILE)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=log_path, level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")  # fmt: skip
    _write(home, {"phase": "starting"})
    from web3.exceptions import Web3Exception  # py-evm and web3 load in this process only

    from ..chain.rpc import ChainError

    try:
        relayer, store = _settler(home)
    except (ChainError, Web3Exception, ValueError, OSError) as error:
        _write(home, {"phase": "failed", "error": f"{type(error).__name__}: {error}"})
        return 1
    while not stopping:
        journaled = (store.last_commit() or (0,))[0]
        try:
            relayer.step()
        except (ChainError, Web3Exception, ValueError, OSError) as error:
            logging.error("settlement step failed: %s", error)
        _write(home, _settling(relayer, journaled))
        time.sleep(POLL_S)
    relayer.state.close()
    store.close()
    return 0


def _settler(home: Home) -> tuple[Any, Any]:
    """The chain, deployed and funded, and a relayer over the home's journal."""
    from eth_account import Account

    from ..chain import rpc
    from ..chain.deploy import deploy_all, fund_dev_wallets
    from ..chain.journal_trades import JournalTrades
    from ..chain.relayer import Relayer, RelayerSettings
    from ..chain.settlement_store import SettlementStore, state_path
    from ..store.lmdb_store import Store

    config = home.config()
    w3 = rpc.embedded_web3()
    if w3.eth.chain_id != config.settlement.chain_id:
        raise ValueError(f"the embedded chain's id is {w3.eth.chain_id}, the demo's config says "
                         f"{config.settlement.chain_id}")  # fmt: skip
    deployer = Account.from_key(DEPLOYER.key.secret)
    rpc.fund(w3, w3.eth.accounts[0], deployer.address, DEPLOYER_GAS_WEI)
    deployment = deploy_all(w3, deployer).to_dict()
    landed = {name: address.lower() for name, address in deployment.items()}
    if landed != planned_addresses():
        raise ValueError(f"the contracts landed at {landed}, not where the demo's config "
                         f"expects them ({planned_addresses()})")  # fmt: skip
    wallets: list[Wallet] = dev_wallets(DEV_WALLETS)
    tokens = [deployment["base_token"], deployment["quote_token"]]
    fund_dev_wallets(w3, deployer, deployment["settlement"], tokens, wallets)
    store = Store(home.store_path(config), readonly=True)
    settings = RelayerSettings(confirmations=1, batch_size=BATCH_SIZE,
                               sized_gas=(GAS_PER_BATCH, GAS_PER_TRADE))  # fmt: skip
    relayer = Relayer(w3, deployer, deployment["settlement"],
                      SettlementStore(state_path(home.path)),
                      JournalTrades(store, MAX_DELAY_S), settings)  # fmt: skip
    logging.info("settling on the embedded chain at %s", deployment["settlement"])
    return relayer, store


def _settling(relayer: Any, journaled: int) -> dict[str, Any]:
    """The report while settling: counts, figures and the latest failures; caught up once the
    relayer has read the journal as far as it was before its step and nothing is open."""
    from ..chain.relayer_service import summary

    state = summary(relayer.state)
    trades = state["trades"]
    open_trades = trades.get("pending", 0) + trades.get("submitted", 0)
    return {
        "phase": "settling",
        "contract": relayer.contract.address,
        "trades": trades,
        "caught_up": state["position"] >= journaled and open_trades == 0,
        **{key: state[key] for key in ("lag_p50_s", "lag_p99_s", "gas_per_trade")},
        "failures": [{"seq": row["seq"], "reason": row["reason"]} for row in state["failures"]],
    }


def _write(home: Home, report: dict[str, Any]) -> None:
    """Replace the report whole: a reader never sees half of one."""
    path = report_path(home.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(report | {"updated_at": time.time()}))
    os.replace(scratch, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

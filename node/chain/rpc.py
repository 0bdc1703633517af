"""Connections to a chain: the embedded one (eth-tester on py-evm, in process: pure pip, so
the demo and the tests settle with nothing else installed), any JSON-RPC endpoint by URL, and
a local anvil started on a free loopback port (the chain with real fee history and mempool
rules, for the tests and benchmarks of the relayer's mempool behaviours).

Transactions go through `send`, which signs with a local key when it has one (a provider's
chain) or asks the node to sign for an account it holds unlocked (the embedded chain, anvil).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

EMBEDDED = "embedded"
ANVIL_VERSION = "1.7.1"
ANVIL_FOLDER = Path(__file__).resolve().parents[2] / ".ci" / "chain"
ANVIL_INSTALL = (
    f"npm install --no-save --ignore-scripts --prefix .ci/chain @foundry-rs/anvil@{ANVIL_VERSION}"
)
"""The README's and `.ci/run`'s install step, run in the repository's root."""
ANVIL_ENVIRONMENT = "MARKETNODE_ANVIL"
"""An anvil binary to use instead of the repository's pinned install."""

Sender = LocalAccount | str
"""Who sends a transaction: a local key, or the address of an account the node unlocks."""


class ChainError(RuntimeError):
    """A chain could not be reached or started, or a transaction failed."""


class TransactionReverted(ChainError):
    """The chain refused a transaction: its message carries the contract's reason."""


def embedded_web3() -> Web3:
    """A fresh in-process chain (eth-tester, py-evm) with funded, unlocked accounts."""
    from web3 import EthereumTesterProvider  # imports py-evm: only when a chain is wanted

    return Web3(EthereumTesterProvider())


def connect(rpc: str, timeout_s: float = 30.0) -> Web3:
    """`embedded` or a JSON-RPC URL (http, https) -> a connected Web3."""
    if rpc == EMBEDDED:
        return embedded_web3()
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": timeout_s}))
    if not w3.is_connected():
        raise ChainError(f"no JSON-RPC node answers at {rpc}")
    return w3


def address_of(sender: Sender) -> str:
    return sender.address if isinstance(sender, LocalAccount) else Web3.to_checksum_address(sender)


def send(w3: Web3, transaction: Any, sender: Sender, timeout_s: float = 120.0) -> TxReceipt:
    """Sends a contract call or deployment (anything with `build_transaction`) from `sender`,
    waits for its receipt and raises ChainError if it reverted."""
    fields: dict[str, Any] = {"from": address_of(sender)}
    try:
        if isinstance(sender, LocalAccount):
            fields["nonce"] = w3.eth.get_transaction_count(sender.address, "pending")
            signed = sender.sign_transaction(transaction.build_transaction(fields))
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        else:
            tx_hash = transaction.transact(fields)
    except _revert_errors() as reverted:
        raise TransactionReverted(str(reverted)) from reverted
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s)
    if receipt["status"] != 1:
        raise TransactionReverted(f"transaction {tx_hash.hex()} reverted")
    return receipt


def _revert_errors() -> tuple[type[Exception], ...]:
    """What a refused call raises: web3's error for a JSON-RPC node, eth-tester's own for the
    embedded chain (looked up only if it is loaded: it imports py-evm)."""
    tester = sys.modules.get("eth_tester.exceptions")
    return (ContractLogicError, tester.TransactionFailed) if tester else (ContractLogicError,)


def fund(w3: Web3, payer: str, receiver: str, wei: int, timeout_s: float = 120.0) -> None:
    """Sends `wei` of ether from an unlocked account (gas money for a test's wallets)."""
    tx_hash = w3.eth.send_transaction({"from": payer, "to": receiver, "value": wei})
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s)


def anvil_binary() -> Path:
    """The pinned anvil: `$MARKETNODE_ANVIL`, else the npm install under `.ci/chain`
    (its platform package ships the binary). ChainError names the install command."""
    override = os.environ.get(ANVIL_ENVIRONMENT)
    if override:
        if not Path(override).is_file():
            raise ChainError(f"${ANVIL_ENVIRONMENT} names {override}, which is not a file")
        return Path(override)
    found = sorted(ANVIL_FOLDER.glob("node_modules/@foundry-rs/anvil-*/bin/anvil"))
    if not found:
        raise ChainError(
            f"anvil {ANVIL_VERSION} is not installed: run `{ANVIL_INSTALL}` in the repository"
        )
    return found[0]


def anvil_version(binary: Path) -> str:
    """`anvil --version`'s number, e.g. 1.7.1; ChainError if the binary does not run."""
    try:
        output = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                                timeout=30, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        raise ChainError(f"{binary} does not run: {error}; run `{ANVIL_INSTALL}`") from error
    if not output.startswith("anvil Version:"):
        first_line = output.partition("\n")[0]
        raise ChainError(f"{binary} is not anvil (its --version says {first_line!r})")
    return output.split()[2]


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Anvil:
    """An anvil process on a free loopback port, stopped by its own pid."""

    def __init__(self, binary: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.extra_args = extra_args
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0, attempts: int = 3) -> Web3:
        """Starts anvil and waits (at most `timeout_s`) until it answers; a port taken between
        choosing and binding it is retried on another one."""
        exit_code = None
        for _ in range(attempts):
            w3 = self._start_once(timeout_s)
            if w3 is not None:
                return w3
            exit_code = self.process.poll() if self.process else None
            self.stop()
        raise ChainError(
            f"anvil did not answer on loopback within {timeout_s} s in {attempts} attempts"
            f" (last exit code: {exit_code})"
        )

    def _start_once(self, timeout_s: float) -> Web3 | None:
        """A connection once anvil answers on a new free port, None if it exits or is mute."""
        self.port = free_loopback_port()
        process = subprocess.Popen(
            [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port),
             *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.process = process
        w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": timeout_s}))
        _wait_until(lambda: process.poll() is not None or w3.is_connected(), timeout_s)
        return w3 if process.poll() is None and w3.is_connected() else None

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        self.process = None


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Polls `condition` until it holds or `timeout_s` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()

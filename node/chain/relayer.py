"""The relayer: the journal's signed trades -> settlement batches on chain, each trade final
only under `confirmations` blocks.

One `step` (the service calls it every poll interval):

1. follow the journal: new trades are recorded `pending` with the journal position;
2. watch every open batch: a receipt makes it `mined` (its block hash kept); its block hash is
   compared with the chain's at each step, and a batch whose block left the chain is
   `submitted` again and its transaction broadcast again; under enough blocks it is final:
   the contract's `TradeSettled` trades `confirmed`, its `TradeSkipped` ones `failed` with the
   skip reason (`confirmed` when the reason is that an earlier transaction settled them). A
   transaction unmined for `stuck_after_s` is replaced at the same nonce with both fee fields
   raised by 12.5% at least (fees.replacement_fees);
3. send: a full batch at once; a partial one when its earliest deadline comes, or earlier when
   the `settlement_timing` policy finds the fees cheap.

Beside the journal it follows the contract's `MinNonceRaised` logs (owners' bulk cancels,
`follow_min_nonces`), from the contract's deployment block, each block only once it is under
the confirmations (a log of a block reorganised out is never read), and resumed from the next
block kept in the state store with the logs read up to it: each raise becomes a notice for the
node (relayer_service.NodeNotifier), which cancels the owner's resting orders below it.

Nonces are the relayer's own, kept in its state store and moved on in the same transaction
that records a batch and its signed bytes, before they are broadcast: after a restart the
relayer never asks the chain for a pending count (which a lost mempool or a second sender would
make wrong) and re-broadcasts, once, every batch not yet mined. A batch broadcast twice is one
transaction (one nonce); a trade sent twice is skipped by the contract (`ALREADY_SETTLED`)
and is confirmed here: it did settle, in the earlier transaction.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound
from web3.logs import DISCARD

from marketnode.plugins.settlement_timing import send_now, timing_manager

from .contracts import SkipReason
from .deploy import bound
from .fees import FeeHistory, Fees, fee_history, replacement_fees
from .journal_trades import JournalTrades
from .rpc import _revert_errors
from .settlement_store import MINED, SUBMITTED, Sent, SettlementStore

log = logging.getLogger("marketnode.relayer")
GAS_MARGIN = 1.25
GAS_EXTRA = 30_000
"""Gas offered over the estimate: a trade's storage writes cost more when the slot was cleared
in between (the estimate may be made against another state than the block's)."""
NONCE_TAKEN = "its nonce was taken by another transaction of the relayer's key"
REVERTED = "its transaction reverted as a whole"
MAX_IN_FLIGHT = 4
TRADES_PER_WRITE = 10_000
"""Batches sent and not yet mined, at most: more would only queue at later nonces."""
LOG_BLOCKS = 2_000
"""Blocks per `eth_getLogs` request of `MinNonceRaised` logs (providers bound the range)."""


@dataclass(frozen=True, slots=True)
class RelayerSettings:
    confirmations: int = 3
    batch_size: int = 50
    stuck_after_s: float = 30.0
    timing: dict[str, Any] = field(default_factory=dict)
    """The `settlement_timing` policy's settings."""
    sized_gas: tuple[int, int] | None = None
    """(per batch, per trade): a batch's gas limit from its size instead of the chain's
    estimate, for a chain whose estimate is dear (eth-tester replays the batch about a dozen
    times to estimate it: 6.5 s of the 8.6 s of CPU a ten-trade batch took)."""


class Relayer:
    """Follows `journal` into `state` and settles through the contract at `contract` as
    `account` (the contract's relayer)."""

    def __init__(self, w3: Web3, account: LocalAccount, contract: str, state: SettlementStore,
                 journal: JournalTrades, settings: RelayerSettings,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.w3 = w3
        self.account = account
        self.contract: Contract = bound(w3, "Settlement", contract)
        self.state = state
        self.journal = journal
        self.settings = settings
        self.clock = clock
        self.timing = timing_manager()
        self.chain_id = w3.eth.chain_id
        self.rebroadcast: set[int] = set()
        """Batches broadcast by this run (every open batch is broadcast once after a start)."""
        if state.meta("next_nonce") is None:  # a first start: nothing of ours is pending yet
            state.set_first_nonce(w3.eth.get_transaction_count(account.address))

    def step(self) -> None:
        self.follow()
        self.follow_min_nonces()
        self.watch()
        self.send()

    # -- 1. the journal --------------------------------------------------------------------

    def follow(self) -> int:
        """Record the trades of the journal's new commits; how many. A backlog is written in
        chunks of commits (one SQLite transaction, one sync, each), not a sync per commit."""
        stored = self.state.position
        found: list = []
        reached, recorded = stored, 0
        for position, trades in self.journal.follow(stored):
            if position <= stored:
                continue
            found.extend(trades)
            reached = position
            if len(found) >= TRADES_PER_WRITE:
                self.state.add_trades(found, reached)
                stored, recorded, found = reached, recorded + len(found), []
        if reached > stored:
            self.state.add_trades(found, reached)
        return recorded + len(found)

    def follow_min_nonces(self) -> int:
        """Record the `MinNonceRaised` logs of the blocks that came under the confirmations
        since the last call, each with the next block to read; how many."""
        final = self.w3.eth.block_number - self.settings.confirmations + 1
        start = self.state.meta("min_nonce_block")
        if start is None:
            start = deployment_block(self.w3, self.contract.address, max(final, 0))
        found = 0
        while start <= final:
            stop = min(final, start + LOG_BLOCKS - 1)
            logs = self.contract.events.MinNonceRaised().get_logs(from_block=start, to_block=stop)
            raised = [(log["args"]["owner"].lower(), str(log["args"]["min_nonce"]),
                       log["blockNumber"]) for log in logs]  # fmt: skip
            self.state.add_min_nonces(raised, stop + 1)
            found, start = found + len(raised), stop + 1
        return found

    # -- 2. batches on their way -------------------------------------------------------------

    def watch(self) -> None:
        if not self.state.open_batches():
            return
        latest = self.w3.eth.block_number
        for batch in self.state.open_batches():
            if batch["state"] == MINED:
                self._watch_mined(batch, latest)
            else:
                self._watch_submitted(batch)

    def _watch_mined(self, batch: Any, latest: int) -> None:
        try:
            on_chain = self.w3.eth.get_block(batch["block"])["hash"].hex()
        except Exception:  # a shorter chain has no such block: reorganised
            on_chain = None
        if _hex(on_chain) != batch["block_hash"]:
            log.warning("batch %d: block %s left the chain: sending it again", batch["id"],
                        batch["block"])  # fmt: skip
            self.state.mark_unmined(batch["id"])
            self._broadcast(self.state.sent(batch["id"])[0])
            return
        if latest - batch["block"] + 1 >= self.settings.confirmations:
            receipt = self._receipt(batch["tx_hash"])
            if receipt is None or _hex(receipt["blockHash"].hex()) != batch["block_hash"]:
                self.state.mark_unmined(batch["id"])  # moved meanwhile: looked at again
                return
            self._finish(batch["id"], receipt)

    def _watch_submitted(self, batch: Any) -> None:
        sent = self.state.sent(batch["id"])
        for one in sent:
            receipt = self._receipt(one.tx_hash)
            if receipt is not None:
                block = self.w3.eth.get_block(receipt["blockNumber"])
                self.state.mark_mined(
                    batch["id"], one.tx_hash, receipt["blockNumber"],
                    _hex(receipt["blockHash"].hex()), receipt["gasUsed"],
                    receipt.get("effectiveGasPrice", 0), block.get("baseFeePerGas"),
                )  # fmt: skip
                return
        if batch["id"] not in self.rebroadcast:
            self.rebroadcast.add(batch["id"])
            self._broadcast(sent[0])
        elif self.clock() - sent[0].sent_at >= self.settings.stuck_after_s:
            if self._nonce_taken(batch["nonce"], sent):
                log.error("batch %d: nonce %d was taken by another transaction of the key: its "
                          "trades go in a new batch", batch["id"], batch["nonce"])  # fmt: skip
                self.state.requeue(batch["id"], NONCE_TAKEN)
                self.state.set_next_nonce_at_least(self.w3.eth.get_transaction_count(
                    self.account.address))  # fmt: skip
            else:
                self._replace(batch, sent[0])

    def _nonce_taken(self, nonce: int, sent: list[Sent]) -> bool:
        """Is `nonce` used on chain (under the confirmations) by none of the batch's own
        transactions? Checked only for a batch unmined past `stuck_after_s`, and again just
        before deciding, so a receipt that came meanwhile is not missed."""
        final = self.w3.eth.block_number - self.settings.confirmations + 1
        if final < 0 or self.w3.eth.get_transaction_count(self.account.address, final) <= nonce:
            return False
        return all(self._receipt(one.tx_hash) is None for one in sent)

    def _receipt(self, tx_hash: str) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _replace(self, batch: Any, previous: Sent) -> None:
        fees = replacement_fees(Fees(previous.max_fee, previous.tip), fee_history(self.w3).fees())
        entries = [self._entry(row) for row in self._batch_rows(batch["id"])]
        # the same calldata needs the same gas: an estimate made now may be made against a
        # chain where the original was mined (its trades then cheap `already_settled` skips),
        # and a replacement that lands after that block is reorganised out would run short
        gas = TypedTransaction.from_bytes(HexBytes(_hex(previous.raw)))
        sent = self._sign(entries, batch["nonce"], fees, gas=gas.as_dict()["gas"])
        log.warning("batch %d: unmined for %.0f s: replaced at nonce %d, fees %d/%d -> %d/%d",
                    batch["id"], self.clock() - previous.sent_at, batch["nonce"],
                    previous.max_fee, previous.tip, fees.max_fee, fees.tip)  # fmt: skip
        self.state.replace(batch["id"], sent)
        self._broadcast(sent)

    def _finish(self, batch: int, receipt: Any) -> None:
        if receipt["status"] != 1:
            # no owner is at fault for a batch that reverts as a whole: its trades go in a
            # new batch, whose gas estimate refuses it at no cost if the cause has stayed
            log.error("batch %d: its transaction %s reverted: its trades go in a new batch",
                      batch, receipt["transactionHash"].hex())  # fmt: skip
            self.state.requeue(batch, REVERTED)
            return
        events = self.contract.events
        settled = [
            entry["args"]["trade_id"]
            for entry in events.TradeSettled().process_receipt(receipt, errors=DISCARD)
        ]
        skipped = {
            entry["args"]["trade_id"]: SkipReason(entry["args"]["reason"]).name.lower()
            for entry in events.TradeSkipped().process_receipt(receipt, errors=DISCARD)
        }
        self.state.finish(batch, settled, skipped)
        log.info("batch %d final: %d settled, %d skipped", batch, len(settled), len(skipped))

    # -- 3. sending ------------------------------------------------------------------------

    def send(self) -> None:
        """Send the batches due now (see the module's docstring)."""
        while True:
            in_flight = sum(row["state"] == SUBMITTED for row in self.state.open_batches())
            rows = self.state.pending(self.settings.batch_size)
            if not rows or in_flight >= MAX_IN_FLIGHT:
                return
            history = fee_history(self.w3)
            deadlines = [row["deadline"] for row in rows]
            if not batch_due(deadlines, rows[0]["traded_at"], self.clock(), history.base_fees,
                             self.settings, self.timing):  # fmt: skip
                return
            if not self._send_batch(rows, history):
                return

    def _send_batch(self, rows: list, history: FeeHistory) -> bool:
        """Sign, record, then broadcast one batch; False when the chain refused to estimate it
        (then nothing is recorded, and it is tried again at the next step)."""
        entries = [self._entry(row) for row in rows]
        nonce = self.state.meta("next_nonce")
        try:
            sent = self._sign(entries, nonce, history.fees())  # type: ignore[arg-type]
        except _revert_errors() as refused:
            log.error("the chain refuses a batch of %d trades: %s", len(rows), refused)
            return False
        batch = self.state.add_batch([row["seq"] for row in rows], nonce, sent)  # type: ignore[arg-type]
        self.rebroadcast.add(batch)
        log.info("batch %d: %d trades at nonce %d, tx %s", batch, len(rows), nonce, sent.tx_hash)
        self._broadcast(sent)
        return True

    def _sign(self, entries: list, nonce: int, fees: Fees, gas: int | None = None) -> Sent:
        """The signed `settle(entries)` at `nonce`; `gas` (a replaced transaction's), else the
        size-given limit (`sized_gas`) or the estimate with its margin."""
        call = self.contract.functions.settle(entries)
        if gas is None and self.settings.sized_gas is not None:
            per_batch, per_trade = self.settings.sized_gas
            gas = per_batch + per_trade * len(entries)
        if gas is None:
            gas = int(call.estimate_gas({"from": self.account.address}) * GAS_MARGIN) + GAS_EXTRA
        transaction = call.build_transaction({
            "from": self.account.address, "nonce": nonce, "chainId": self.chain_id,
            "gas": gas,
            "maxFeePerGas": fees.max_fee, "maxPriorityFeePerGas": fees.tip,
        })  # fmt: skip
        signed = self.account.sign_transaction(transaction)
        return Sent(_hex(signed.hash.hex()), signed.raw_transaction.hex(), fees.max_fee,
                    fees.tip, self.clock())  # fmt: skip

    def _broadcast(self, sent: Sent) -> None:
        """Send the signed bytes; a refusal (known already, nonce used, underpriced) is left
        to the next watch, which finds the receipt or replaces the transaction."""
        try:
            self.w3.eth.send_raw_transaction(_hex(sent.raw))
        except Exception as error:  # every refusal is handled by watching
            log.info("broadcast of %s refused: %s", sent.tx_hash, error)

    def _batch_rows(self, batch: int) -> list:
        return self.state.db.execute(
            "SELECT * FROM trades WHERE batch = ? ORDER BY seq", (batch,)
        ).fetchall()

    @staticmethod
    def _entry(row: Any) -> list:
        """A stored batch entry with its signatures as bytes again."""
        entry = json.loads(row["entry"])
        entry[3], entry[4] = bytes.fromhex(entry[3][2:]), bytes.fromhex(entry[4][2:])
        return entry


def batch_due(deadlines: list[float], oldest_at: float, now: float, base_fees: list[int],
              settings: RelayerSettings, timing: pluggy.PluginManager) -> bool:  # fmt: skip
    """Is the batch of the oldest pending trades (their `deadlines`, the oldest traded at
    `oldest_at`) to be sent at `now`: when full, when its earliest deadline has come, or when
    the `settlement_timing` policy says so. A function of its own so the fee-timing evaluation
    replays this very rule."""
    if len(deadlines) >= settings.batch_size:
        return True
    seconds_left = min(deadlines) - now
    if seconds_left <= 0:
        return True
    return send_now(timing, base_fees, seconds_left, settings.timing, pending=len(deadlines),
                    batch_size=settings.batch_size, waited_s=now - oldest_at)  # fmt: skip


def deployment_block(w3: Web3, address: str, head: int) -> int:
    """The first block at or below `head` holding code at `address` (a contract's code stays
    once deployed: a binary search over the blocks); 0 when it has none there yet."""
    if not w3.eth.get_code(address, head):
        return 0
    low, high = 0, head
    while low < high:
        middle = (low + high) // 2
        if w3.eth.get_code(address, middle):
            high = middle
        else:
            low = middle + 1
    return low


def _hex(value: str | None) -> str | None:
    """`0x`-prefixed lowercase hex (web3's `.hex()` leaves the prefix off)."""
    if value is None:
        return None
    return value if value.startswith("0x") else "0x" + value

"""The relayer process a node starts beside itself when `[settlement] enabled` (through its
supervisor: it dies with the node, and is restarted with a backoff when it dies alone).

It reads the journal read-only, keeps its state in `settlement/state.sqlite` in the home, and
talks to the chain of `[settlement] rpc` as the key in `key_file`. Being a process of its own,
a slow chain or a long replay never touches the matching thread. SIGTERM ends it between steps.

After each step it tells the node of the trades that failed, and every second of its state
(`NodeNotifier`), on the node's ipc socket, with the link's token the node writes on its stdin:

    python -m marketnode.node.server.supervisor PARENT SIGNAL \
        marketnode.node.chain.relayer_service HOME
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import zmq
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.exceptions import TransactionNotFound, Web3Exception
from web3.logs import DISCARD

from ..core.markets import ConfigError
from ..home.config import SettlementConfig
from ..home.layout import Home
from ..protocol.settlement import (
    Acknowledged,
    MinNonceNotice,
    MinNonceNotices,
    Notices,
    TradeNotice,
    acknowledged_decoder,
    settlement_encoder,
)
from ..store.lmdb_store import Store
from .eip712 import Domain, Order, address_from_text, order_digest
from .journal_trades import JournalTrades
from .relayer import Relayer, RelayerSettings
from .rpc import ChainError, connect
from .settlement_store import (
    CONFIRMED,
    FAILED,
    MINED,
    SUBMITTED,
    RelayerStatus,
    SettlementStore,
    notices_endpoint,
    state_path,
)

log = logging.getLogger("marketnode.relayer")
EXIT_NO_TOKEN = 2
EXIT_CONFIG = 3
RESEND_S = 2.0
"""How long a notice waits for the node's acknowledgement before it is sent again."""
STATUS_EVERY_S = 1.0
LAG_WINDOW = 10_000
"""Settlement lag is over the latest confirmed trades, this many: what it is now."""
FAILURES_SHOWN = 10
NOTICES_PER_MESSAGE = 100
SIDE_OF_REASON = {"buyer_transfer_failed": "buy", "seller_transfer_failed": "sell"}
"""The side at fault when the contract names no order (it always does for these two)."""


class NodeNotifier:
    """Tells the node of every failed trade until the node acknowledges it: each notice is in
    the state store from the transaction that failed its trade, sent again every `RESEND_S`
    while unacknowledged (so a node or relayer restart loses none), and done once the node's
    `Acknowledged` names it. The node acts once per trade, so a notice heard twice is harmless.

    Before its first sending a notice is resolved: the side at fault, the order the contract's
    `TradeSkipped` names, found among the two orders' hashes (computed from the trade's batch
    entry). The peers that placed the two orders came with the trade from the journal, so the
    journal is not read again for a failure.

    Each minimum nonce an owner raised on the contract (`Relayer.follow_min_nonces`) is told
    the same way, until the node acknowledges its `owner:min_nonce` key.

    Every `STATUS_EVERY_S` it also sends the node a `RelayerStatus`: the store's `summary`,
    the chain's head and its base fee, and the confirmations a batch waits for (so a batch's
    depth can be shown), which the node keeps for its `status` and `metrics`."""

    def __init__(self, socket: zmq.Socket, token: bytes, state: SettlementStore,
                 contract: Contract, chain_id: int, confirmations: int) -> None:  # fmt: skip
        self.socket = socket
        self.token = token
        self.state = state
        self.contract = contract
        self.domain = Domain(chain_id, address_from_text(contract.address))
        self.confirmations = confirmations
        self.sent_at: dict[int | str, float] = {}
        """Monotonic time each unacknowledged notice (a trade's seq, a raised minimum's key)
        was last sent by this run."""
        self.status_sent_at = -STATUS_EVERY_S

    def step(self) -> None:
        self._hear()
        self._send_notices()
        self._send_min_nonces()
        self._send_status()  # last: a chain slow to give its head holds back no notice

    def _send_notices(self) -> None:
        rows = self.state.unacknowledged(NOTICES_PER_MESSAGE)
        unresolved = [row for row in rows if not row["resolved"]]
        if unresolved:
            self.state.resolve(self._resolve(unresolved))
            rows = self.state.unacknowledged(NOTICES_PER_MESSAGE)
        now = time.monotonic()
        due = [row for row in rows if now - self.sent_at.get(row["seq"], -RESEND_S) >= RESEND_S]
        if not due:
            return
        notices = [TradeNotice(
            row["seq"], row["market"], row["state"], row["reason"], row["tx_hash"], row["block"],
            row["buyer"], row["seller"], row["at_fault"], row["buyer_peer"], row["seller_peer"],
        ) for row in due]  # fmt: skip
        if self._send(Notices(notices)):
            self.sent_at.update((row["seq"], now) for row in due)

    def _send_min_nonces(self) -> None:
        rows = self.state.unacknowledged_min_nonces(NOTICES_PER_MESSAGE)
        notices = [MinNonceNotice(row["owner"], row["min_nonce"], row["block"]) for row in rows]
        now = time.monotonic()
        due = [n for n in notices if now - self.sent_at.get(n.key, -RESEND_S) >= RESEND_S]
        if due and self._send(MinNonceNotices(due)):
            self.sent_at.update((notice.key, now) for notice in due)

    def _send(self, message: Notices | MinNonceNotices | RelayerStatus) -> bool:
        try:
            self.socket.send_multipart([self.token, settlement_encoder.encode(message)],
                                       zmq.NOBLOCK)  # fmt: skip
        except zmq.Again:  # no node to take it: sent again at a later step
            return False
        return True

    def _send_status(self) -> None:
        now = time.monotonic()
        if now - self.status_sent_at < STATUS_EVERY_S:
            return
        head = self.contract.w3.eth.get_block("latest")
        chain = {"head": head["number"], "base_fee_now": head.get("baseFeePerGas"),
                 "confirmations": self.confirmations}  # fmt: skip
        if self._send(RelayerStatus(summary(self.state) | chain)):
            self.status_sent_at = now

    def _hear(self) -> None:
        while True:
            try:
                payload = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            message = acknowledged_decoder.decode(payload)
            if type(message) is Acknowledged:
                done, acknowledge, what = message.seqs, self.state.acknowledge, "failed trades"
            else:
                done, acknowledge = message.keys, self.state.acknowledge_min_nonces
                what = "raised minimum nonces"
            for key in done:
                self.sent_at.pop(key, None)
            if acknowledged := acknowledge(done):  # type: ignore[arg-type]
                log.info("the node acted on %d %s", acknowledged, what)

    def _resolve(self, rows: list) -> dict[int, str | None]:
        """seq -> the side at fault of each row (None: neither, or not known)."""
        faulty = self._orders_at_fault({row["tx_hash"] for row in rows if row["tx_hash"]})
        found = {}
        for row in rows:
            entry = json.loads(row["entry"])
            sides = {self._order_hash(entry[1]): "buy", self._order_hash(entry[2]): "sell"}
            at_fault = sides.get(faulty.get(row["seq"], b""))
            found[row["seq"]] = at_fault or SIDE_OF_REASON.get(row["reason"])
        return found

    def _order_hash(self, order: list) -> bytes:
        """The hash the contract gives an order of a batch entry (its EIP-712 digest)."""
        owner, base, token_id, quote, *rest = order
        order_fields = (address_from_text(owner), address_from_text(base), token_id,
                        address_from_text(quote), *rest)  # fmt: skip
        return order_digest(self.domain, Order(*order_fields))

    def _orders_at_fault(self, tx_hashes: set[str]) -> dict[int, bytes]:
        """trade id -> the order hash its `TradeSkipped` names, over the transactions'
        receipts (a reverted batch has none: nobody's order is at fault)."""
        faulty = {}
        for tx_hash in tx_hashes:
            try:
                receipt = self.contract.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                continue
            skips = self.contract.events.TradeSkipped().process_receipt(receipt, errors=DISCARD)
            for skip in skips:
                faulty[skip["args"]["trade_id"]] = bytes(skip["args"]["order_hash"])
        return faulty


def figures(state: SettlementStore) -> dict[str, Any]:
    """Settlement lag (the trade's commit in the journal -> final on chain) p50 and p99 in
    seconds over the latest `LAG_WINDOW` confirmed trades, and gas and fee per trade over
    every final batch (the fee in wei, and in gwei for reading)."""
    lags = sorted(row[0] for row in state.db.execute(
        "SELECT settled_at - traded_at FROM trades WHERE state = ? ORDER BY seq DESC LIMIT ?",
        (CONFIRMED, LAG_WINDOW),
    ))  # fmt: skip
    gas, fee, trades = state.db.execute(
        "SELECT sum(gas_used), sum(gas_used * gas_price), sum(trades) FROM batches WHERE state = ?",
        (CONFIRMED,),
    ).fetchone()
    fee_wei = fee // trades if trades else None
    return {
        "lag_p50_s": round(lags[len(lags) // 2], 3) if lags else None,
        "lag_p99_s": round(lags[len(lags) * 99 // 100], 3) if lags else None,
        "gas_per_trade": gas // trades if trades else None,
        "fee_per_trade_wei": fee_wei,
        "fee_per_trade_gwei": None if fee_wei is None else round(fee_wei / 1e9, 3),
    }


def summary(state: SettlementStore) -> dict[str, Any]:
    """What `mnode settlement status` and the node's status show: the counts, the
    figures, the batches in flight (fees offered, and once mined the fee paid against its
    block's base fee) and the latest failures with their reasons."""
    in_flight = state.db.execute(
        "SELECT b.id, b.nonce, b.tx_hash, b.state, b.trades, b.block, b.gas_price, b.base_fee,"
        " t.max_fee, t.tip, t.sent_at FROM batches b JOIN transactions t USING (tx_hash)"
        " WHERE b.state IN (?, ?) ORDER BY b.nonce",
        (SUBMITTED, MINED),
    )
    failures = state.db.execute(
        "SELECT seq, market, reason, tx_hash, block FROM trades WHERE state = ?"
        " ORDER BY settled_at DESC, seq DESC LIMIT ?",
        (FAILED, FAILURES_SHOWN),
    )
    unacknowledged = "SELECT count(*) FROM notices WHERE acknowledged_at IS NULL"
    return {
        "position": state.position,
        "next_nonce": state.meta("next_nonce"),
        "trades": state.counts(),
        "notices_unacknowledged": state.db.execute(unacknowledged).fetchone()[0],
        **figures(state),
        "batches_in_flight": [dict(row) for row in in_flight],
        "failures": [dict(row) for row in failures],
    }


def relayer_key(home: Home, settlement: SettlementConfig) -> LocalAccount:
    """The relayer's key: hex (with or without 0x) alone in `key_file` (the configuration
    requires one when the relayer is enabled)."""
    path = Path(settlement.key_file)
    path = path if path.is_absolute() else home.path / path
    try:
        return Account.from_key(path.read_text().strip())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the relayer's key: {error.strerror}") from None
    except ValueError:
        raise ConfigError(f"{path}: not a private key (64 hex digits)") from None


def run(home: Home, token: bytes) -> None:
    config = home.config()
    settlement = config.settlement
    account = relayer_key(home, settlement)
    w3 = connect(settlement.rpc)
    settings = RelayerSettings(settlement.confirmations, settlement.batch_size,
                               float(settlement.stuck_after_s))  # fmt: skip
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with Store(home.store_path(config), readonly=True) as store:
        state = SettlementStore(state_path(home.path))
        journal = JournalTrades(store, settlement.max_delay_s)
        relayer = Relayer(w3, account, settlement.contract, state, journal, settings)
        context = zmq.Context()
        socket = context.socket(zmq.DEALER)
        socket.linger = 0
        socket.connect(notices_endpoint(home.path))
        notifier = NodeNotifier(socket, token, state, relayer.contract, relayer.chain_id,
                                settings.confirmations)  # fmt: skip
        log.info("relayer %s settling on %s", account.address, settlement.rpc)
        while not stopping:
            try:
                relayer.step()
                notifier.step()
            except (ChainError, OSError, ValueError, Web3Exception) as error:  # chain away: retry
                log.error("settlement step failed: %s", error)
            time.sleep(settlement.poll_interval_ms / 1000)
        state.close()
        context.destroy()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relayer %(message)s")
    token = sys.stdin.buffer.readline().strip()
    if not token:
        log.error("no link token on stdin (the node starts this process)")
        sys.exit(EXIT_NO_TOKEN)
    try:
        run(Home(Path(sys.argv[1])), token)
    except (ConfigError, ChainError) as error:
        log.error("%s", error)
        sys.exit(EXIT_CONFIG)


if __name__ == "__main__":
    main()

"""The relayer process a node starts beside itself when `[settlement] enabled` (through its
supervisor: it dies with the node, and is restarted with a backoff when it dies alone).

It reads the journal read-only, keeps its state in `settlement/state.sqlite` in the home, and
talks to the chain of `[settlement] rpc` as the key in `key_file`. Being a process of its own,
a slow chain or a long replay never touches the matching thread. SIGTERM ends it between steps.

After each step it tells the node of the trades that failed (`NodeNotifier`), on the node's
ipc socket, with the link's token the node writes on its stdin:

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

import zmq
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.exceptions import TransactionNotFound, Web3Exception
from web3.logs import DISCARD

from ..core.commands import NewOrder
from ..core.markets import ConfigError
from ..home.config import SettlementConfig
from ..home.layout import Home
from ..protocol.settlement import (
    Notices,
    TradeNotice,
    acknowledged_decoder,
    settlement_encoder,
)
from ..store.lmdb_store import Store
from .journal_trades import JournalTrades
from .relayer import Relayer, RelayerSettings
from .rpc import ChainError, connect
from .settlement_store import SettlementStore, notices_endpoint, state_path

log = logging.getLogger("marketnode.relayer")
EXIT_NO_TOKEN = 2
EXIT_CONFIG = 3
RESEND_S = 2.0
"""How long a notice waits for the node's acknowledgement before it is sent again."""
NOTICES_PER_MESSAGE = 100
SIDE_OF_REASON = {"buyer_transfer_failed": "buy", "seller_transfer_failed": "sell"}
"""The side at fault when the contract names no order (it always does for these two)."""


class NodeNotifier:
    """Tells the node of every failed trade until the node acknowledges it: each notice is in
    the state store from the transaction that failed its trade, sent again every `RESEND_S`
    while unacknowledged (so a node or relayer restart loses none), and done once the node's
    `Acknowledged` names it. The node acts once per trade, so a notice heard twice is harmless.

    Before its first sending a notice is resolved: the side at fault (the contract's
    `TradeSkipped` names the order, matched against the journal's order hashes) and the peers
    that placed the two orders (the journal's `new` commands carrying their signatures). That
    reads the journal from its start, once per handful of failures: failures are rare, and the
    relayer replays the whole journal at each start anyway."""

    def __init__(self, socket: zmq.Socket, token: bytes, state: SettlementStore, store: Store,
                 contract: Contract) -> None:  # fmt: skip
        self.socket = socket
        self.token = token
        self.state = state
        self.store = store
        self.contract = contract
        self.sent_at: dict[int, float] = {}
        """Monotonic time each unacknowledged notice was last sent by this run."""

    def step(self) -> None:
        self._hear()
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
        try:
            self.socket.send_multipart(
                [self.token, settlement_encoder.encode(Notices(notices))], zmq.NOBLOCK
            )
        except zmq.Again:  # no node to take it: sent again at a later step
            return
        self.sent_at.update((row["seq"], now) for row in due)

    def _hear(self) -> None:
        while True:
            try:
                payload = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            seqs = acknowledged_decoder.decode(payload).seqs
            for seq in seqs:
                self.sent_at.pop(seq, None)
            acknowledged = self.state.acknowledge(seqs)
            if acknowledged:
                log.info("the node acted on %d failed trades", acknowledged)

    def _resolve(self, rows: list) -> dict[int, tuple[str | None, str | None, str | None]]:
        """seq -> (side at fault, buyer's peer, seller's peer) of each row."""
        faulty = self._orders_at_fault({row["tx_hash"] for row in rows if row["tx_hash"]})
        signatures = {}
        for row in rows:
            entry = json.loads(row["entry"])
            signatures[row["seq"]] = (entry[3], entry[4])
        placed = orders_placed(self.store, {sig for pair in signatures.values() for sig in pair})
        found = {}
        for row in rows:
            (buy_peer, buy_hash), (sell_peer, sell_hash) = (
                placed.get(sig, (None, None)) for sig in signatures[row["seq"]]
            )
            at_fault = {buy_hash: "buy", sell_hash: "sell"}.get(faulty.get(row["seq"]))
            found[row["seq"]] = (at_fault or SIDE_OF_REASON.get(row["reason"]), buy_peer,
                                 sell_peer)  # fmt: skip
        return found

    def _orders_at_fault(self, tx_hashes: set[str]) -> dict[int, str]:
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
                faulty[skip["args"]["trade_id"]] = "0x" + bytes(skip["args"]["order_hash"]).hex()
        return faulty


def orders_placed(store: Store, signatures: set[str]) -> dict[str, tuple[str | None, str]]:
    """signature -> (peer, order hash) of the journal's signed `new` commands carrying them
    (the first: a signed order is taken once, a copy sent later is refused `nonce_used`)."""
    found: dict[str, tuple[str | None, str]] = {}
    for _, command in store.journal():
        if type(command) is NewOrder and command.sig in signatures and command.order_hash:
            found.setdefault(command.sig, (command.peer, command.order_hash))
            if len(found) == len(signatures):
                break
    return found


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
        notifier = NodeNotifier(socket, token, state, store, relayer.contract)
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

"""The node's side of its relayer process (node/chain/relayer_service.py): started when
`[settlement] enabled`, kept by a `Supervisor` like the analytics process (it dies with the
node, restarts with a backoff), described for `status`, and heard when a trade fails on chain.

The relayer reads the journal, and its state store (settlement/state.sqlite in the home) is the
one place its progress is kept. The node never opens that file (not on its matching thread):
every second the relayer sends a `RelayerStatus` (its store's summary and the chain's head),
kept here for `status` and `metrics` with its age. It tells the node of each failed trade on
an ipc socket the node binds in the home (every message carries the link's token, given to
the relayer on its stdin), and sends it again until the node acknowledges it. For each failed
trade the node, once:

1. cancels the resting orders of the owner at fault in the trade's market (one journaled
   batch, reason `settlement_failed`, reported and published like any cancel): only that
   market, because what failed is that market's token (its balance or approval) or an order
   of it; the owner's other markets settle other tokens, and fail on their own if they must;
2. records the trade's seq in the store (`settlement_failures`), so a notice heard again, after
   a restart of either side, is only acknowledged again;
3. sends a `settlement` event in a report to the peers that placed the trade's two orders,
   publishes an alert on `alerts.` (severity high, kind `settlement_failed`), and acknowledges.

The relayer also tells of each minimum nonce an owner raised on the contract (under its
confirmations); the node journals it once per owner and minimum (`RaiseMinNonce`: the
owner's resting signed orders below it cancelled, reason `min_nonce`, reported and published),
records it (`min_nonces_raised`) and acknowledges.

The record is written in the LMDB transaction of the commands it records (the cancels, the
raised minimum; alone when there is nothing to cancel): a node killed at any point has either
done both or neither, so each notice is acted on exactly once. Only what follows the commit
(the reports, the alert, the acknowledgement) may be lost to a kill: the notice sent again is
then acknowledged, not acted on again.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import msgspec
import zmq

from ..chain.settlement_store import RelayerStatus, notices_endpoint
from ..core.commands import BAD_INPUT
from ..core.reasons import CancelReason
from ..home.config import SettlementConfig
from ..home.layout import Home
from ..protocol.messages import ALERTS_TOPIC, encoder
from ..protocol.settlement import (
    SETTLEMENT_FAILED_KIND,
    Acknowledged,
    MinNonceNotice,
    MinNonceNotices,
    MinNoncesAcknowledged,
    Notices,
    SettlementEvent,
    TradeNotice,
    settlement_encoder,
)
from ..store.durable import CommitFailed, DurableEngine
from ..store.lmdb_store import StoreError
from .answers import Outbox
from .cancelling import cancel_owner_orders, raise_min_nonce
from .errors import NodeError
from .marketdata import MarketDataPublisher
from .store_guard import StoreGuard
from .supervisor import SupervisedLink, Supervisor

RELAYER_MODULE = "marketnode.node.chain.relayer_service"
HANDLED_KEY = b"settlement_failures"
MIN_NONCES_KEY = b"min_nonces_raised"
HANDLED_KEPT = 10_000
"""Notices remembered as acted on, the latest of each kind: the relayer sends a notice again
within seconds until it hears the acknowledgement, so an older one never comes back."""

METRICS = ("lag_p50_s", "lag_p99_s", "gas_per_trade", "fee_per_trade_wei", "fee_per_trade_gwei")
"""The relayer's figures the node's `metrics` answer carries."""
relayer_decoder = msgspec.msgpack.Decoder(Notices | MinNonceNotices | RelayerStatus)

log = logging.getLogger("marketnode.node")


class SettlementLink(SupervisedLink):
    """The relayer process, when enabled, and the socket its notices come in on."""

    def __init__(self, home: Home, settlement: SettlementConfig, context: zmq.Context,
                 durable: DurableEngine, outbox: Outbox, market_data: MarketDataPublisher,
                 store_guard: StoreGuard) -> None:  # fmt: skip
        self.enabled = settlement.enabled
        self.durable = durable
        self.outbox = outbox
        self.market_data = market_data
        self.store_guard = store_guard
        self.token = secrets.token_hex(32).encode()
        self.supervisor = Supervisor(
            "settlement", RELAYER_MODULE, [str(home.path)], secret=self.token
        )
        self.handled = ActedOn(durable, HANDLED_KEY)
        """Seqs (as text) of the failed trades acted on."""
        self.min_nonces = ActedOn(durable, MIN_NONCES_KEY)
        """`MinNonceNotice.key`s of the raised minimums journaled."""
        self.relayer_status: dict[str, Any] | None = None
        """The relayer's latest `RelayerStatus` summary, received at `status_at` (monotonic)."""
        self.status_at = 0.0
        self.socket: zmq.Socket | None = None
        if self.enabled:
            self.socket = context.socket(zmq.ROUTER)
            self.socket.linger = 0
            try:
                self.socket.bind(notices_endpoint(home.path))
            except zmq.ZMQError as error:  # a home path too long for an ipc socket, say
                raise NodeError(f"cannot listen for the relayer: {error}") from None

    # -- failed trades --------------------------------------------------------------------------

    def serve(self) -> None:
        """Keep the relayer's status; act on every notice that has come (see the module's
        docstring) and acknowledge."""
        while True:
            try:
                identity, token, payload = self.socket.recv_multipart(zmq.NOBLOCK)  # type: ignore[union-attr]
            except zmq.Again:
                return
            except ValueError:  # not three frames: not the relayer
                continue
            if not hmac.compare_digest(token, self.token):
                log.warning("settlement link: a message without the link's token, dropped")
                continue
            try:
                message = relayer_decoder.decode(payload)
            except BAD_INPUT as error:
                log.error("the relayer sent an unreadable message: %s", error)
                continue
            if type(message) is RelayerStatus:
                self.relayer_status, self.status_at = message.summary, time.monotonic()
                continue
            reply: Acknowledged | MinNoncesAcknowledged | None = None
            if type(message) is MinNonceNotices:
                if done := acted_on(message.notices, self.handle_min_nonce):
                    reply = MinNoncesAcknowledged([notice.key for notice in done])
            elif done := acted_on(message.notices, self.handle):
                reply = Acknowledged([notice.seq for notice in done])
            if reply is not None:
                payload = settlement_encoder.encode(reply)
                self.socket.send_multipart([identity, payload], zmq.NOBLOCK)  # type: ignore[union-attr]

    def handle(self, notice: TradeNotice) -> bool:
        """Act on a failed trade unless it was (True: to acknowledge; False: the store could
        not take it, and the relayer sends it again)."""
        return str(notice.seq) in self.handled or self._act(notice)

    def handle_min_nonce(self, notice: MinNonceNotice) -> bool:
        """Journal a raised minimum nonce unless it was (True and False as for `handle`)."""
        if notice.key in self.min_nonces:
            return True
        try:
            raise_min_nonce(self.durable, self.outbox, self.market_data, notice.owner,
                            int(notice.min_nonce), self.min_nonces.adding(notice.key))  # fmt: skip
        except (CommitFailed, StoreError) as error:
            self._refused(error, f"the minimum nonce {notice.min_nonce} of {notice.owner}")
            return False
        self.min_nonces.added(notice.key)
        return True

    def _refused(self, error: StoreError, what: str) -> None:
        if isinstance(error, CommitFailed):
            self.store_guard.failed(error)
        log.error("could not act on %s: %s", what, error)

    def _act(self, notice: TradeNotice) -> bool:
        """Cancel and record in one commit, report, alert (False: the store could not take
        it)."""
        owner = notice.owner_at_fault
        cancelled = 0
        record = self.handled.adding(str(notice.seq))
        try:
            if owner is None:
                self.durable.store.put_meta_list(*record)
            else:
                cancelled = cancel_owner_orders(
                    self.durable, self.outbox, self.market_data, owner, notice.market,
                    CancelReason.SETTLEMENT_FAILED, record,
                )  # fmt: skip
        except (CommitFailed, StoreError) as error:
            self._refused(error, f"the failed trade {notice.seq}")
            return False
        self.handled.added(str(notice.seq))
        event = SettlementEvent(
            notice.seq, notice.market, notice.state, notice.reason, notice.tx_hash,
            notice.block, notice.at_fault, owner, cancelled,
        )  # fmt: skip
        for peer in {notice.buyer_peer, notice.seller_peer} - {None}:
            self.outbox.report(peer, [event])  # type: ignore[arg-type]
        self.market_data.send(ALERTS_TOPIC, encoder.encode(settlement_alert(notice, cancelled)))
        log.warning("trade %d failed to settle (%s): %d resting orders of %s cancelled in %s",
                    notice.seq, notice.reason, cancelled, owner or "nobody",
                    notice.market)  # fmt: skip
        return True

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> Any:
        """`off`, or the process's state with the relayer's latest summary (trades' counts,
        figures, batches in flight, failures, the chain's head) and its age in seconds (None:
        none has come since the node started)."""
        if not self.enabled:
            return "off"
        state = self.supervisor.status()
        if self.relayer_status is None:
            return {"state": state, "age_s": None}
        age = round(time.monotonic() - self.status_at, 3)
        return {"state": state, "age_s": age, **self.relayer_status}


def acted_on(notices: list, handle: Callable[[Any], bool]) -> list:
    """The notices `handle` acted on (or had), up to the first it could not: the store cannot
    commit, and the relayer sends the rest again."""
    done = []
    for notice in notices:
        if not handle(notice):
            break
        done.append(notice)
    return done


class ActedOn:
    """The notices of one kind acted on, the latest `HANDLED_KEPT`, kept in the store beside
    the books (`key`). A new one is written by the commit of the commands acting on it
    (`adding` gives the list to write with them) and taken here once that commit is done
    (`added`)."""

    def __init__(self, durable: DurableEngine, key: bytes) -> None:
        self.key = key
        self.names = durable.store.get_meta_list(key)
        """Oldest first."""
        self._names = set(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def adding(self, name: str) -> tuple[bytes, list[str]]:
        """The record with `name` added, to write in the commit acting on it."""
        return self.key, [*self.names, name][-HANDLED_KEPT:]

    def added(self, name: str) -> None:
        """`name`'s commit is done."""
        self.names.append(name)
        self._names.add(name)
        if len(self.names) > HANDLED_KEPT:
            self._names.discard(self.names.pop(0))


def settlement_metrics(status: Any) -> Any:
    """The admin `metrics` answer's `settlement`, from `SettlementLink.status()`: `off`, or
    settlement lag p50/p99, gas and fee per trade, and how old they are (None: not heard)."""
    if not isinstance(status, dict):
        return status
    return {"age_s": status["age_s"]} | {name: status.get(name) for name in METRICS}


def settlement_alert(notice: TradeNotice, cancelled: int) -> dict[str, Any]:
    """The alert of a failed trade, with the keys of the integrity alerts (docs/protocol.md
    §11) and its `kind`."""
    owner = notice.owner_at_fault
    evidence = {
        "state": notice.state, "reason": notice.reason, "tx_hash": notice.tx_hash,
        "block": notice.block, "at_fault": notice.at_fault, "owner": owner,
        "buyer": notice.buyer, "seller": notice.seller, "cancelled": cancelled,
    }  # fmt: skip
    return {
        "id": f"settlement-{notice.seq}",
        "time": time.time(),
        "detector": SETTLEMENT_FAILED_KIND,
        "kind": SETTLEMENT_FAILED_KIND,
        "severity": "high",
        "market": notice.market,
        "wallets": [owner] if owner else [notice.buyer.lower(), notice.seller.lower()],
        "trades": [notice.seq],
        "evidence": evidence,
        "wash_volume": "0",
    }

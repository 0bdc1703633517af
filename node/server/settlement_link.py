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

The record follows the cancels' commit: a node killed between the two syncs acts again on the
notice sent again (the owner's orders resting then are cancelled, the peers told twice);
nothing is ever left undone.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
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
    Notices,
    SettlementEvent,
    TradeNotice,
    settlement_encoder,
)
from ..store.durable import CommitFailed, DurableEngine
from ..store.lmdb_store import StoreError
from .answers import Outbox
from .cancelling import cancel_owner_orders
from .errors import NodeError
from .marketdata import MarketDataPublisher
from .store_guard import StoreGuard
from .supervisor import SupervisedLink, Supervisor

RELAYER_MODULE = "marketnode.node.chain.relayer_service"
HANDLED_KEY = b"settlement_failures"
HANDLED_KEPT = 10_000
"""Failed trades remembered as acted on, the latest: the relayer sends a notice again within
seconds until it hears the acknowledgement, so an older one never comes back."""

METRICS = ("lag_p50_s", "lag_p99_s", "gas_per_trade", "fee_per_trade_wei", "fee_per_trade_gwei")
"""The relayer's figures the node's `metrics` answer carries."""
relayer_decoder = msgspec.msgpack.Decoder(Notices | RelayerStatus)

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
        self.handled = durable.store.get_meta_list(HANDLED_KEY)
        """Seqs (as text) of the failed trades acted on, oldest first."""
        self._handled = set(self.handled)
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
            notices = message.notices
            done = []
            for notice in notices:
                if str(notice.seq) not in self._handled and not self._act(notice):
                    break  # the store cannot commit: the relayer sends it again
                done.append(notice.seq)
            if done:
                acknowledged = settlement_encoder.encode(Acknowledged(done))
                self.socket.send_multipart([identity, acknowledged], zmq.NOBLOCK)  # type: ignore[union-attr]

    def _act(self, notice: TradeNotice) -> bool:
        """Cancel, record, report, alert (False: the store could not take the cancels)."""
        owner = notice.owner_at_fault
        cancelled = 0
        try:
            if owner is not None:
                cancelled = cancel_owner_orders(
                    self.durable, self.outbox, self.market_data, owner, notice.market,
                    CancelReason.SETTLEMENT_FAILED,
                )  # fmt: skip
            self._record(notice.seq)
        except (CommitFailed, StoreError) as error:
            if isinstance(error, CommitFailed):
                self.store_guard.failed(error)
            log.error("could not act on the failed trade %d: %s", notice.seq, error)
            return False
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

    def _record(self, seq: int) -> None:
        self.handled.append(str(seq))
        self._handled.add(str(seq))
        if len(self.handled) > HANDLED_KEPT:
            self._handled.discard(self.handled.pop(0))
        self.durable.store.put_meta_list(HANDLED_KEY, self.handled)

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

"""What travels about a trade's settlement on chain: the `settlement` event peers receive in an
execution report (docs/protocol.md §7, §9), and the relayer's link to its node (a trade that
failed to settle, and the node's acknowledgement).

The relayer keeps every failed trade's notice until the node acknowledges it, and sends it
again after a restart of either side; the node acts once per trade seq (node/server/
settlement_link.py), so a notice heard twice is only acknowledged again. The same holds for an
owner's raised minimum nonce (the contract's `MinNonceRaised`, once under the confirmations):
the node acts once per owner and minimum.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

SETTLEMENT_FAILED_KIND = "settlement_failed"
"""The `kind` (and `detector`) of the alert the node publishes for a failed trade."""


class SettlementEvent(msgspec.Struct, tag="settlement", tag_field="event"):
    """A trade's settlement state, reported to the peers that placed its two orders: the trade
    itself was reported at once (optimistic), this says later what became of it on chain."""

    seq: int
    """The trade's `seq` (its `trade` event's, and its id on chain)."""
    market: str
    state: str
    """`failed` (the only state reported today)."""
    reason: str | None
    """The contract's skip reason (`buyer_transfer_failed`, `nonce_below_minimum`, ...), or
    why the batch failed as a whole."""
    tx_hash: str | None
    """The settlement transaction, when the trade was sent."""
    block: int | None
    at_fault: str | None
    """`buy` or `sell`: whose order or assets made it fail (nil: neither, or not known)."""
    owner: str | None
    """The owner at fault, whose resting orders in `market` the node cancelled."""
    cancelled: int
    """How many resting orders of `owner` the node cancelled (reason `settlement_failed`)."""


class TradeNotice(msgspec.Struct, array_like=True):
    """A trade that failed to settle, as the relayer tells its node."""

    seq: int
    market: str
    state: str
    reason: str | None
    tx_hash: str | None
    block: int | None
    buyer: str
    seller: str
    at_fault: str | None
    buyer_peer: str | None
    seller_peer: str | None
    """The peers that placed the buy and the sell order (from the journal)."""

    @property
    def owner_at_fault(self) -> str | None:
        """The address at fault as the node's orders carry it (lowercase)."""
        owner = {"buy": self.buyer, "sell": self.seller}.get(self.at_fault or "")
        return owner.lower() if owner else None


class Notices(msgspec.Struct, tag="notices", tag_field="kind"):
    """relayer -> node: failed trades not yet acknowledged."""

    notices: list[TradeNotice]


class Acknowledged(msgspec.Struct, tag="ack", tag_field="kind"):
    """node -> relayer: trades the node has acted on (and recorded that it did)."""

    seqs: list[int]


class MinNonceNotice(msgspec.Struct, array_like=True):
    """An owner's minimum nonce raised on the settlement contract, as the relayer tells its
    node."""

    owner: str
    """The owner's address, lowercase (as the node's orders carry it)."""
    min_nonce: Annotated[str, msgspec.Meta(pattern="^[0-9]{1,78}$")]
    """Decimal text: nonces go up to 2**256, past msgpack's integers."""
    block: int
    """The block of its `MinNonceRaised` log."""

    @property
    def key(self) -> str:
        """What the node records as acted on, and the relayer's acknowledgement names."""
        return f"{self.owner}:{self.min_nonce}"


class MinNonceNotices(msgspec.Struct, tag="min_nonces", tag_field="kind"):
    """relayer -> node: raised minimum nonces not yet acknowledged."""

    notices: list[MinNonceNotice]


class MinNoncesAcknowledged(msgspec.Struct, tag="min_nonces_ack", tag_field="kind"):
    """node -> relayer: the `key`s of the raised minimums the node has journaled (and
    recorded that it did)."""

    keys: list[str]


settlement_encoder = msgspec.msgpack.Encoder()
notices_decoder = msgspec.msgpack.Decoder(Notices)
acknowledged_decoder = msgspec.msgpack.Decoder(Acknowledged | MinNoncesAcknowledged)

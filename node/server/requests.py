"""The order socket's requests that the engine does not see: `ping`, `snapshot`,
`open_orders`, `markets` and `whoami` (docs/protocol.md §4).

Each is answered after the commit of the batch it came in, from the node's view (so a snapshot
shows the book at the end of that batch), in its place among the connection's answers. None of
them takes rate-limit tokens today; every request will (issue 12).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.decimals import format_scaled, parse_decimal
from ..core.reasons import Reason
from ..home.peers import Peer
from ..protocol.messages import (
    PROTOCOL_VERSION,
    ErrorReply,
    MarketRules,
    MarketsReply,
    MarketsRequest,
    OpenOrder,
    OpenOrdersReply,
    OpenOrdersRequest,
    OtherRequest,
    PeerLimits,
    Ping,
    Pong,
    SnapshotReply,
    SnapshotRequest,
    WhoamiReply,
)
from .marketdata import book_levels
from .view import NodeView


class PeerRequests:
    """Builds the answers to a peer's non-submit requests from a `NodeView`."""

    def __init__(self, view: NodeView) -> None:
        self.view = view

    def answer_of(self, request: OtherRequest, peer: Peer | None, name: str) -> Callable[[], Any]:
        """What builds the answer to `request` once its batch is committed."""
        kind = type(request)
        ref = request.ref
        if kind is Ping:
            return lambda: Pong(PROTOCOL_VERSION, ref)
        if kind is SnapshotRequest:
            return lambda: self.snapshot(request.market, ref)
        if kind is OpenOrdersRequest:
            return lambda: self.open_orders(peer, request.owner, ref)
        if kind is MarketsRequest:
            return lambda: self.markets(peer, ref)
        return lambda: self.whoami(peer, name, ref)

    def snapshot(self, market: str, ref: Any) -> SnapshotReply | ErrorReply:
        book = self.view.books.get(market)
        if book is None:
            detail = f"no market {market!r}"
            return ErrorReply(PROTOCOL_VERSION, Reason.UNKNOWN_MARKET, detail, ref)
        bids, asks = book_levels(book)
        seq = self.view.md_seq(market)
        return SnapshotReply(PROTOCOL_VERSION, market, seq, bids, asks, ref, self.view.run)

    def open_orders(
        self, peer: Peer | None, owner: str | None, ref: Any
    ) -> OpenOrdersReply | ErrorReply:
        if peer is not None and owner is not None and not peer.may_act_for(owner):
            detail = f"not registered for {owner!r}"
            return ErrorReply(PROTOCOL_VERSION, Reason.NOT_AUTHORIZED, detail, ref)
        books = self.view.books
        orders = []
        for order in self.view.resting_orders():
            if owner is not None and order.owner != owner:
                continue
            if owner is None and peer is not None and not peer.may_act_for(order.owner):
                continue
            market = books[order.market].market
            orders.append(
                OpenOrder(
                    order.market,
                    order.id,
                    order.owner,
                    "buy" if order.is_buy else "sell",
                    market.tick.text_of(order.price),
                    market.lot.text_of(order.remaining),
                )
            )
        return OpenOrdersReply(PROTOCOL_VERSION, orders, ref)

    def markets(self, peer: Peer | None, ref: Any) -> MarketsReply:
        """Every market's rules, in the configured order, and the limits that apply to the
        peer (no rate limit with CURVE off)."""
        halted = self.view.halted
        settlement = self.view.config.settlement
        contract = settlement.contract.lower() or None
        chain_id = settlement.chain_id if contract else None
        rules = []
        for symbol, book in self.view.books.items():
            market = book.market
            spec = market.spec
            lot = market.lot.text_of
            rules.append(
                MarketRules(
                    symbol,
                    spec.base,
                    spec.quote,
                    market.tick.text_of(1),
                    lot(1),
                    lot(market.min_lots),
                    lot(market.max_lots) if spec.max_qty else None,
                    _canonical(spec.max_notional),
                    spec.stp,
                    symbol in halted,
                    spec.signatures,
                    chain_id,
                    contract,
                    spec.base_token and spec.base_token.lower(),
                    spec.base_token_id,
                    spec.quote_token and spec.quote_token.lower(),
                    spec.lot_units,
                    spec.tick_units,
                    int(spec.fee_bps),
                )
            )
        limits = self.view.limits
        rated = peer is not None
        peer_limits = PeerLimits(
            limits.peer_rate_per_s if rated else None,
            limits.peer_burst if rated else None,
            limits.max_open_orders_per_owner,
            limits.max_commands_per_message,
            limits.max_message_bytes,
        )
        return MarketsReply(PROTOCOL_VERSION, rules, peer_limits, ref)

    def whoami(self, peer: Peer | None, name: str, ref: Any) -> WhoamiReply:
        """The peer the node takes this connection for (CURVE off: an anonymous peer that may
        act for any owner)."""
        if peer is None:
            return WhoamiReply(PROTOCOL_VERSION, False, name, False, [], True, False, False, ref)
        return WhoamiReply(
            PROTOCOL_VERSION,
            True,
            peer.name,
            bool(peer.name),
            list(peer.owners),
            peer.relayer,
            peer.disabled,
            peer.cancel_on_disconnect,
            ref,
        )


def _canonical(text: str | None) -> str | None:
    """An operator's decimal as the node sends decimals ("100.50" -> "100.5"); None as is."""
    if text is None:
        return None
    mantissa, exponent = parse_decimal(text)  # type: ignore[misc]  # checked at start-up
    return format_scaled(mantissa, exponent)

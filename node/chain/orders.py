"""The signed `Order` a `new` command stands for: one construction for the node, which checks
the owner's signature over it on arrival, and the relayer, which brings the same struct to the
settlement contract from the journal. Both must build it alike, or the contract would see a
different order from the one the node checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.commands import NewOrder
from ..core.markets import Market
from .eip712 import BUY, SELL, Order, address_from_text


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """A market's settlement settings as an order's encoding needs them (addresses parsed
    once per market, not once per order)."""

    base: bytes
    base_token_id: int
    quote: bytes
    lot_units: int
    tick_units: int


def chain_settings(market: Market) -> ChainSettings | None:
    """None for a market that takes no signed orders."""
    spec = market.spec
    if spec.signatures == "off":
        return None
    return ChainSettings(
        address_from_text(spec.base_token),
        int(spec.base_token_id),
        address_from_text(spec.quote_token),
        int(spec.lot_units),
        int(spec.tick_units),
    )


def signed_order(
    command: NewOrder, settings: ChainSettings, owner: bytes, ticks: int, lots: int
) -> Order:
    """The order its owner signed: the command's side, nonce, expiry and fee, its price and
    quantity as `ticks` and `lots` of the market, and the market's `settings`."""
    return Order(
        owner, settings.base, settings.base_token_id, settings.quote,
        BUY if command.side == "buy" else SELL, ticks, lots, settings.lot_units,
        settings.tick_units, int(command.nonce), command.expiry, command.max_fee_bps,
    )  # fmt: skip

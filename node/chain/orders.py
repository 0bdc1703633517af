"""The signed `Order` a `new` command stands for: one construction for the node, which checks
the owner's signature over it on arrival, and the relayer, which brings the same struct to the
settlement contract from the journal. Both must build it alike, or the contract would see a
different order from the one the node checked. Load generators and benchmarks sign with
the same construction (`sign_command`), for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from coincurve import PrivateKey

from ..core.commands import NewOrder
from ..core.markets import Market
from ..core.validation import units_of
from .eip712 import BUY, SELL, Domain, Order, address_from_text, order_digest
from .keccak import keccak256


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


@dataclass(frozen=True, slots=True)
class Wallet:
    """A key that signs orders, and its address (20 bytes)."""

    key: PrivateKey
    address: bytes

    @property
    def text(self) -> str:
        """The address as the wire carries an owner: `0x` and 40 lowercase hex digits."""
        return "0x" + self.address.hex()


def wallet_of(key: PrivateKey) -> Wallet:
    """`key` and its address: the last 20 bytes of the keccak of its public point."""
    return Wallet(key, keccak256(key.public_key.format(compressed=False)[1:])[12:])


DEV_WALLET_LABEL = "marketnode dev wallet"


def dev_wallets(count: int) -> list[Wallet]:
    """The first `count` dev wallets, their keys derived from a public label and an index:
    the same on every machine, so `mnode chain fund-dev-wallets` funds the wallets that
    `mnode load --signed` signs for. Anyone can derive these keys: test and dev chains only."""
    return [wallet_of(PrivateKey(keccak256(f"{DEV_WALLET_LABEL} {index}".encode())))
            for index in range(count)]  # fmt: skip


def sign_command(command: NewOrder, settings: ChainSettings, domain: Domain, wallet: Wallet,
                 market: Market) -> NewOrder:  # fmt: skip
    """`command` (a limit order of `wallet`'s, with its nonce, expiry and fee set) with its
    owner's signature: the digest of the very `Order` the node will rebuild from it, signed
    with coincurve (low s, as libsecp256k1 always signs) as r || s || v, v in {27, 28}."""
    ticks, lots = units_of(market.tick, command.price), units_of(market.lot, command.qty)
    order = signed_order(command, settings, wallet.address, ticks, lots)
    signature = wallet.key.sign_recoverable(order_digest(domain, order), hasher=None)
    return msgspec.structs.replace(
        command, sig="0x" + signature[:64].hex() + bytes((27 + signature[64],)).hex()
    )

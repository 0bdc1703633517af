"""The EIP-712 typed data of a signed order and a signed cancel, and their hashes.

The node and the settlement contract must compute the same 32-byte digest for an order, and
any wallet that signs EIP-712 must produce it too, so the types below are fixed (field order
and types are part of the digest). docs/signing.md states them with a worked example; the
tests check every digest against eth-account's `encode_typed_data`.

The hashes are computed here directly (keccak-256, keccak.py, over the ABI-style encoding, one
call per struct) rather than through eth-account, which is about ten times slower: signature checks
must keep up with the order flow. Every value of the encoding is a 32-byte word: an address is
left-padded with zeros, an unsigned integer is big-endian, a `string` is replaced by the
keccak of its UTF-8 bytes and a `bytes32` is itself.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from .keccak import keccak256

DOMAIN_NAME = "marketnode"
DOMAIN_VERSION = "1"

DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
ORDER_TYPE = (
    "Order(address owner,address base,uint256 baseTokenId,address quote,uint8 side,"
    "uint64 price,uint64 quantity,uint256 lotUnits,uint256 tickUnits,uint256 nonce,"
    "uint64 expiry,uint16 maxFeeBps)"
)
CANCEL_TYPE = "Cancel(address owner,bytes32 orderHash)"

BUY = 0
SELL = 1

ADDRESS_BYTES = 20
_PAD = bytes(12)
"""An address is a 32-byte word: twelve zero bytes, then its twenty."""


DOMAIN_TYPEHASH = keccak256(DOMAIN_TYPE.encode())
ORDER_TYPEHASH = keccak256(ORDER_TYPE.encode())
CANCEL_TYPEHASH = keccak256(CANCEL_TYPE.encode())


class Domain(NamedTuple):
    """Where a signature is valid: one chain and one settlement contract (name and version
    are fixed), so an order signed for a test chain or an old contract is void here."""

    chain_id: int
    verifying_contract: bytes


class Order(NamedTuple):
    """An order as its owner signs it, in the contract's units. A tuple, so batches of them
    cross to the verifier processes cheaply; `order_field_error` checks its ranges.

    Addresses are 20 raw bytes; `price` is in the market's ticks and `quantity` in its lots,
    and `lot_units`/`tick_units` say what a lot and a tick are worth in token units."""

    owner: bytes
    base: bytes
    base_token_id: int
    quote: bytes
    side: int
    price: int
    quantity: int
    lot_units: int
    tick_units: int
    nonce: int
    expiry: int
    max_fee_bps: int


ORDER_FIELD_BITS: dict[str, int] = {
    "base_token_id": 256,
    "side": 8,
    "price": 64,
    "quantity": 64,
    "lot_units": 256,
    "tick_units": 256,
    "nonce": 256,
    "expiry": 64,
    "max_fee_bps": 16,
}
"""The width of each unsigned integer field of `Order`, as its Solidity type says."""
_ADDRESS_FIELDS = ("owner", "base", "quote")


def order_field_error(order: Order) -> str | None:
    """Why `order` cannot be encoded (a field out of its type's range, a side that is not
    0 or 1, an address that is not 20 bytes), or None. Checked before hashing: the
    encoding alone would let an over-wide uint8/uint16/uint64 through as a different word
    than the contract sees."""
    for name in _ADDRESS_FIELDS:
        value = getattr(order, name)
        if not isinstance(value, bytes) or len(value) != ADDRESS_BYTES:
            return f"{name} is not a 20-byte address"
    for name, bits in ORDER_FIELD_BITS.items():
        value = getattr(order, name)
        if type(value) is not int or value < 0 or value >> bits:
            return f"{name} is not a uint{bits}"
    if order.side not in (BUY, SELL):
        return "side is neither 0 (buy) nor 1 (sell)"
    return None


def address_from_text(text: str) -> bytes:
    """`0x` and 40 hex digits (any case; an EIP-55 checksum is not checked) -> 20 bytes."""
    if len(text) != 2 + 2 * ADDRESS_BYTES or text[:2] not in ("0x", "0X"):
        raise ValueError(f"not an address (0x and 40 hex digits): {text!r}")
    return bytes.fromhex(text[2:])


def address_text(address: bytes) -> str:
    """20 bytes -> `0x` and 40 lowercase hex digits."""
    return "0x" + address.hex()


@lru_cache(maxsize=64)
def domain_separator(domain: Domain) -> bytes:
    """hashStruct(EIP712Domain): computed once per domain, it prefixes every digest."""
    return keccak256(
        DOMAIN_TYPEHASH
        + keccak256(DOMAIN_NAME.encode())
        + keccak256(DOMAIN_VERSION.encode())
        + domain.chain_id.to_bytes(32, "big")
        + _PAD
        + domain.verifying_contract
    )


def order_struct_hash(order: Order) -> bytes:
    """hashStruct(Order): keccak of the type hash and the twelve fields, one word each.
    The order must have passed `order_field_error`."""
    (owner, base, token_id, quote, side, price, quantity, lot, tick, nonce, expiry, fee) = order
    return keccak256(
        b"".join(
            (
                ORDER_TYPEHASH,
                _PAD, owner,
                _PAD, base,
                token_id.to_bytes(32, "big"),
                _PAD, quote,
                side.to_bytes(32, "big"),
                price.to_bytes(32, "big"),
                quantity.to_bytes(32, "big"),
                lot.to_bytes(32, "big"),
                tick.to_bytes(32, "big"),
                nonce.to_bytes(32, "big"),
                expiry.to_bytes(32, "big"),
                fee.to_bytes(32, "big"),
            )
        )
    )  # fmt: skip


def cancel_struct_hash(owner: bytes, order_hash: bytes) -> bytes:
    """hashStruct(Cancel): the owner and the cancelled order's digest (`order_digest`)."""
    if len(owner) != ADDRESS_BYTES or len(order_hash) != 32:
        raise ValueError("a cancel needs a 20-byte owner and a 32-byte order hash")
    return keccak256(CANCEL_TYPEHASH + _PAD + owner + order_hash)


def typed_digest(domain: Domain, struct_hash: bytes) -> bytes:
    """The 32 bytes a wallet signs: keccak(0x19 0x01 || domainSeparator || hashStruct)."""
    return keccak256(b"\x19\x01" + domain_separator(domain) + struct_hash)


def order_digest(domain: Domain, order: Order) -> bytes:
    """The order's digest, which is also its order hash (what a `Cancel` names, what the
    journal and the contract's filled amounts are keyed by)."""
    return typed_digest(domain, order_struct_hash(order))


def cancel_digest(domain: Domain, owner: bytes, order_hash: bytes) -> bytes:
    """The digest of a signed cancel of the order whose digest is `order_hash`."""
    return typed_digest(domain, cancel_struct_hash(owner, order_hash))

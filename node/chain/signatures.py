"""The checks of a signed order and a signed cancel, each failure with its reason.

A signature is 65 bytes, r || s || v with v 27 or 28, over the EIP-712 digest (eip712.py).
The signer is recovered from it (coincurve, on the digest as given: `hasher=None`), and the
signer's address is the last 20 bytes of the keccak of its uncompressed public key without the
0x04 prefix. Only low-s signatures are taken (s <= n/2, EIP-2): for every signature (r, s) the
pair (r, n - s) is valid too, and taking both would give one order two encodings.

The chain: a signed order states the chain id its signer chose (`chain_id` on the wire), and
the node compares it with its own before any curve arithmetic: a different one is
`wrong_chain` (a wallet on the wrong network, the commonest mistake, is named as such). A
stated chain id that is not the one really signed, or a signature made for another settlement
contract, recovers to some other address: `bad_signature`.

No clock here: `now` is an argument, so the same inputs give the same verdict (the worker
processes, the node's loop and a replay agree). The used nonces are the engine's state; the
nonce check takes them as arguments.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import NamedTuple

from ..core.reasons import Reason
from .eip712 import (
    ADDRESS_BYTES,
    Domain,
    Order,
    cancel_digest,
    keccak256,
    order_digest,
    order_field_error,
)
from .secp256k1 import recover_point

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order of secp256k1's group: r and s are in 1..n-1."""
HALF_N = SECP256K1_N // 2
"""The largest s taken (EIP-2's low-s rule)."""
SIGNATURE_BYTES = 65


class SignedOrder(NamedTuple):
    """An order, its signature and the chain id its sender states (the wire's `chain_id`)."""

    order: Order
    signature: bytes
    chain_id: int


class SignedCancel(NamedTuple):
    """A signed cancel: the owner, the digest of the order it cancels, the signature."""

    owner: bytes
    order_hash: bytes
    signature: bytes


class Verdict(NamedTuple):
    """A signed order's check: its order hash (None when its fields cannot be encoded) and
    the reason it is refused, or None when it is good."""

    order_hash: bytes | None
    reason: Reason | None


_ADDRESSES: dict[bytes, bytes] = {}
"""Public key (64 bytes) -> address: an owner signs many orders, and this saves one keccak of
each. Emptied when it reaches _ADDRESSES_KEPT keys, so its size stays bounded."""
_ADDRESSES_KEPT = 1 << 16


def signature_error(signature: bytes) -> str | None:
    """Why `signature` is not a well-formed low-s signature (no curve arithmetic), or None."""
    if type(signature) is not bytes or len(signature) != SIGNATURE_BYTES:
        return "a signature is 65 bytes: r, s, v"
    if signature[64] not in (27, 28):
        return "v is neither 27 nor 28"
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < SECP256K1_N:
        return "r is not in 1..n-1"
    if not 0 < s <= HALF_N:
        return "s is not in 1..n/2 (high-s signatures are refused, EIP-2)"
    return None


def recover_signer(digest: bytes, signature: bytes) -> bytes | None:
    """The address that made `signature` over `digest`, or None when the signature is
    malformed, high-s, or recovers no key."""
    if signature_error(signature) is not None:
        return None
    point = recover_point(digest, signature[:64], signature[64] - 27)
    if point is None:
        return None
    address = _ADDRESSES.get(point)
    if address is None:
        if len(_ADDRESSES) >= _ADDRESSES_KEPT:
            _ADDRESSES.clear()
        address = _ADDRESSES[point] = keccak256(point)[12:]
    return address


def check_order(
    domain: Domain, order: Order, signature: bytes, stated_chain_id: int, now: int
) -> Verdict:
    """A signed order's stateless checks, cheapest first: `malformed` (a field out of its
    type's range), `wrong_chain`, `expired` (expiry <= now: 0 is always expired),
    `bad_signature` (malformed, high-s, or signed by someone other than `order.owner`).
    The order hash is given whenever the fields can be encoded, for the journal."""
    if order_field_error(order) is not None:
        return Verdict(None, Reason.MALFORMED)
    if stated_chain_id != domain.chain_id:
        return Verdict(None, Reason.WRONG_CHAIN)
    order_hash = order_digest(domain, order)
    if order.expiry <= now:
        return Verdict(order_hash, Reason.EXPIRED)
    if recover_signer(order_hash, signature) != order.owner:
        return Verdict(order_hash, Reason.BAD_SIGNATURE)
    return Verdict(order_hash, None)


def check_signed(domain: Domain, item: SignedOrder | SignedCancel, now: int) -> Verdict:
    """The stateless checks of one item of a verifier batch, an order or a cancel."""
    if isinstance(item, SignedOrder):
        return check_order(domain, item.order, item.signature, item.chain_id, now)
    reason = check_cancel(domain, item.owner, item.order_hash, item.signature)
    return Verdict(item.order_hash, reason)


def check_nonce(
    owner: bytes, nonce: int, used: Mapping[bytes, Container[int]], floors: Mapping[bytes, int]
) -> Reason | None:
    """`nonce_used` when the owner already used `nonce` or raised its minimum nonce above
    it (a bulk cancel), else None. Run by the engine, which keeps `used` and `floors`."""
    if nonce < floors.get(owner, 0) or nonce in used.get(owner, ()):
        return Reason.NONCE_USED
    return None


def check_cancel(
    domain: Domain, owner: bytes, order_hash: bytes, signature: bytes
) -> Reason | None:
    """A signed cancel of the order whose hash is `order_hash`: `malformed` when the owner is
    not 20 bytes or the hash not 32, `bad_signature` unless `owner` signed it (the node checks
    separately that `owner` owns that order)."""
    if type(owner) is not bytes or len(owner) != ADDRESS_BYTES:
        return Reason.MALFORMED
    if type(order_hash) is not bytes or len(order_hash) != 32:
        return Reason.MALFORMED
    if recover_signer(cancel_digest(domain, owner, order_hash), signature) != owner:
        return Reason.BAD_SIGNATURE
    return None

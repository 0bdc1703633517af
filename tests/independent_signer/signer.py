"""An independent EIP-712 signer for marketnode orders and cancels, from docs/signing.md alone.

Pure Python: Keccak-256 from pycryptodome, secp256k1 from coincurve. Nothing of marketnode and no
eth-account is used, so the signatures it makes check the specification, not the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import coincurve
from Crypto.Hash import keccak

# §1: the type strings, exact.
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
ORDER_TYPE = (
    "Order(address owner,address base,uint256 baseTokenId,address quote,uint8 side,"
    "uint64 price,uint64 quantity,uint256 lotUnits,uint256 tickUnits,uint256 nonce,"
    "uint64 expiry,uint16 maxFeeBps)"
)
CANCEL_TYPE = "Cancel(address owner,bytes32 orderHash)"

DOMAIN_NAME = "marketnode"
DOMAIN_VERSION = "1"

BUY = 0
SELL = 1

# §4: the group order and its half (the low-s bound).
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = N // 2

# The order's fields in the order of ORDER_TYPE, with their bit widths.
ORDER_FIELDS: tuple[tuple[str, str], ...] = (
    ("owner", "address"),
    ("base", "address"),
    ("baseTokenId", "uint256"),
    ("quote", "address"),
    ("side", "uint8"),
    ("price", "uint64"),
    ("quantity", "uint64"),
    ("lotUnits", "uint256"),
    ("tickUnits", "uint256"),
    ("nonce", "uint256"),
    ("expiry", "uint64"),
    ("maxFeeBps", "uint16"),
)


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (original padding, not NIST SHA3-256)."""
    return keccak.new(digest_bits=256, data=data).digest()


DOMAIN_TYPEHASH = keccak256(DOMAIN_TYPE.encode("ascii"))
ORDER_TYPEHASH = keccak256(ORDER_TYPE.encode("ascii"))
CANCEL_TYPEHASH = keccak256(CANCEL_TYPE.encode("ascii"))


# §2: one 32-byte word per field.
def address_bytes(address: str | bytes) -> bytes:
    """20 bytes of an address given as 0x-hex (any case) or as bytes."""
    if isinstance(address, bytes):
        if len(address) != 20:
            raise ValueError("an address is 20 bytes")
        return address
    text = address[2:] if address[:2] in ("0x", "0X") else address
    if len(text) != 40:
        raise ValueError(f"not an address: {address!r}")
    return bytes.fromhex(text)


def word_uint(value: int, bits: int = 256) -> bytes:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{value} is outside uint{bits}")
    return value.to_bytes(32, "big")


def word_address(address: str | bytes) -> bytes:
    return bytes(12) + address_bytes(address)


def word_string(text: str) -> bytes:
    return keccak256(text.encode("utf-8"))


def word_bytes32(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError("bytes32 is 32 bytes")
    return value


def word(kind: str, value) -> bytes:
    if kind == "address":
        return word_address(value)
    if kind.startswith("uint"):
        return word_uint(value, int(kind[4:]))
    if kind == "bytes32":
        return word_bytes32(value)
    if kind == "string":
        return word_string(value)
    raise ValueError(f"unknown type {kind}")


@dataclass(frozen=True)
class Order:
    """The signed fields of §1, named as in the type string."""

    owner: str
    base: str
    baseTokenId: int  # the EIP-712 field names, camelCase
    quote: str
    side: int
    price: int
    quantity: int
    lotUnits: int
    tickUnits: int
    nonce: int
    expiry: int
    maxFeeBps: int

    def words(self) -> list[bytes]:
        return [word(kind, getattr(self, name)) for name, kind in ORDER_FIELDS]


# §3: the digest.
def domain_separator(chain_id: int, verifying_contract: str | bytes) -> bytes:
    return keccak256(
        DOMAIN_TYPEHASH
        + word_string(DOMAIN_NAME)
        + word_string(DOMAIN_VERSION)
        + word_uint(chain_id)
        + word_address(verifying_contract)
    )


def order_struct_hash(order: Order) -> bytes:
    return keccak256(ORDER_TYPEHASH + b"".join(order.words()))


def cancel_struct_hash(owner: str | bytes, order_hash: bytes) -> bytes:
    return keccak256(CANCEL_TYPEHASH + word_address(owner) + word_bytes32(order_hash))


def typed_digest(separator: bytes, struct_hash: bytes) -> bytes:
    return keccak256(b"\x19\x01" + separator + struct_hash)


def order_digest(chain_id: int, verifying_contract: str | bytes, order: Order) -> bytes:
    """The digest the owner signs, which is also the order hash."""
    return typed_digest(domain_separator(chain_id, verifying_contract), order_struct_hash(order))


def cancel_digest(
    chain_id: int, verifying_contract: str | bytes, owner: str | bytes, order_hash: bytes
) -> bytes:
    return typed_digest(
        domain_separator(chain_id, verifying_contract), cancel_struct_hash(owner, order_hash)
    )


# §4: the signature.
def public_key(private_key: bytes) -> bytes:
    """64 bytes X ‖ Y (uncompressed, without the 0x04)."""
    return coincurve.PrivateKey(private_key).public_key.format(compressed=False)[1:]


def address_of(private_key: bytes) -> str:
    return "0x" + keccak256(public_key(private_key))[-20:].hex()


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """65 bytes r ‖ s ‖ v of the digest itself (not hashed again), low-s, v 27 or 28."""
    if len(digest) != 32:
        raise ValueError("a digest is 32 bytes")
    raw = coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:64], "big")
    recovery_id = raw[64]
    if s > HALF_N:  # libsecp256k1 already gives low-s; kept for any other library
        s = N - s
        recovery_id ^= 1
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + recovery_id])


def split_signature(signature: bytes) -> tuple[int, int, int]:
    return (
        int.from_bytes(signature[:32], "big"),
        int.from_bytes(signature[32:64], "big"),
        signature[64],
    )


def join_signature(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def sign_order(
    private_key: bytes, chain_id: int, verifying_contract: str | bytes, order: Order
) -> tuple[bytes, bytes]:
    """(digest, signature) of an order."""
    digest = order_digest(chain_id, verifying_contract, order)
    return digest, sign_digest(private_key, digest)


def sign_cancel(
    private_key: bytes, chain_id: int, verifying_contract: str | bytes, order_hash: bytes
) -> tuple[bytes, bytes]:
    """(cancel digest, signature) of a cancel of the order whose digest is order_hash."""
    digest = cancel_digest(chain_id, verifying_contract, address_of(private_key), order_hash)
    return digest, sign_digest(private_key, digest)


# §6: on the wire.
def whole(amount: str, unit: str, what: str) -> int:
    """amount ÷ unit as a whole number (a price in ticks, a quantity in lots)."""
    ratio = Decimal(amount) / Decimal(unit)
    if ratio != ratio.to_integral_value():
        raise ValueError(f"{what} {amount} is not a whole number of {unit}")
    return int(ratio)


class Signer:
    """Signs orders and cancels for one wallet on one market, given the market's settings.

    ``market`` is a market's entry of the node's ``markets`` answer with the proposed keys of
    signing.md §6: ``tick``, ``lot``, ``chain_id``, ``contract``, ``base_token``,
    ``base_token_id``, ``quote_token``, ``lot_units``, ``tick_units``.
    """

    def __init__(self, private_key: bytes, market_name: str, market: dict) -> None:
        self.private_key = private_key
        self.owner = address_of(private_key)
        self.market_name = market_name
        self.market = market
        self.chain_id = int(market["chain_id"])
        self.contract = market["contract"]

    def order(
        self, side: str, price: str, qty: str, nonce: int, expiry: int, max_fee_bps: int
    ) -> Order:
        if side not in ("buy", "sell"):
            raise ValueError(f"side {side!r}")
        return Order(
            owner=self.owner,
            base=self.market["base_token"],
            baseTokenId=int(self.market.get("base_token_id", 0)),
            quote=self.market["quote_token"],
            side=BUY if side == "buy" else SELL,
            price=whole(price, str(self.market["tick"]), "price"),
            quantity=whole(qty, str(self.market["lot"]), "qty"),
            lotUnits=int(self.market["lot_units"]),
            tickUnits=int(self.market["tick_units"]),
            nonce=nonce,
            expiry=expiry,
            maxFeeBps=max_fee_bps,
        )

    def new(
        self,
        order_id: str,
        side: str,
        price: str,
        qty: str,
        nonce: int,
        expiry: int,
        max_fee_bps: int,
    ) -> tuple[dict, bytes]:
        """(the `new` command, the order hash) of a signed limit order."""
        order = self.order(side, price, qty, nonce, expiry, max_fee_bps)
        digest, signature = sign_order(self.private_key, self.chain_id, self.contract, order)
        command = {
            "op": "new",
            "market": self.market_name,
            "id": order_id,
            "owner": self.owner,
            "side": side,
            "price": price,
            "qty": qty,
            "chain_id": self.chain_id,
            "nonce": nonce if nonce < 1 << 64 else str(nonce),
            "expiry": expiry,
            "max_fee_bps": max_fee_bps,
            "sig": "0x" + signature.hex(),
        }
        return command, digest

    def cancel(self, order_id: str, order_hash: bytes) -> dict:
        """A signed `cancel` of the order with this id and digest.

        signing.md says only that a cancel "may carry `sig`"; the other keys (`op`, `market`,
        `id`) are a guess at protocol.md §5, which this client was not allowed to read.
        """
        _, signature = sign_cancel(self.private_key, self.chain_id, self.contract, order_hash)
        return {
            "op": "cancel",
            "market": self.market_name,
            "id": order_id,
            "sig": "0x" + signature.hex(),
        }

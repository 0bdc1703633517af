"""Signs marketnode orders and cancels as docs/signing.md describes them, and nothing else:
its own Keccak-256 (pycryptodome's public API), its own encoding and digest, coincurve for
the secp256k1 signature, the `new` command map of the page's §6."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from coincurve import PrivateKey
from Crypto.Hash import keccak

DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
ORDER_TYPE = (
    b"Order(address owner,address base,uint256 baseTokenId,address quote,uint8 side,"
    b"uint64 price,uint64 quantity,uint256 lotUnits,uint256 tickUnits,uint256 nonce,"
    b"uint64 expiry,uint16 maxFeeBps)"
)
CANCEL_TYPE = b"Cancel(address owner,bytes32 orderHash)"
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
UINT_BITS = {"baseTokenId": 256, "side": 8, "price": 64, "quantity": 64, "lotUnits": 256,
             "tickUnits": 256, "nonce": 256, "expiry": 64, "maxFeeBps": 16}  # fmt: skip


def keccak256(data: bytes) -> bytes:
    return keccak.new(data=data, digest_bits=256).digest()


def word_uint(value: int, bits: int = 256) -> bytes:
    if not 0 <= value < 2**bits:
        raise ValueError(f"{value} is not a uint{bits}")
    return value.to_bytes(32, "big")


def word_address(address: str) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x").removeprefix("0X"))
    if len(raw) != 20:
        raise ValueError(f"not an address: {address}")
    return bytes(12) + raw


@dataclass(frozen=True)
class Market:
    """What the signer reads from the node's `markets` answer."""

    symbol: str
    tick: str
    lot: str
    chain_id: int
    contract: str
    base_token: str
    base_token_id: int
    quote_token: str
    lot_units: int
    tick_units: int


@dataclass(frozen=True)
class Wallet:
    key: PrivateKey

    @property
    def address(self) -> str:
        point = self.key.public_key.format(compressed=False)[1:]
        return "0x" + keccak256(point)[12:].hex()

    def sign(self, digest: bytes) -> bytes:
        """65 bytes r || s || v, low-s, v 27/28."""
        compact = self.key.sign_recoverable(digest, hasher=None)
        r, s, recovery = compact[:32], int.from_bytes(compact[32:64], "big"), compact[64]
        if s > N // 2:
            s, recovery = N - s, recovery ^ 1
        return r + s.to_bytes(32, "big") + bytes((27 + recovery,))


def domain_separator(chain_id: int, contract: str) -> bytes:
    return keccak256(keccak256(DOMAIN_TYPE) + keccak256(b"marketnode") + keccak256(b"1")
                     + word_uint(chain_id) + word_address(contract))  # fmt: skip


@dataclass(frozen=True)
class SignedOrder:
    """The signed values (EIP-712 names) and the signature."""

    values: dict
    digest: bytes
    signature: bytes


def order_values(market: Market, owner: str, side: str, price: str, qty: str, nonce: int,
                 expiry: int, max_fee_bps: int) -> dict:  # fmt: skip
    """The twelve signed fields: price in ticks, quantity in lots (whole numbers)."""
    ticks = Decimal(price) / Decimal(market.tick)
    lots = Decimal(qty) / Decimal(market.lot)
    if ticks != ticks.to_integral_value() or lots != lots.to_integral_value():
        raise ValueError("price or quantity is not a whole number of ticks or lots")
    return {"owner": owner, "base": market.base_token, "baseTokenId": market.base_token_id,
            "quote": market.quote_token, "side": {"buy": 0, "sell": 1}[side],
            "price": int(ticks), "quantity": int(lots), "lotUnits": market.lot_units,
            "tickUnits": market.tick_units, "nonce": nonce, "expiry": expiry,
            "maxFeeBps": max_fee_bps}  # fmt: skip


def order_struct_hash(values: dict) -> bytes:
    words = [keccak256(ORDER_TYPE), word_address(values["owner"]), word_address(values["base"]),
             word_uint(values["baseTokenId"], 256), word_address(values["quote"])]  # fmt: skip
    for name in ("side", "price", "quantity", "lotUnits", "tickUnits", "nonce", "expiry",
                 "maxFeeBps"):  # fmt: skip
        words.append(word_uint(values[name], UINT_BITS[name]))
    return keccak256(b"".join(words))


def typed_digest(chain_id: int, contract: str, struct_hash: bytes) -> bytes:
    return keccak256(b"\x19\x01" + domain_separator(chain_id, contract) + struct_hash)


def sign_order(wallet: Wallet, market: Market, side: str, price: str, qty: str, nonce: int,
               expiry: int, max_fee_bps: int) -> SignedOrder:  # fmt: skip
    values = order_values(market, wallet.address, side, price, qty, nonce, expiry, max_fee_bps)
    digest = typed_digest(market.chain_id, market.contract, order_struct_hash(values))
    return SignedOrder(values, digest, wallet.sign(digest))


def cancel_digest(market: Market, owner: str, order_hash: bytes) -> bytes:
    struct_hash = keccak256(keccak256(CANCEL_TYPE) + word_address(owner) + order_hash)
    return typed_digest(market.chain_id, market.contract, struct_hash)


def new_command(market: Market, order_id: str, side: str, price: str, qty: str,
                signed: SignedOrder) -> dict:  # fmt: skip
    """The `new` command of docs/signing.md §6."""
    values = signed.values
    return {"op": "new", "market": market.symbol, "id": order_id, "owner": values["owner"],
            "side": side, "price": price, "qty": qty, "chain_id": market.chain_id,
            "nonce": values["nonce"] if values["nonce"] < 2**64 else str(values["nonce"]),
            "expiry": values["expiry"], "max_fee_bps": values["maxFeeBps"],
            "sig": "0x" + signed.signature.hex()}  # fmt: skip

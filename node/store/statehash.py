"""The state hash of the books and the order records it is computed from.

Each resting order is stored as one (key, value) record, and so is each owner's used nonces
(core/nonces.py); the state hash is the sum, modulo 2**64, of a 64-bit BLAKE2b digest of every
record. A sum of per-record digests can be updated per commit from the changed orders and owners
alone and equals the hash computed from scratch over any set of records, so the live store, a
restart and a journal replay all compare the same number.

An unsigned order's value is the six fields it has always had (a store written before signed
orders hashes the same); a signed order's adds its expiry and order hash, then its nonce
(decimal text). The nonce is kept so that a raised minimum nonce finds the orders below it
after a restart, and it is left out of the record's digest: the order hash is the EIP-712
digest of the signed order, nonce included, so it covers the nonce already, and a store
written before orders kept their nonce (eight fields) hashes, verifies and replays to the same
state hashes as before. A nonce record's key is a one-element array (the owner), an order's a
three-element one, so the two never collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from hashlib import blake2b

import msgspec

from ..core.book import Order
from ..core.nonces import NonceBook

HASH_MODULUS = 1 << 64

_encode = msgspec.msgpack.Encoder().encode
_decode_key = msgspec.msgpack.Decoder(tuple[str, str, str | int]).decode
_decode_value = msgspec.msgpack.Decoder(tuple[bool, int, int, int, int, str | None]).decode
_decode_signed_value = msgspec.msgpack.Decoder(
    tuple[bool, int, int, int, int, str | None, int, str]
).decode
_decode_nonced_value = msgspec.msgpack.Decoder(
    tuple[bool, int, int, int, int, str | None, int, str, str]
).decode
NONCED_RECORD = 0x99
"""The first byte of a signed order's record with its nonce: a msgpack array of nine."""
_decode_nonce_key = msgspec.msgpack.Decoder(tuple[str]).decode
_decode_nonce_value = msgspec.msgpack.Decoder(tuple[str, list[str]]).decode


def order_key(order: Order) -> bytes:
    return _encode((order.market, order.owner, order.id))


def order_value(order: Order) -> bytes:
    fields = (order.is_buy, order.price, order.remaining, order.priority, order.stp, order.peer)
    if order.expiry:
        if order.nonce is None:  # restored from a store written before orders kept it
            return _encode((*fields, order.expiry, order.order_hash))
        return _encode((*fields, order.expiry, order.order_hash, str(order.nonce)))
    return _encode(fields)


def hashed_value(value: bytes) -> bytes:
    """The part of an order record its digest covers: all of it but a signed order's nonce
    (see the module's docstring)."""
    if value[0] != NONCED_RECORD:
        return value
    return _encode(_decode_nonced_value(value)[:8])


def order_from_record(key: bytes, value: bytes) -> Order:
    market, owner, order_id = _decode_key(key)
    nonce = None
    if value[0] == NONCED_RECORD:
        *fields, nonce_text = _decode_nonced_value(value)
        nonce = int(nonce_text)
        is_buy, price, remaining, priority, stp, peer, expiry, order_hash = fields
    else:
        try:
            is_buy, price, remaining, priority, stp, peer = _decode_value(value)
            expiry, order_hash = 0, None
        except msgspec.ValidationError:
            decoded = _decode_signed_value(value)
            is_buy, price, remaining, priority, stp, peer, expiry, order_hash = decoded
    return Order(
        market, order_id, owner, is_buy, price, remaining, priority, stp, peer, expiry,
        order_hash, nonce,
    )  # fmt: skip


def nonce_key(owner: str) -> bytes:
    return _encode((owner,))


def nonce_value(floor: int, above: list[int]) -> bytes:
    """Decimal text: nonces go up to 2**256, past msgpack's integers."""
    return _encode((str(floor), [str(nonce) for nonce in above]))


def nonce_writes(nonces: NonceBook, owners: Iterable[str]) -> dict[bytes, bytes]:
    """The nonce records of `owners` as `nonces` holds them now."""
    return {nonce_key(owner): nonce_value(*nonces.state_of(owner)) for owner in owners}


def nonces_from_record(key: bytes, value: bytes) -> tuple[str, int, list[int]]:
    """(owner, floor, used nonces above it) of a nonce record."""
    (owner,) = _decode_nonce_key(key)
    floor, above = _decode_nonce_value(value)
    return owner, int(floor), [int(nonce) for nonce in above]


def record_digest(key: bytes, value: bytes) -> int:
    return int.from_bytes(blake2b(key + hashed_value(value), digest_size=8).digest(), "little")


def hash_records(records: Iterable[tuple[bytes, bytes]]) -> int:
    """The state hash of a complete set of order records, from scratch."""
    return sum(record_digest(key, value) for key, value in records) % HASH_MODULUS


def format_hash(value: int) -> str:
    return f"{value:016x}"


class CommitPlan:
    """The writes one commit makes to the order and nonce records, and the state hash after
    it."""

    __slots__ = ("digests", "nonce_writes", "state_hash", "writes")

    def __init__(
        self,
        writes: dict[bytes, bytes | None],
        digests: dict[bytes, int | None],
        state_hash: int,
        nonce_writes: dict[bytes, bytes] | None = None,
    ) -> None:
        self.writes = writes
        self.digests = digests
        self.state_hash = state_hash
        self.nonce_writes = nonce_writes or {}


class BookHash:
    """The state hash kept up to date commit by commit from the orders the engine changed.

    `compiled`: the compiled core's `plan_records`, which does what `plan` does here in C (the
    same writes, digests and hash: tests/test_engine_cores.py), for an engine of that core."""

    def __init__(
        self, records: Iterable[tuple[bytes, bytes]] = (), compiled: Callable | None = None
    ) -> None:
        self.digests: dict[bytes, int] = {key: record_digest(key, value) for key, value in records}
        self.value = sum(self.digests.values()) % HASH_MODULUS
        self.compiled = compiled

    def plan(
        self, changed: Iterable[Order], nonce_writes: dict[bytes, bytes] | None = None
    ) -> CommitPlan:
        """Record writes for `changed` orders (None deletes) and the changed owners' nonce
        records, without touching this hash yet.

        Dead orders are taken first, so a key freed and reused within one batch ends written.
        """
        if self.compiled is not None:
            writes, digests, value = self.compiled(
                changed, self.digests, self.value, nonce_writes or {}, _encode, order_value,
                hashed_value, NONCED_RECORD,
            )  # fmt: skip
            return CommitPlan(writes, digests, value, nonce_writes)
        writes: dict[bytes, bytes | None] = {}
        live = []
        for order in changed:
            if order.remaining:
                live.append(order)
            else:
                key = order_key(order)
                if key in self.digests:
                    writes[key] = None
        for order in live:
            writes[order_key(order)] = order_value(order)
        value = self.value
        digests: dict[bytes, int | None] = {}
        for key, record in (*writes.items(), *(nonce_writes or {}).items()):
            old = self.digests.get(key)
            if old is not None:
                value -= old
            if record is None:
                digests[key] = None
            else:
                new = digests[key] = record_digest(key, record)
                value += new
        return CommitPlan(writes, digests, value % HASH_MODULUS, nonce_writes)

    def apply(self, plan: CommitPlan) -> None:
        """Make a committed plan this hash's state."""
        for key, digest in plan.digests.items():
            if digest is None:
                self.digests.pop(key, None)
            else:
                self.digests[key] = digest
        self.value = plan.state_hash

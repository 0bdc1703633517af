"""The state hash of the books and the order records it is computed from.

Each resting order is stored as one (key, value) record; the state hash is the sum, modulo 2**64,
of a 64-bit BLAKE2b digest of every record. A sum of per-record digests can be updated per commit
from the changed orders alone and equals the hash computed from scratch over any set of records,
so the live store, a restart and a journal replay all compare the same number.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

import msgspec

from ..core.book import Order

HASH_MODULUS = 1 << 64

_encode = msgspec.msgpack.Encoder().encode
_decode_key = msgspec.msgpack.Decoder(tuple[str, str, str | int]).decode
_decode_value = msgspec.msgpack.Decoder(tuple[bool, int, int, int, int, str | None]).decode


def order_key(order: Order) -> bytes:
    return _encode((order.market, order.owner, order.id))


def order_value(order: Order) -> bytes:
    return _encode(
        (order.is_buy, order.price, order.remaining, order.priority, order.stp, order.peer)
    )


def order_from_record(key: bytes, value: bytes) -> Order:
    market, owner, order_id = _decode_key(key)
    is_buy, price, remaining, priority, stp, peer = _decode_value(value)
    return Order(market, order_id, owner, is_buy, price, remaining, priority, stp, peer)


def record_digest(key: bytes, value: bytes) -> int:
    return int.from_bytes(blake2b(key + value, digest_size=8).digest(), "little")


def hash_records(records: Iterable[tuple[bytes, bytes]]) -> int:
    """The state hash of a complete set of order records, from scratch."""
    return sum(record_digest(key, value) for key, value in records) % HASH_MODULUS


def format_hash(value: int) -> str:
    return f"{value:016x}"


class CommitPlan:
    """The writes one commit makes to the order records, and the state hash after it."""

    __slots__ = ("digests", "state_hash", "writes")

    def __init__(
        self, writes: dict[bytes, bytes | None], digests: dict[bytes, int | None], state_hash: int
    ) -> None:
        self.writes = writes
        self.digests = digests
        self.state_hash = state_hash


class BookHash:
    """The state hash kept up to date commit by commit from the orders the engine changed."""

    def __init__(self, records: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self.digests: dict[bytes, int] = {key: record_digest(key, value) for key, value in records}
        self.value = sum(self.digests.values()) % HASH_MODULUS

    def plan(self, changed: Iterable[Order]) -> CommitPlan:
        """Record writes for `changed` orders (None deletes) without touching this hash yet.

        Dead orders are taken first, so a key freed and reused within one batch ends written.
        """
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
        for key, record in writes.items():
            old = self.digests.get(key)
            if old is not None:
                value -= old
            if record is None:
                digests[key] = None
            else:
                new = digests[key] = record_digest(key, record)
                value += new
        return CommitPlan(writes, digests, value % HASH_MODULUS)

    def apply(self, plan: CommitPlan) -> None:
        """Make a committed plan this hash's state."""
        for key, digest in plan.digests.items():
            if digest is None:
                self.digests.pop(key, None)
            else:
                self.digests[key] = digest
        self.value = plan.state_hash

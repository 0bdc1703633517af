"""Signed orders on their way in: checked in the verifier pool, off the matching thread, while
their connection's messages wait in order.

A submit carrying a signed command is held, with every later message of the same connection,
until the pool's verdicts on it arrive; other connections go on. Held messages leave in
arrival order (`release`), each applied by the loop before the next is looked at, so a signed
cancel is matched against the book as its earlier messages left it: a cancel names an order by
(owner, id), and its signature covers that order's digest, which is known only once the order
rests (or from a verdict of the same message). Orders are checked as they arrive (a
connection's submits side by side); cancels when their message reaches the front.

The signed commands held in one turn of the loop go to the pool together, in batches of up to
MAX_BATCH_ITEMS whatever messages they came in: one batch per message cost a pool round trip,
a wakeup of the loop and a commit of its own for each message, and one order a message ran at
about 200 orders/s against 1,100 to 1,600 at 100 a message (docs/performance.md).

What the pool answers per command (`Verdict`): the order hash and a reason or None. A reason
is answered before the engine (`seq` nil), except `expired`: the order goes to the engine with
its hash and the engine refuses it by its journaled clock, which never goes back, so the answer
is the same on a replay. A batch the workers kept dying on is answered `bad_signature` ("could
not be checked").
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..chain.eip712 import Domain, address_from_text, address_text
from ..chain.orders import chain_settings, signed_order
from ..chain.signatures import SignedCancel, SignedOrder
from ..chain.verifier import VerifierPool
from ..core.book import OrderBook
from ..core.commands import CancelOrder, NewOrder
from ..core.events import Rejected
from ..core.reasons import Reason
from ..core.validation import units_of
from ..home.config import SettlementConfig
from ..protocol.messages import PROTOCOL_VERSION, ErrorReply
from .answers import Pending

MAX_BATCH_ITEMS = 128
"""Signed commands per pool batch: enough that a batch's own cost (a pickle, two messages, a
wakeup) is under 1% of its checks, few enough that several workers share a loop's turn."""
MAX_HELD_PER_CONNECTION = 4096
"""Messages of one connection waiting behind a signature check; past it, a message is
answered `throttled` (in its place: answers keep their order)."""
UINT64_LIMIT = 1 << 64
NONCE_LIMIT = 1 << 256
UNCHECKED = "the signature could not be checked"
HELD_FULL = f"more than {MAX_HELD_PER_CONNECTION} messages wait on signature checks"


class Check(NamedTuple):
    """A signed command's check: the digest (`0x` and 64 hex digits) when known, and the
    reason it is refused (None: go on) with what is wrong."""

    order_hash: str | None
    reason: Reason | None
    detail: str | None = None


@dataclass(slots=True)
class Held:
    """A message waiting for its signatures, or behind one that is."""

    pending: Pending
    commands: list | None = None
    """A submit's commands, decoded (a malformed one as its reject); None for other requests."""
    refused: Reason | None = None
    allowed: int = 0
    """The message-level admission, made on arrival (as for any message)."""
    verdicts: dict[int, Check] = field(default_factory=dict)
    """Per command index: the pool's verdict, or the intake's own reject."""
    waiting: int = 0
    """Its signed commands not checked yet (about to go to the pool, or in it)."""
    cancels: list[int] = field(default_factory=list)
    """Signed cancels still to be resolved and checked, at the front of the queue."""


def signed_commands(commands: list) -> bool:
    """Does a submit carry a signed command (a malformed one, a Rejected, carries none)?"""
    return any(getattr(command, "sig", None) is not None for command in commands)


class SignedIntake:
    """The verifier pool and the connections waiting on it (matching thread only)."""

    def __init__(self, settlement: SettlementConfig, books: dict[str, OrderBook]) -> None:
        self.domain = Domain(settlement.chain_id, address_from_text(settlement.contract))
        self.pool = VerifierPool(settlement.verifier_workers or None)
        self.settings = {symbol: chain_settings(book.market) for symbol, book in books.items()}
        self.queues: dict[bytes, deque[Held]] = {}
        self._in_pool: dict[int, list[tuple[Held, int]]] = {}
        self._batch_ids = itertools.count()
        self._items: list[SignedOrder | SignedCancel] = []
        self._owners: list[tuple[Held, int]] = []
        """The next batch being gathered, and each item's message and command index."""
        self._items_now = 0
        self.ready = False
        """The loop should run a batch at once: a verdict has arrived since the last
        `release`, or a batch is being gathered (`release` sends it)."""

    def close(self) -> None:
        self.pool.close()

    def holding(self, identity: bytes) -> bool:
        return identity in self.queues

    def queue(self, held: Held) -> None:
        """Hold a message behind its connection's waiting ones; past MAX_HELD_PER_CONNECTION
        it is answered `throttled` instead, in its place."""
        waiting = self.queues.setdefault(held.pending.identity, deque())
        if len(waiting) >= MAX_HELD_PER_CONNECTION:
            pending = held.pending
            refusal = ErrorReply(PROTOCOL_VERSION, Reason.THROTTLED, HELD_FULL, pending.ref)
            pending.events = pending.commands = None
            pending.build = lambda: refusal
            held = Held(pending)
        waiting.append(held)
        self.ready = self.ready or not held.waiting

    def hold(self, held: Held, books: dict[str, OrderBook], now: int) -> None:
        """Hold a submit: its signed orders go to the pool now, its signed cancels once it is at
        the front of its connection's queue."""
        for index, command in enumerate(held.commands or ()):
            if index >= held.allowed or held.refused is not None:
                continue
            if getattr(command, "sig", None) is None:
                continue
            if type(command) is CancelOrder:
                held.cancels.append(index)
                continue
            item = self._order_item(command, books)
            if isinstance(item, Check):
                held.verdicts[index] = item
            elif item is not None:
                self._add(held, index, item, now)
        self.queue(held)

    def collect(self) -> None:
        """Take the pool's finished batches (call when its socket is readable, and on every
        tick: that is when dead workers are noticed)."""
        for batch in self.pool.collect():
            self.ready = True
            for position, (held, index) in enumerate(self._in_pool.pop(batch.batch_id)):
                held.waiting -= 1
                if batch.failed:
                    held.verdicts[index] = Check(None, Reason.BAD_SIGNATURE, UNCHECKED)
                    continue
                digest, reason = batch.verdicts[position]
                held.verdicts[index] = Check(digest and "0x" + digest.hex(), reason)

    def release(self, books: dict[str, OrderBook], now: int) -> Iterator[Held]:
        """The held messages whose turn it is, oldest first per connection; the caller applies
        each before asking for the next (a cancel is resolved against the book it left).
        The batch gathered since the last call goes to the pool first, and the cancels of the
        messages that reached the front once they all have."""
        self._flush()
        self.ready = False
        for identity in list(self.queues):
            waiting = self.queues[identity]
            while waiting and not waiting[0].waiting:
                head = waiting[0]
                if head.cancels:
                    self._check_cancels(head, books, now)
                    if head.waiting:
                        break
                yield waiting.popleft()
            if not waiting:
                del self.queues[identity]
        self._flush()

    # -- building the pool's items ----------------------------------------------------------

    def _order_item(
        self, command: NewOrder, books: dict[str, OrderBook]
    ) -> SignedOrder | Check | None:
        """The order as signed; a Check refusing it `malformed`; or None when its price or
        quantity is not a whole number of ticks or lots (the engine refuses it for that)."""
        settings = self.settings.get(command.market) if type(command.market) is str else None
        if settings is None:
            if command.market not in self.settings:
                return None  # unknown_market, from the engine
            return _malformed(f"market {command.market} does not take signed orders")
        if command.type != "limit" or command.side not in ("buy", "sell"):
            return _malformed("a signed order is a limit order, side buy or sell")
        signed = (command.chain_id, command.nonce, command.expiry, command.max_fee_bps)
        if any(value is None for value in signed):
            return _malformed("a signed order needs chain_id, nonce, expiry and max_fee_bps")
        try:
            owner = address_from_text(command.owner)
        except ValueError:
            return _malformed("owner is not an address (0x and 40 hex digits)")
        command.owner = address_text(owner)  # one spelling per wallet: its nonces are one set
        nonce = int(command.nonce)
        if nonce >= NONCE_LIMIT or command.expiry >= UINT64_LIMIT:
            return _malformed("nonce is not a uint256 or expiry not a uint64")
        market = books[command.market].market
        ticks = units_of(market.tick, command.price)
        lots = units_of(market.lot, command.qty)
        if ticks < 1 or lots < 1:
            return None
        if ticks >= UINT64_LIMIT or lots >= UINT64_LIMIT:
            return _malformed("price in ticks or quantity in lots is not a uint64")
        order = signed_order(command, settings, owner, ticks, lots)
        return SignedOrder(order, bytes.fromhex(command.sig[2:]), command.chain_id)

    def _check_cancels(self, held: Held, books: dict[str, OrderBook], now: int) -> None:
        """Resolve the signed cancels of the message at the front: the digest of the order each
        names, from the book or from this message's own orders; send those to the pool."""
        own = {
            (held.commands[index].owner, held.commands[index].id): verdict.order_hash
            for index, verdict in held.verdicts.items()
            if type(held.commands[index]) is NewOrder and verdict.order_hash is not None
        }
        for index in held.cancels:
            command = held.commands[index]
            try:
                owner = address_from_text(command.owner)
            except ValueError:
                held.verdicts[index] = _malformed("owner is not an address (0x and 40 hex digits)")
                continue
            command.owner = address_text(owner)
            book = books.get(command.market) if type(command.market) is str else None
            resting = book.orders.get((command.owner, command.id)) if book else None
            order_hash = resting.order_hash if resting is not None else None
            order_hash = order_hash or own.get((command.owner, command.id))
            if order_hash is None:
                continue  # no signed order to cancel: the gateway or the engine answers
            digest = bytes.fromhex(order_hash[2:])
            item = SignedCancel(owner, digest, bytes.fromhex(command.sig[2:]))
            self._add(held, index, item, now)
        held.cancels = []

    def _add(self, held: Held, index: int, item: SignedOrder | SignedCancel, now: int) -> None:
        """Put a command in the batch being gathered (checked at `now`: a batch has one)."""
        if self._items and now != self._items_now:
            self._flush()
        self._items.append(item)
        self._owners.append((held, index))
        self._items_now = now
        held.waiting += 1
        self.ready = True
        if len(self._items) >= MAX_BATCH_ITEMS:
            self._flush()

    def _flush(self) -> None:
        """Send the batch being gathered to the pool."""
        if not self._items:
            return
        batch_id = next(self._batch_ids)
        self._in_pool[batch_id] = self._owners
        self.pool.submit(batch_id, self.domain, self._items_now, self._items)
        self._items, self._owners = [], []


def _malformed(detail: str) -> Check:
    return Check(None, Reason.MALFORMED, detail)


def check_reject(command: Any, check: Check) -> Rejected:
    """The answer of a command the signature checks refused (before the engine: `seq` nil)."""
    kind = type(command).__struct_config__.tag
    return Rejected(
        None, kind, command.market, command.id, command.owner, check.reason, check.detail
    )

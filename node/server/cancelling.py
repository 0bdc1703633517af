"""The node cancelling orders on its own (a peer disabled, revoked or gone with
cancel-on-disconnect, a signed order expired, an owner whose trade failed to settle or who
raised its minimum nonce on chain): a batch of its own, journaled, reported to each order's
peer and published like any other.

A batch acting on a notice (settlement_link.py) carries the record that the notice was acted
on (`record`: a list kept beside the books), written in the batch's own LMDB transaction, so
the commands and the record are durable together or not at all."""

from __future__ import annotations

import logging

from ..core.commands import CancelOrder, RaiseMinNonce
from ..core.engine import Engine
from ..core.events import Cancelled
from ..core.reasons import CancelReason
from ..protocol.wire_events import wire_event
from ..store.durable import DurableEngine
from .answers import Outbox
from .marketdata import MarketDataPublisher

log = logging.getLogger("marketnode.node")


def cancels_of(engine: Engine, names: set[str], why: str) -> list[CancelOrder]:
    """A cancel of every resting order the peers `names` placed, with the node's reason."""
    return [
        CancelOrder(order.id, order.owner, order.market, reason=why)
        for order in engine.resting_orders()
        if order.peer in names
    ]


def cancel_orders(
    durable: DurableEngine,
    outbox: Outbox,
    market_data: MarketDataPublisher,
    names: set[str],
    why: str,
) -> int:
    """Cancel every resting order the peers `names` placed, in one commit; the count.
    Raises CommitFailed (nothing cancelled, the engine back at the last commit) when the store
    cannot take it."""
    commands = cancels_of(durable.engine, names, why)
    count = apply_cancels(durable, outbox, market_data, commands)
    if count:
        log.info("cancelled %d orders of %s (%s)", count, ", ".join(sorted(names)), why)
    return count


def cancel_owner_orders(
    durable: DurableEngine,
    outbox: Outbox,
    market_data: MarketDataPublisher,
    owner: str,
    market: str,
    why: str,
    record: tuple[bytes, list[str]] | None = None,
) -> int:
    """Cancel every resting order of `owner` (an address: compared in any case) in `market`,
    whichever peer placed it, in one commit with `record`; the count. Raises CommitFailed like
    `cancel_orders`."""
    wanted = owner.lower()
    commands = [
        CancelOrder(order.id, order.owner, order.market, reason=why)
        for order in durable.engine.resting_orders()
        if order.market == market and order.owner.lower() == wanted
    ]
    count = apply_cancels(durable, outbox, market_data, commands, record)
    if count:
        log.info("cancelled %d orders of %s in %s (%s)", count, owner, market, why)
    return count


def cancel_expired(
    durable: DurableEngine, outbox: Outbox, market_data: MarketDataPublisher, now: int
) -> int:
    """Cancel the resting signed orders whose expiry is at or before `now` (reason
    `expired`), in one commit; the count. Raises CommitFailed like `cancel_orders`."""
    commands = [
        CancelOrder(order.id, order.owner, order.market, reason=CancelReason.EXPIRED)
        for order in durable.engine.expired_orders(now)
    ]
    return apply_cancels(durable, outbox, market_data, commands)


def raise_min_nonce(
    durable: DurableEngine,
    outbox: Outbox,
    market_data: MarketDataPublisher,
    owner: str,
    min_nonce: int,
    record: tuple[bytes, list[str]],
) -> int:
    """Journal the owner's raised minimum nonce (its resting signed orders below it cancelled,
    reason `min_nonce`) in one commit with `record`, reported and published like any cancel;
    the count cancelled. Raises CommitFailed like `cancel_orders`."""
    command = RaiseMinNonce(owner.lower(), str(min_nonce))
    count = apply_commands(durable, outbox, market_data, [command], record)
    log.info("minimum nonce of %s raised to %d: %d resting orders cancelled", owner, min_nonce,
             count)  # fmt: skip
    return count


def apply_cancels(
    durable: DurableEngine,
    outbox: Outbox,
    market_data: MarketDataPublisher,
    commands: list[CancelOrder],
    record: tuple[bytes, list[str]] | None = None,
) -> int:
    """Journal and commit the node's `commands` (with `record`: nothing to cancel writes the
    record alone), report each cancellation to the peer that placed the order, publish the
    books' changes; the count."""
    if not commands:
        if record is not None:
            durable.store.put_meta_list(*record)
        return 0
    apply_commands(durable, outbox, market_data, commands, record)
    return len(commands)


def apply_commands(
    durable: DurableEngine,
    outbox: Outbox,
    market_data: MarketDataPublisher,
    commands: list[CancelOrder] | list[RaiseMinNonce],
    record: tuple[bytes, list[str]] | None = None,
) -> int:
    """Journal and commit the node's `commands` with `record` in the same transaction, report
    each cancellation to the peer that placed the order, publish the books' changes; how many
    orders were cancelled."""
    out: list = []
    for command in commands:
        durable.process(command, out)
    changed = durable.commit(lists=dict([record]) if record is not None else None)
    books = durable.engine.books
    cancelled: dict[str, list] = {}
    for event in out:
        if type(event) is Cancelled and event.peer is not None:
            cancelled.setdefault(event.peer, []).append(wire_event(event, books))
    for name, events in cancelled.items():
        outbox.report(name, events)
    market_data.publish(books, {}, changed)
    return sum(type(event) is Cancelled for event in out)

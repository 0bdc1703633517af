"""The node cancelling orders on its own (a peer disabled, revoked or gone with
cancel-on-disconnect, a signed order expired, an owner whose trade failed to settle): a batch
of its own, journaled, reported to each order's peer and published like any other."""

from __future__ import annotations

import logging

from ..core.commands import CancelOrder
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
) -> int:
    """Cancel every resting order of `owner` (an address: compared in any case) in `market`,
    whichever peer placed it, in one commit; the count. Raises CommitFailed like
    `cancel_orders`."""
    wanted = owner.lower()
    commands = [
        CancelOrder(order.id, order.owner, order.market, reason=why)
        for order in durable.engine.resting_orders()
        if order.market == market and order.owner.lower() == wanted
    ]
    count = apply_cancels(durable, outbox, market_data, commands)
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


def apply_cancels(
    durable: DurableEngine,
    outbox: Outbox,
    market_data: MarketDataPublisher,
    commands: list[CancelOrder],
) -> int:
    """Journal and commit the node's `commands`, report each cancellation to the peer that
    placed the order, publish the books' changes; the count."""
    if not commands:
        return 0
    out: list = []
    for command in commands:
        durable.process(command, out)
    changed = durable.commit()
    books = durable.engine.books
    cancelled: dict[str, list] = {}
    for event in out:
        if type(event) is Cancelled and event.peer is not None:
            cancelled.setdefault(event.peer, []).append(wire_event(event, books))
    for name, events in cancelled.items():
        outbox.report(name, events)
    market_data.publish(books, {}, changed)
    return len(commands)

"""The node cancelling peers' orders (a peer disabled, or gone with cancel-on-disconnect): a
batch of its own, journaled, reported to each peer and published like any other."""

from __future__ import annotations

import logging

from ..core.commands import CancelOrder
from ..core.engine import Engine
from ..core.events import Cancelled
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
    engine = durable.engine
    commands = cancels_of(engine, names, why)
    if not commands:
        return 0
    out: list = []
    for command in commands:
        durable.process(command, out)
    changed = durable.commit()
    books = engine.books
    cancelled: dict[str, list] = {name: [] for name in names}
    for event in out:
        if type(event) is Cancelled and event.peer in cancelled:
            cancelled[event.peer].append(wire_event(event, books))
    for name, events in cancelled.items():
        if events:
            outbox.report(name, events)
    market_data.publish(books, {}, changed)
    log.info("cancelled %d orders of %s (%s)", len(commands), ", ".join(sorted(names)), why)
    return len(commands)

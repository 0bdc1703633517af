"""Results: events in engine units turned into records with decimal text, for the outside world."""

from __future__ import annotations

from typing import Any

import msgspec

from .book import OrderBook
from .events import Cancelled, Replaced, Rested, Trade

_LOT_FIELDS: dict[type, tuple[str, ...]] = {
    Trade: ("qty", "maker_remaining", "taker_remaining"),
    Rested: ("qty",),
    Cancelled: ("qty", "remaining"),
    Replaced: ("qty",),
}
_PRICED = (Trade, Rested, Replaced)


def event_record(event: Any, books: dict[str, OrderBook]) -> dict[str, Any]:
    """The event as a JSON-ready dict: `event` first, prices and quantities as decimal text."""
    record = {"event": type(event).__struct_config__.tag}
    record.update(msgspec.structs.asdict(event))
    lot_fields = _LOT_FIELDS.get(type(event))
    if lot_fields:
        market = books[event.market].market
        for name in lot_fields:
            record[name] = market.lot.text_of(record[name])
        if isinstance(event, _PRICED):
            record["price"] = market.tick.text_of(record["price"])
    if record.get("detail") is None:
        record.pop("detail", None)
    return record

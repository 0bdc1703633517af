"""The fewest commands that turn what rests into what a strategy wants.

Per side: a wanted quote at the price of a resting order keeps that order (left alone when its
size is the same, shrunk in place by a `replace`, which keeps its time priority, or grown by a
`replace`, which re-enters it behind the level); the wanted quotes left are given the resting
orders left by `replace` (one command instead of a cancel and a new order), nearest price first;
then what still rests is cancelled and what is still wanted is placed. Cancels go first in the
message, so that nothing rests twice even for the length of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marketnode.plugins.quoting import BUY, SELL, Quote, RestingQuote


@dataclass
class Changes:
    """The commands to send: ids to cancel, (id, new quote) to replace, quotes to place."""

    cancels: list[str] = field(default_factory=list)
    replaces: list[tuple[str, Quote]] = field(default_factory=list)
    news: list[Quote] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cancels) + len(self.replaces) + len(self.news)


def plan_changes(wanted: list[Quote], resting: list[RestingQuote]) -> Changes:
    changes = Changes()
    for side in (BUY, SELL):
        _plan_side(
            [quote for quote in wanted if quote.side == side],
            [order for order in resting if order.side == side],
            changes,
        )
    return changes


def _plan_side(wanted: list[Quote], resting: list[RestingQuote], changes: Changes) -> None:
    by_price: dict[int, list[RestingQuote]] = {}
    for order in resting:
        by_price.setdefault(order.price, []).append(order)
    unmatched: list[Quote] = []
    for quote in wanted:
        same = by_price.get(quote.price)
        if not same:
            unmatched.append(quote)
            continue
        order = same.pop(0)
        if order.qty != quote.qty:
            changes.replaces.append((order.id, quote))
    left = sorted((order for orders in by_price.values() for order in orders), key=_price)
    for quote in sorted(unmatched, key=_price):
        if not left:
            changes.news.append(quote)
            continue
        nearest = min(left, key=lambda order: abs(order.price - quote.price))
        left.remove(nearest)
        changes.replaces.append((nearest.id, quote))
    changes.cancels.extend(order.id for order in left)


def _price(item: Quote | RestingQuote) -> int:
    return item.price

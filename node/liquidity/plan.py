"""The fewest commands that turn what rests into what a strategy wants.

Per side: a wanted quote at the price of a resting order keeps that order (left alone when its
size is the same, shrunk in place by a `replace`, which keeps its time priority, or grown by a
`replace`, which re-enters it behind the level); the wanted quotes left are given the resting
orders left by `replace` (one command instead of a cancel and a new order), nearest price first;
then what still rests is cancelled and what is still wanted is placed. Cancels go first in the
message, so that nothing rests twice even for the length of a batch.

No command may cross the instance's own quotes, neither where it ends nor on the way there: a bid at
or above its own ask is a self-trade, which the node's self-trade prevention cancels, and a strategy
that reads its fills and resting orders then chases its own price (a market maker alone in its
market, its lean moving its bids over its asks, took its price to 6.8e11 in seconds). So wanted
quotes at crossing prices are left out (both sides of the cross), and the replaces that move a quote
away from the other side go before those that move one toward it: with the wanted quotes uncrossed,
each command then leaves the book uncrossed too.
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
    wanted = uncrossed(wanted)
    for side in (BUY, SELL):
        _plan_side(
            [quote for quote in wanted if quote.side == side],
            [order for order in resting if order.side == side],
            changes,
        )
    was = {order.id: order.price for order in resting}
    changes.replaces.sort(key=lambda change: _toward_the_other_side(was[change[0]], change[1]))
    return changes


def uncrossed(wanted: list[Quote]) -> list[Quote]:
    """`wanted` without the bids at or above its lowest ask and the asks at or below its
    highest bid (all of it when nothing crosses)."""
    bids = [quote.price for quote in wanted if quote.side == BUY]
    asks = [quote.price for quote in wanted if quote.side == SELL]
    if not bids or not asks or max(bids) < min(asks):
        return wanted
    lowest_ask, highest_bid = min(asks), max(bids)
    return [
        quote
        for quote in wanted
        if (quote.side == BUY and quote.price < lowest_ask)
        or (quote.side == SELL and quote.price > highest_bid)
    ]


def _toward_the_other_side(was: int, quote: Quote) -> bool:
    """A bid raised or an ask lowered (sorted after the others: False before True)."""
    return quote.price > was if quote.side == BUY else quote.price < was


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

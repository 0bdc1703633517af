"""A seeded, realistic order flow: for benchmarks, samples and tests.

Several owners trade a few markets around a drifting mid price: mostly limit orders a few ticks
from the mid (some post-only), cancels and replaces of orders placed earlier, and a share of IOC,
FOK and market orders that take liquidity. The same seed always gives the same commands.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..core.commands import CancelOrder, NewOrder, ReplaceOrder
from ..core.decimals import Unit
from ..core.markets import MarketSpec
from ..home.config import default_markets

RECENT_ORDERS = 16
"""Cancels and replaces pick among an owner's most recent orders, as quoting bots do."""


@dataclass(frozen=True)
class FlowMix:
    """Shares of each kind of command (they need not add up to 1: they are weights)."""

    limit: float = 0.50
    post_only: float = 0.05
    cancel: float = 0.22
    replace: float = 0.10
    ioc: float = 0.06
    fok: float = 0.03
    market: float = 0.04


def generate_flow(
    count: int,
    seed: int = 1,
    markets: list[MarketSpec] | None = None,
    owners: int = 50,
    mix: FlowMix | None = None,
    owner_names: Sequence[str] | None = None,
    first_id: int = 1,
) -> Iterator[NewOrder | CancelOrder | ReplaceOrder]:
    """`count` commands of a seeded flow over `markets` (the default configuration's), by
    `owners` random wallets or the given `owner_names`, with order ids from `first_id` up."""
    rng = random.Random(seed)
    markets = markets or default_markets()
    mix = mix or FlowMix()
    kinds = ["limit", "post_only", "cancel", "replace", "ioc", "fok", "market"]
    weights = [getattr(mix, kind) for kind in kinds]
    random_owners = [f"0x{rng.getrandbits(160):040x}" for _ in range(owners)]
    owner_names = list(owner_names or random_owners)
    ticks = {spec.symbol: Unit(spec.tick_size) for spec in markets}
    lots = {spec.symbol: Unit(spec.lot_size) for spec in markets}
    mids = {spec.symbol: 10_000 for spec in markets}
    placed: dict[str, list[tuple[str, int]]] = {spec.symbol: [] for spec in markets}
    next_id = first_id - 1
    kind_choices = rng.choices(kinds, weights, k=count)
    for kind in kind_choices:
        spec = markets[rng.randrange(len(markets))]
        symbol = spec.symbol
        mid = mids[symbol] = max(100, mids[symbol] + rng.choice((-1, 0, 0, 1)))
        book_orders = placed[symbol]
        if kind in ("cancel", "replace") and book_orders:
            recent = len(book_orders) - 1 - rng.randrange(min(len(book_orders), RECENT_ORDERS))
            owner, order_id = book_orders.pop(recent)
            if kind == "cancel":
                yield CancelOrder(order_id, owner, symbol)
                continue
            price = ticks[symbol].text_of(mid + rng.randint(-8, 8))
            qty = lots[symbol].text_of(rng.randint(1, 20))
            book_orders.append((owner, order_id))
            yield ReplaceOrder(order_id, owner, symbol, price=price, qty=qty)
            continue
        next_id += 1
        owner = owner_names[rng.randrange(len(owner_names))]
        side = "buy" if rng.random() < 0.5 else "sell"
        qty = lots[symbol].text_of(rng.randint(1, 20))
        if kind == "market":
            yield NewOrder(next_id, owner, symbol, side, "market", None, qty, "IOC")
            continue
        offset = rng.randint(1, 10)
        if kind in ("ioc", "fok"):
            offset = -rng.randint(0, 4)
        price = mid - offset if side == "buy" else mid + offset
        tif = {"ioc": "IOC", "fok": "FOK", "post_only": "POST_ONLY"}.get(kind, "GTC")
        if tif in ("GTC", "POST_ONLY"):
            book_orders.append((owner, next_id))
        yield NewOrder(
            next_id, owner, symbol, side, "limit", ticks[symbol].text_of(price), qty, tif
        )

"""What a liquidity strategy sees and answers (the `marketnode.liquidity` hooks): the market as
its host keeps it, in whole ticks and lots, and the quotes it wants resting.

Integers inside, as in the engine: a price is whole ticks of the market, a quantity whole lots,
and an amount of the quote asset whole tick-lots (one tick times one lot), so that a fill of
`qty` lots at `price` ticks moves exactly `price * qty` of it and an AMM's reserves stay exact.
The host converts to and from the decimal text of the wire at its edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BUY = "buy"
SELL = "sell"


@dataclass(frozen=True, slots=True)
class Quote:
    """One resting order wanted: a side, a price (ticks) and a quantity (lots)."""

    side: str
    price: int
    qty: int


@dataclass(frozen=True, slots=True)
class RestingQuote:
    """One of the instance's own orders on the book, as its host last knew it."""

    id: str
    side: str
    price: int
    qty: int


@dataclass(frozen=True, slots=True)
class Fill:
    """A trade of the instance's: `side` is its own side, `aggressor` the taker's side."""

    time: float
    price: int
    qty: int
    side: str
    aggressor: str


@dataclass(frozen=True, slots=True)
class MarketState:
    """One market as a liquidity instance sees it at `now` (seconds).

    The book (`bids`, `asks`: (price, qty) from the best, and `mid`) leaves the instance's own
    orders out, so a strategy never chases its own quotes; `mid` is the others' mid, else the
    latest fill's price, else None. `volatility` is the standard deviation of the mid's log
    return per square root of a second over the host's window (`drift` its mean per second);
    `flow_imbalance` is
    (bought - sold) / (bought + sold) by the takers of the instance's recent fills, in [-1, 1].
    """

    market: str
    now: float
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    mid: float | None
    base: int
    """Lots of the base asset held (an AMM's base reserve)."""
    quote: int
    """Tick-lots of the quote asset held (an AMM's quote reserve)."""
    target_base: int
    """The base inventory the instance started with, which its strategy steers back to."""
    open_orders: list[RestingQuote]
    recent_fills: list[Fill]
    volatility: float
    flow_imbalance: float
    drift: float
    """The mid's mean log return per second over the volatility window (its trend)."""
    pnl_today: float
    """Tick-lots: the holdings' value at `mid` now minus their value at the day's start (UTC)."""
    resting_notional: int
    """Tick-lots: price x qty of the open orders."""
    min_qty: int = 1
    max_qty: int | None = None
    tick_lot: float = 1.0
    """The quote asset's amount in one tick-lot (tick size x lot size), for settings written
    in the quote asset (a notional, a loss)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A strategy's answer: the quotes wanted now (an empty list cancels everything), or a
    `halt` naming the limit that was crossed: the host then cancels all, stops the instance
    and says why (the kill switch)."""

    quotes: list[Quote] = field(default_factory=list)
    halt: str | None = None

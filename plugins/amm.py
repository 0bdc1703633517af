"""A constant-product pool quoted into the book: Uniswap v2's curve x * y = k, with its fee.

The pool's reserves are its instance's inventory (`state.base` lots, `state.quote` tick-lots),
so they move exactly as its fills say: after a fill of q lots at p ticks the base reserve
changes by q and the quote reserve by p * q, nothing else. Its marginal price is y / x.

The curve is quoted as a ladder of resting levels, one per band of a fixed grid of prices
(`step_bps` apart, anchored at one tick, so a band's edges do not move when the pool does):
the size of the band between prices a < b is sqrt(k/a) - sqrt(k/b) of the base, what the pool
trades as its marginal price crosses the band (Uniswap v2 `UniswapV2Library.sol`; the band
holding the current price starts at it). Each level's price is the average price of trading
its whole size against the pool at the band's start, fee included, by Uniswap v2's
`getAmountIn` for an ask (the pool sells base: in = y * dx * 10000 / ((x - dx) * (10000 -
fee_bps)), rounded up to a tick) and `getAmountOut` for a bid (the pool buys base: out = dx *
(10000 - fee_bps) * y / (x * 10000 + dx * (10000 - fee_bps)), rounded down). Without the fee
that average is sqrt(a * b), so the levels of untouched bands keep their price (and their
priority) as the pool moves; the fee and the rounding keep every fill on or above the curve,
so k never falls. A fill re-quotes the ladder from the new reserves.
"""

from __future__ import annotations

import math

from .hookspecs import declare_settings, hookimpl
from .quoting import BUY, SELL, Decision, MarketState, Quote

NAME = "amm"
DEFAULTS = {"fee_bps": 30, "step_bps": 50, "levels": 5}
"""Uniswap v2's 0.3% fee; bands half a percent wide; five levels each side."""
FEE_SCALE = 10_000

liquidity_settings = declare_settings("liquidity_settings", NAME, DEFAULTS)


@hookimpl
def desired_quotes(strategy: str, state: MarketState, settings: dict) -> Decision | None:
    if strategy != NAME:
        return None
    if state.base <= 0 or state.quote <= 0:
        return Decision([])
    return Decision(ladder(state.base, state.quote, settings, state.min_qty, state.max_qty))


def ladder(
    base: int, quote: int, settings: dict, min_qty: int = 1, max_qty: int | None = None
) -> list[Quote]:
    """The pool's resting levels for reserves `base` (lots) and `quote` (tick-lots): asks
    upward from the marginal price, bids downward, one per grid band."""
    fee_kept = FEE_SCALE - settings["fee_bps"]
    ratio = 1 + settings["step_bps"] / FEE_SCALE
    k = base * quote
    price = quote / base
    band = math.floor(math.log(price) / math.log(ratio))
    quotes: list[Quote] = []
    for level in range(settings["levels"]):
        low = max(price, ratio ** (band + level))
        high = ratio ** (band + level + 1)
        size = _clip(math.sqrt(k / low) - math.sqrt(k / high), min_qty, max_qty)
        if size:
            x, y = math.sqrt(k / low), math.sqrt(k * low)
            paid = y * size * FEE_SCALE / ((x - size) * fee_kept)
            quotes.append(Quote(SELL, math.ceil(paid / size), size))
    for level in range(settings["levels"]):
        high = min(price, ratio ** (band - level + 1))
        low = ratio ** (band - level)
        size = _clip(math.sqrt(k / low) - math.sqrt(k / high), min_qty, max_qty)
        if size:
            x, y = math.sqrt(k / high), math.sqrt(k * high)
            paid = size * fee_kept * y / (x * FEE_SCALE + size * fee_kept)
            tick = math.floor(paid / size)
            if tick >= 1:
                quotes.append(Quote(BUY, tick, size))
    return quotes


def _clip(size: float, min_qty: int, max_qty: int | None) -> int:
    """Whole lots of a band (0 when below the market's minimum), at most the market's maximum."""
    lots = math.floor(size)
    if lots < min_qty:
        return 0
    return min(lots, max_qty) if max_qty is not None else lots

"""A market maker in the manner of Hummingbot's pure market making, with an Avellaneda-Stoikov
reservation price and hard limits.

Quotes: `levels` orders each side, level i at r * (1 - bid_spread - i * level_spacing) and
r * (1 + ask_spread + i * level_spacing) (Hummingbot `pure_market_making`), around a
reservation price r rather than the mid s. Avellaneda & Stoikov, "High-frequency trading in a
limit order book" (Quantitative Finance 8(3), 2008), eq. (29)-(30): r = s - q * gamma *
sigma^2 * (T - t), and the optimal total spread gamma * sigma^2 * (T - t) + (2 / gamma) *
ln(1 + gamma / k). Here sigma is the mid's volatility of log returns (`state.volatility`, per
square root of a second), T - t the fixed `horizon_s`, q the inventory away from its target in
order sizes, and r and the spread are taken relative to s (so r = s * (1 - q * gamma * sigma^2 *
(T - t)), and each side's half spread is `spread_bps` plus half the A-S spread's volatility term
in basis points, the ln term being the constant `spread_bps` stands for).

Order flow: when the takers of the recent fills are one-sided (`state.flow_imbalance` phi, in
[-1, 1]), the side they hit widens by `flow_widen` * |phi| of its half spread, and r moves
`flow_skew` * phi half spreads with them: a one-sided run of takers is the sign of informed
flow, and the quote it hits is where the adverse selection is.

Trend: r also moves by the mid's drift (`state.drift`, log return per second) over
`drift_horizon_s`, the quotes' expected life: r * exp(drift * drift_horizon_s), the expected mid
when a quote is taken, so that a quote is not left where the mid was by the time a trend's
informed taker reaches it (A-S take the mid driftless; this is the term a drift adds). The lean
goes as far as the drift says, up to where the leaned bid is a tick under the others' best ask
(the ask a tick over their best bid): past that a quote would take the others' liquidity, at
their price, instead of providing it. That is the one hard reason to stop, so the lean stops
there and nowhere sooner: a lean held short of the trend leaves a quote where a taker who sees
further ahead than the quote's life reaches it (capped at 3 half spreads, the quote facing the
trend was still hit by takers who knew the fair price 10 steps ahead, and the adverse-selection
reduction on that flow fell to 0.19 on one seed; it is 0.45 with the book's bound). Only when
the others quote no such side is the lean capped, at `max_lean` half spreads.

Inventory skew (Hummingbot's `inventory_skew_calculator`): the bid and ask sizes scale between
0 and 2x the order size as the base's share of the holdings' value runs from
`target_base_share` - `inventory_range` to +.

Refresh tolerance: a level within `refresh_tolerance_bps` of a resting order of the same side
keeps that order's price (the host then leaves it resting, with its priority).

Hard limits, each checked on every decision: the base position (lots held beyond the
instance's start) never goes past `max_inventory` lots whatever fills: the sizes resting on a
side are capped at what would bring it exactly to the limit; the resting notional is capped at
`max_resting_notional` (quote asset); and the kill switch halts the instance (cancel all, stop,
say why) when the position is past the limit anyway, or the day's loss at mid exceeds
`max_daily_loss` (quote asset).
"""

from __future__ import annotations

import math

from .hookspecs import declare_settings, hookimpl
from .quoting import BUY, SELL, Decision, MarketState, Quote

NAME = "market_maker"
DEFAULTS = {
    "order_size": 10,
    "levels": 3,
    "spread_bps": 20.0,
    "level_spacing_bps": 10.0,
    "refresh_tolerance_bps": 2.0,
    "target_base_share": 0.5,
    "inventory_range": 0.2,
    "gamma": 1.0,
    "horizon_s": 60.0,
    "volatility_weight": 1.0,
    "flow_widen": 0.25,
    "flow_skew": 1.0,
    "drift_horizon_s": 10.0,
    "max_lean": 3.0,
    "max_inventory": 200,
    "max_resting_notional": 1e12,
    "max_daily_loss": 1e12,
}
"""The adaptive maker; a fixed-spread maker is this with gamma, volatility_weight, flow_widen,
flow_skew and drift_horizon_s at 0."""
BPS = 1e-4

liquidity_settings = declare_settings("liquidity_settings", NAME, DEFAULTS)


@hookimpl
def desired_quotes(strategy: str, state: MarketState, settings: dict) -> Decision | None:
    if strategy != NAME:
        return None
    halt = breached_limit(state, settings)
    if halt is not None:
        return Decision([], halt)
    if state.mid is None:
        return Decision([])
    return Decision(quotes(state, settings))


def breached_limit(state: MarketState, settings: dict) -> str | None:
    """The kill switch: which hard limit is past, in words, or None."""
    position = state.base - state.target_base
    if abs(position) > settings["max_inventory"]:
        return f"inventory {position:+d} lots beyond max_inventory {settings['max_inventory']}"
    loss = -state.pnl_today * state.tick_lot
    if loss > settings["max_daily_loss"]:
        return f"loss today {loss:.6g} beyond max_daily_loss {settings['max_daily_loss']:g}"
    return None


def quotes(state: MarketState, settings: dict) -> list[Quote]:
    """The ladder around the reservation price, sized by the inventory skew and capped by the
    inventory and notional limits."""
    mid = state.mid
    assert mid is not None
    size = settings["order_size"]
    position = state.base - state.target_base
    variance = state.volatility**2 * settings["horizon_s"]
    vol_term = settings["volatility_weight"] * settings["gamma"] * variance / 2
    half = settings["spread_bps"] * BPS + vol_term
    phi = state.flow_imbalance
    reservation = mid * (1 - (position / size) * settings["gamma"] * variance)
    reservation *= 1 + settings["flow_skew"] * phi * half
    bid_half = half * (1 + settings["flow_widen"] * max(-phi, 0.0))
    ask_half = half * (1 + settings["flow_widen"] * max(phi, 0.0))
    down, up = lean_room(state, settings, reservation, half, bid_half, ask_half)
    reservation *= math.exp(max(-down, min(up, state.drift * settings["drift_horizon_s"])))
    bid_scale, ask_scale = inventory_skew(state, settings)
    room = {BUY: settings["max_inventory"] - position, SELL: settings["max_inventory"] + position}
    notional_room = settings["max_resting_notional"] / state.tick_lot
    spacing = settings["level_spacing_bps"] * BPS
    wanted: list[Quote] = []
    kept: set[int] = set()
    for level in range(settings["levels"]):
        for side, half_spread, scale in ((BUY, bid_half, bid_scale), (SELL, ask_half, ask_scale)):
            offset = half_spread + level * spacing
            if side == BUY:
                price = math.floor(reservation * (1 - offset))
            else:
                price = math.ceil(reservation * (1 + offset))
            qty = min(round(size * scale), room[side], state.max_qty or room[side])
            qty = min(qty, int(notional_room // max(price, 1)))
            if price < 1 or qty < state.min_qty:
                continue
            room[side] -= qty
            notional_room -= price * qty
            price = _tolerated(state, side, price, settings, kept)
            kept.add(price)
            wanted.append(Quote(side, price, qty))
    return wanted


def lean_room(
    state: MarketState, settings: dict, reservation: float, half: float, bid_half: float,
    ask_half: float,
) -> tuple[float, float]:
    """How far (log) the trend may move the reservation price down and up: until the leaned
    ask is a tick above the others' best bid, and the leaned bid a tick under their best ask.
    A quote leaned onto them would take liquidity at their prices instead of providing it.
    Where the others quote no such side, `max_lean` half spreads."""
    fallback = settings["max_lean"] * half
    up = down = None
    if state.asks:
        up = _log_ratio(state.asks[0][0] - 1, reservation * (1 - bid_half))
    if state.bids:
        down = _log_ratio(state.bids[0][0] + 1, reservation * (1 + ask_half))
        down = None if down is None else -down
    return max(0.0, fallback if down is None else down), max(0.0, fallback if up is None else up)


def _log_ratio(numerator: float, denominator: float) -> float | None:
    """log(numerator / denominator); None where it has none (a best ask of one tick, a half
    spread of 100% or more), so that the lean falls back to `max_lean`."""
    if numerator <= 0 or denominator <= 0:
        return None
    return math.log(numerator / denominator)


def inventory_skew(state: MarketState, settings: dict) -> tuple[float, float]:
    """Bid and ask size multipliers in [0, 2]: 1 each at the target base share, the bid
    shrinking to 0 (the ask growing to 2) as the share reaches target + range."""
    mid = state.mid or 0.0
    value = state.base * mid + state.quote
    if value <= 0 or settings["inventory_range"] <= 0:
        return 1.0, 1.0
    share = state.base * mid / value
    away = (share - settings["target_base_share"]) / settings["inventory_range"]
    away = max(-1.0, min(1.0, away))
    return 1.0 - away, 1.0 + away


def _tolerated(
    state: MarketState, side: str, price: int, settings: dict, kept: set[int]
) -> int:
    """`price`, or the price of a resting order of `side` within the refresh tolerance (one
    no other level keeps)."""
    tolerance = settings["refresh_tolerance_bps"] * BPS * price
    near = [
        order.price
        for order in state.open_orders
        if order.side == side and abs(order.price - price) <= tolerance and order.price not in kept
    ]
    return min(near, key=lambda resting: abs(resting - price)) if near else price

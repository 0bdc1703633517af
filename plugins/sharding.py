"""Sharding: the matching thread is single-threaded by design, so a saturated node needs
another node, and the question is which markets to move. The load of a market is its share of
the orders over `average_s`; markets are moved, busiest first, until what stays is under the
target, so long as what moves fits under it too. A market that alone needs more than a node is
said to be one."""

from __future__ import annotations

from .hookspecs import declare_settings, hookimpl, settings_of
from .recommendation import Recommendation
from .series import mean, missing, stale, window

NAME = "sharding"
DEFAULTS = {"target_busy": 0.7, "tolerance": 0.1, "average_s": 10, "stale_s": 5.0}


scaling_settings = declare_settings("scaling_settings", NAME, DEFAULTS)


@hookimpl
def recommend_scaling(history: list[dict], settings: dict, now: float) -> list[Recommendation]:
    option = settings_of(settings, NAME, DEFAULTS)
    busy_points = window(history, "matching_busy", now, option["average_s"])
    if stale(busy_points, now, option["stale_s"]):
        return [missing(NAME, "nodes", "matching_busy", option["stale_s"])]
    busy = mean(busy_points)
    target = option["target_busy"]
    if busy <= target * (1 + option["tolerance"]):
        return []
    loads = market_loads(history, now, option["average_s"])
    if not loads:
        return [missing(NAME, "nodes", "markets.*.orders_per_s", option["stale_s"])]
    move, share = split(loads, busy, target)
    stays = busy * (1 - share)
    if not move:
        reason = (
            f"matching thread {busy:.0%} busy (target {target:.0%}) and "
            f"{max(loads, key=loads.get)} alone needs more than one node's matching capacity"
        )
    else:
        reason = (
            f"matching thread {busy:.0%} busy (target {target:.0%}): move {', '.join(move)} "
            f"({share:.0%} of the orders) to a second node; this one ends near {stays:.0%}, "
            f"the new one near {busy * share:.0%}"
        )
    return [
        Recommendation(
            policy=NAME,
            action="scale_up",
            resource="nodes",
            current=1,
            desired=2,
            metric="matching_busy",
            ratio=round(busy / target, 3),
            confidence=0.8 if move else 0.5,
            reason=reason,
            details={
                "move": move,
                "moved_share": round(share, 4),
                "market_shares": {m: round(s, 4) for m, s in sorted(loads.items())},
            },
        )
    ]


def market_loads(history: list[dict], now: float, span_s: float) -> dict[str, float]:
    """Each market's share of the orders over the last `span_s` seconds."""
    totals: dict[str, float] = {}
    for sample in reversed(history):
        if sample["time"] < now - span_s:
            break
        for market, figures in sample.get("markets", {}).items():
            totals[market] = totals.get(market, 0.0) + figures["orders_per_s"]
    whole = sum(totals.values())
    return {market: total / whole for market, total in totals.items() if total} if whole else {}


def split(loads: dict[str, float], busy: float, target: float) -> tuple[list[str], float]:
    """Markets to move (busiest first) and their share, so that both nodes end under
    `target`; empty when no such split exists."""
    moved: list[str] = []
    share = 0.0
    for market, load in sorted(loads.items(), key=lambda item: (-item[1], item[0])):
        if busy * (1 - share) <= target:
            break
        if busy * (share + load) <= target:
            moved.append(market)
            share += load
    if busy * (1 - share) > target:
        return [], 0.0
    return moved, share

"""Sharding: the matching thread is single-threaded by design, so a node over its target needs
more nodes, and the question is which markets go where. A market's load is its share of the
orders over `sustain_s` times the node's offered load (plugins/reactive.py `offered_load`: not
the busy share, which stops at 1.0 and would make any split look as if it fits). This node's
busiest markets that fit are moved to new nodes until what stays is under the target, each new
node under it too. A market that alone needs more than a node is said to be one.

The breach must be sustained, as the reactive policy's is (the same low quantile over the
same kind of window), so a spike moves nothing. The count advised is at least the reactive
one (every node as loaded as this one) and at least this node's packing with the other nodes
kept; `current` is the real node count.
"""

from __future__ import annotations

import math

from .hookspecs import declare_settings, hookimpl, settings_of
from .reactive import load_points, node_bounds, node_count, sustained
from .recommendation import Recommendation
from .series import missing, stale

NAME = "sharding"
DEFAULTS = {"target_busy": 0.7, "tolerance": 0.1, "sustain_s": 10, "stale_s": 5.0}


scaling_settings = declare_settings("scaling_settings", NAME, DEFAULTS)


@hookimpl
def recommend_scaling(history: list[dict], settings: dict, now: float) -> list[Recommendation]:
    option = settings_of(settings, NAME, DEFAULTS)
    points = load_points(history, now, option["sustain_s"])
    if stale(points, now, option["stale_s"]):
        return [missing(NAME, "nodes", "offered_load", option["stale_s"])]
    levels = sustained(points)
    target = option["target_busy"]
    if levels is None or levels[0] <= target * (1 + option["tolerance"]):
        return []
    load = levels[1]
    loads = market_loads(history, now, option["sustain_s"])
    if not loads:
        return [missing(NAME, "nodes", "markets.*.orders_per_s", option["stale_s"])]
    current = node_count(history, settings)
    nodes = pack(loads, load, target)
    fits = sum(loads[m] for m in nodes[0]) * load <= target  # the new ones are by construction
    least, most = node_bounds(settings)
    needed = max(current - 1 + len(nodes), math.ceil(current * load / target - 1e-9))
    desired = max(least, min(most, needed))
    if desired <= current:
        return []  # the most nodes the deployment may have are there already
    move = [market for node in nodes[1:] for market in node]
    share = sum(loads[m] for m in move)
    busiest = max(loads, key=loads.__getitem__)
    if not fits:
        reason = (
            f"offered load {load:.0%} of the matching thread (target {target:.0%}): "
            f"{busiest} alone needs more than one node's matching capacity"
        )
    else:
        plan = "; ".join(
            f"{', '.join(node)} to a new node (near {sum(loads[m] for m in node) * load:.0%})"
            for node in nodes[1:]
        )
        reason = (
            f"offered load {load:.0%} of the matching thread (target {target:.0%}): move "
            f"{plan}; this one ends near {sum(loads[m] for m in nodes[0]) * load:.0%}"
        )
    return [
        Recommendation(
            policy=NAME,
            action="scale_up",
            resource="nodes",
            current=current,
            desired=desired,
            metric="offered_load",
            ratio=round(load / target, 3),
            confidence=0.8 if fits else 0.5,
            reason=reason,
            details={
                "move": move if fits else [],
                "moved_share": round(share, 4) if fits else 0.0,
                "new_nodes": [list(node) for node in nodes[1:]] if fits else [],
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


def pack(loads: dict[str, float], load: float, target: float) -> list[list[str]]:
    """This node's markets on nodes: the first stays here, the others are new. The busiest
    markets that fit are moved to a new node until what stays is under `target`, then to
    another while it is not (so the fewest markets move); a market that fits nowhere stays."""
    stays = sorted(loads, key=lambda market: (-loads[market], market))
    nodes: list[list[str]] = []
    while sum(loads[m] for m in stays) * load > target:
        node: list[str] = []
        for market in list(stays):
            if sum(loads[m] for m in stays) * load <= target:
                break
            if (sum(loads[m] for m in node) + loads[market]) * load <= target:
                node.append(market)
                stays.remove(market)
        if not node:
            break
        nodes.append(node)
    return [stays, *nodes]


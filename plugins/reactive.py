"""Reactive scaling, Kubernetes HPA style: for each metric of a resource,
desired = ceil(current x observed / target); the largest wins; nothing changes while every
ratio is within the tolerance band; min/max clamps. The node applies the stabilization window
(a scale-down only once the highest advice of the last 300 s allows it).

The resource is the number of nodes: the matching thread is single-threaded by design, so when
it saturates the answer is another node (the sharding policy says which markets to move), not
more cores. Observed values are means over `average_s`, so one busy second is no signal.
"""

from __future__ import annotations

import math

from .hookspecs import declare_settings, hookimpl, settings_of
from .recommendation import Recommendation
from .series import mean, missing, stale, window

NAME = "reactive"
DEFAULTS = {
    "current_nodes": 1,
    "min_nodes": 1,
    "max_nodes": 8,
    "target_busy": 0.7,
    "target_ack_p99_ms": 50.0,
    "tolerance": 0.1,
    "average_s": 10,
    "stale_s": 5.0,
}
METRICS = (("matching_busy", "target_busy"), ("ack_ms.p99", "target_ack_p99_ms"))


scaling_settings = declare_settings("scaling_settings", NAME, DEFAULTS)


@hookimpl
def recommend_scaling(history: list[dict], settings: dict, now: float) -> list[Recommendation]:
    option = settings_of(settings, NAME, DEFAULTS)
    current = option["current_nodes"]
    found = []
    best: tuple[int, float, str, float, int] | None = None
    for metric, target_key in METRICS:
        points = window(history, metric, now, option["average_s"])
        if stale(points, now, option["stale_s"]):
            found.append(missing(NAME, "nodes", metric, option["stale_s"]))
            continue
        observed = mean(points)
        ratio = observed / option[target_key]
        within_band = abs(ratio - 1) <= option["tolerance"]
        desired = current if within_band else math.ceil(current * ratio)
        desired = max(option["min_nodes"], min(option["max_nodes"], desired))
        if best is None or desired > best[0]:
            best = (desired, ratio, metric, observed, len(points))
    if best is None or best[0] == current:
        return found
    desired, ratio, metric, observed, samples = best
    if found and desired < current:
        return found  # a metric is missing: it might be the one that needs the nodes
    up = desired > current
    found.append(
        Recommendation(
            policy=NAME,
            action="scale_up" if up else "scale_down",
            resource="nodes",
            current=current,
            desired=desired,
            metric=metric,
            ratio=round(ratio, 3),
            confidence=round(min(1.0, samples / option["average_s"]), 2),
            reason=(
                f"{metric} averaged {observed:.3g} over {option['average_s']} s, "
                f"{ratio:.2f}x its target: {desired} nodes instead of {current}"
            ),
        )
    )
    return found

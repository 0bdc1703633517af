"""Reactive scaling, Kubernetes HPA style, for the number of nodes: desired =
ceil(current x observed / target) for each metric; the largest wins; nothing changes while
every ratio is within the tolerance band; min/max clamps. The node applies the stabilization
window (plugins advise, node/ops/scaling.py holds).

The resource is the number of nodes: the matching thread is single-threaded by design, so when
it saturates the answer is another node (the sharding policy says which markets to move), not
more cores.

What makes the advice hold on load it was not tuned on:

- The load is the offered one (`offered_load`: what arrived against what the matching thread
  can serve, node/ops/sampler.py), not the busy share, which stops at 1.0: past saturation the
  busy share says "one more node" however many are needed, the offered load says how many.
- A breach must be sustained, as HPA's minutes of averaging and KEDA's polling make it: the
  low quantile (`LOW_QUANTILE`) of the last `sustain_s` seconds' readings, at least two, must be
  out of the band, so a spike of a few seconds is no breach whatever its height, while a flash
  crowd is seen `sustain_s` after it starts. The count is taken from the median of those
  readings.
- A ramp is advised before it crosses: the slope of the last `trend_s` seconds (Theil-Sen over
  bucket levels, so spikes and jitter do not tilt it) projected `lead_s` ahead; once the load
  is at `trend_floor` of the target or more and the projection reaches the target, a scale-up
  to the projected count is advised. `lead_s` is the time a node takes to be asked for, started
  and given its markets: advice later than that is advice too late.
- `current` is the real node count (`node_count`), for this and every other policy.
"""

from __future__ import annotations

import math
from typing import Any

from .hookspecs import declare_settings, hookimpl, settings_of
from .recommendation import Recommendation
from .series import lookup, missing, stale, window

NAME = "reactive"
DEFAULTS = {
    "current_nodes": 1,
    "min_nodes": 1,
    "max_nodes": 8,
    "target_busy": 0.7,
    "target_ack_p99_ms": 50.0,
    "tolerance": 0.1,
    "sustain_s": 10,
    "trend_s": 240,
    "lead_s": 240,
    "trend_floor": 0.6,
    "stale_s": 5.0,
}
LOW_QUANTILE = 0.2
"""A breach holds when four readings in five of the sustained window are out of the band: one
low reading in a real surge does not delay it a whole window, a spike is never enough."""
BUCKET_S = 10
"""The trend is fitted to the levels of buckets this many seconds long, so a spike of a few
seconds moves at most one bucket, an outlier Theil-Sen ignores."""
RISE_OVER_NOISE = 4.0
"""A trend counts when the rise it makes over its window is this many times the spread of the
buckets around it: a load that wanders has a slope too, but no rise standing clear of its
scatter."""
LOAD = "offered_load"


scaling_settings = declare_settings("scaling_settings", NAME, DEFAULTS)


def node_count(history: list[dict], settings: dict) -> int:
    """The deployment's node count: the newest sample's `nodes` when the samples carry it (an
    orchestrator that knows), else `[scaling.reactive] current_nodes`. Every policy advising on
    nodes, and the node's stabilization, read it here, so none assumes one node."""
    if history:
        nodes = history[-1].get("nodes")
        if isinstance(nodes, int | float) and nodes >= 1:
            return int(nodes)
    return int(settings_of(settings, NAME, DEFAULTS)["current_nodes"])


def node_bounds(settings: dict) -> tuple[int, int]:
    """The deployment's least and most nodes (`[scaling.reactive]` min_nodes, max_nodes)."""
    option = settings_of(settings, NAME, DEFAULTS)
    return option["min_nodes"], option["max_nodes"]


def offered_load(sample: dict) -> float | None:
    """The busy share the matching thread would need to serve everything that arrived; above
    1.0 past saturation. From `offered_load`, else `arrivals_per_s` over `capacity_per_s`, else
    (samples from before the sampler reported them) the busy share."""
    value = sample.get(LOAD)
    if isinstance(value, int | float):
        return float(value)
    arrivals, capacity = lookup(sample, "arrivals_per_s"), lookup(sample, "capacity_per_s")
    if arrivals is not None and capacity:
        return arrivals / capacity
    return lookup(sample, "matching_busy")


def load_points(history: list[dict], now: float, span_s: float) -> list[tuple[float, float]]:
    """(time, offered load) over the last `span_s` seconds, oldest first."""
    points = []
    for sample in reversed(history):
        if sample["time"] < now - span_s:
            break
        value = offered_load(sample)
        if value is not None:
            points.append((sample["time"], value))
    points.reverse()
    return points


def quantile(values: list[float], share: float) -> float:
    """The `share` quantile of `values` (linear between the nearest ranks)."""
    ordered = sorted(values)
    rank = share * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def sustained(points: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    """(low quantile, median, high quantile) of a sustained window's readings; None with fewer
    than two readings (one reading is a moment, not a breach)."""
    if len(points) < 2:
        return None
    values = [value for _, value in points]
    return quantile(values, LOW_QUANTILE), quantile(values, 0.5), quantile(values, 1 - LOW_QUANTILE)


def theil_sen(points: list[tuple[float, float]]) -> float:
    """The median of the pairwise slopes: a few wild readings cannot tilt it."""
    slopes = [
        (v2 - v1) / (t2 - t1)
        for index, (t1, v1) in enumerate(points)
        for t2, v2 in points[index + 1 :]
        if t2 > t1
    ]
    return quantile(slopes, 0.5) if slopes else 0.0


def bucket_levels(points: list[tuple[float, float]], bucket_s: float) -> list[tuple[float, float]]:
    """(bucket middle, lower quartile) per `bucket_s` seconds of `points`: spikes only go up,
    so a bucket's lower quartile is its level with a spike or two in it as well as without."""
    buckets: dict[int, list[float]] = {}
    for time_s, value in points:
        buckets.setdefault(int(time_s // bucket_s), []).append(value)
    return [((key + 0.5) * bucket_s, quantile(buckets[key], 0.25)) for key in sorted(buckets)]


def trend(history: list[dict], now: float, span_s: float) -> tuple[float, float] | None:
    """(level now, slope per second) of the offered load over the last `span_s` seconds, from
    bucket levels; None until the readings span most of it."""
    buckets = bucket_levels(load_points(history, now, span_s), BUCKET_S)
    if len(buckets) < 4 or buckets[-1][0] - buckets[0][0] < span_s * 0.75:
        return None
    slope = theil_sen(buckets)
    # the level at now: the line through the buckets' median residual, not one bucket's value
    residuals = [value - slope * time_s for time_s, value in buckets]
    offset = quantile(residuals, 0.5)
    spread = 1.4826 * quantile([abs(r - offset) for r in residuals], 0.5)
    if slope * span_s < RISE_OVER_NOISE * spread:
        return offset + slope * now, 0.0  # a wander within the noise, not a ramp
    return offset + slope * now, slope


@hookimpl
def recommend_scaling(history: list[dict], settings: dict, now: float) -> list[Recommendation]:
    option = settings_of(settings, NAME, DEFAULTS)
    current = node_count(history, settings)
    found: list[Recommendation] = []
    wanted: list[tuple[int, Recommendation | None]] = []
    for metric, target_key in ((LOAD, "target_busy"), ("ack_ms.p99", "target_ack_p99_ms")):
        if metric == LOAD:
            points = load_points(history, now, option["sustain_s"])
        else:
            points = window(history, metric, now, option["sustain_s"])
        if stale(points, now, option["stale_s"]):
            found.append(missing(NAME, "nodes", metric, option["stale_s"]))
            continue
        desired, advice = _level_advice(points, metric, option[target_key], current, option)
        if metric == LOAD and desired <= current:
            rising = _trend_advice(history, now, current, option)
            if rising is not None:
                desired, advice = int(rising.desired or current), rising
        wanted.append((desired, advice))
    if not wanted:
        return found
    desired, advice = max(wanted, key=lambda item: item[0])
    if advice is None or desired == current or (desired < current and found):
        return found  # nothing to change, or a metric is missing that might need the nodes
    return [*found, advice]


def _level_advice(
    points: list[tuple[float, float]], metric: str, target: float, current: int, option: dict
) -> tuple[int, Recommendation | None]:
    """The count a sustained breach of the band asks for, with its advice; the current count
    and None within the band or with too few readings to say."""
    levels = sustained(points)
    if levels is None:
        return current, None
    low, middle, _ = levels
    tolerance = option["tolerance"]
    if low / target <= 1 + tolerance and middle / target >= 1 - tolerance:
        return current, None  # within the band (a spike neither raises nor holds the count)
    observed = middle
    desired = _clamped(math.ceil(current * observed / target - 1e-9), option)
    if desired == current:
        return current, None
    return desired, _advice(
        current, desired, metric, observed / target, min(1.0, len(points) / 2),
        f"{metric} held at {observed:.3g} over the last {option['sustain_s']:g} s "
        f"({len(points)} readings), {observed / target:.2f}x its target",
    )  # fmt: skip


def _trend_advice(
    history: list[dict], now: float, current: int, option: dict
) -> Recommendation | None:
    """A scale-up before a ramp crosses the target: the trend projected `lead_s` ahead."""
    found = trend(history, now, option["trend_s"])
    target = option["target_busy"]
    if found is None:
        return None
    level, slope = found
    if slope <= 0 or level < option["trend_floor"] * target:
        return None
    projected = level + slope * option["lead_s"]
    if projected < target:
        return None
    desired = _clamped(max(current + 1, math.ceil(current * projected / target - 1e-9)), option)
    if desired <= current:
        return None
    seconds = max(0.0, (target - level) / slope)
    return _advice(
        current, desired, LOAD, level / target, 0.7,
        f"{LOAD} at {level:.3g} and rising {slope * 60:.3g} a minute: at its target "
        f"{target:g} in about {seconds:.0f} s, {projected:.3g} in {option['lead_s']:g} s",
        {"trend_per_s": round(slope, 6), "seconds_to_target": round(seconds),
         "projected": round(projected, 4)},
    )  # fmt: skip


def _clamped(desired: int, option: dict) -> int:
    return max(option["min_nodes"], min(option["max_nodes"], desired))



def _advice(
    current: int,
    desired: int,
    metric: str,
    ratio: float,
    confidence: float,
    evidence: str,
    details: dict[str, Any] | None = None,
) -> Recommendation:
    return Recommendation(
        policy=NAME,
        action="scale_up" if desired > current else "scale_down",
        resource="nodes",
        current=current,
        desired=desired,
        metric=metric,
        ratio=round(ratio, 3),
        confidence=round(confidence, 2),
        reason=f"{evidence}: {desired} nodes instead of {current}",
        details=details or {},
    )

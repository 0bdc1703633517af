"""Capacity: how long until the disk or the LMDB map is full at the current growth rate, and
how much memory is left.

The rate is the Theil-Sen slope (the median of the pairwise slopes, over medians of
`BUCKETS` buckets) of the last `trend_s` seconds, once readings cover `min_trend_s`, so neither
noise nor a few wild readings move it, and a burst much shorter than the window hardly does. A
warning is given while the time left falls under `warn_within_s` and the filling goes on. When
the later half of the last `stopped_s` seconds of readings (longer if their noise, from the
median absolute second difference of the window, which a steady rate or a burst leaves at zero,
could hide it) is up on the earlier half by less than half what the rate says, in medians, the
writes have stopped: a burst that stopped warns
no more `stopped_s` later, not a trend window later.
"""

from __future__ import annotations

import math

from .hookspecs import declare_settings, hookimpl, settings_of
from .recommendation import Recommendation
from .series import latest, missing, stale, window

NAME = "capacity"
DEFAULTS = {
    "trend_s": 1800,
    "min_trend_s": 300,
    "stopped_s": 30,
    "warn_within_s": 21600,
    "max_memory_percent": 90.0,
    "stale_s": 5.0,
}


scaling_settings = declare_settings("scaling_settings", NAME, DEFAULTS)


@hookimpl
def recommend_scaling(history: list[dict], settings: dict, now: float) -> list[Recommendation]:
    option = settings_of(settings, NAME, DEFAULTS)
    found = []
    for resource, metric, limit in (
        ("disk", "host.disk_free_bytes", None),
        ("lmdb_map", "lmdb_used_bytes", "lmdb_map_bytes"),
    ):
        advice = _time_to_full(history, now, option, resource, metric, limit)
        if advice is not None:
            found.append(advice)
    memory = latest(history, "host.memory_percent", now, option["stale_s"])
    if memory is None:
        found.append(missing(NAME, "memory", "host.memory_percent", option["stale_s"]))
    elif memory > option["max_memory_percent"]:
        found.append(
            Recommendation(
                policy=NAME,
                action="warn",
                resource="memory",
                current=memory,
                desired=option["max_memory_percent"],
                metric="host.memory_percent",
                ratio=round(memory / option["max_memory_percent"], 3),
                confidence=1.0,
                reason=f"memory {memory:.0f}% used (limit {option['max_memory_percent']:.0f}%)",
            )
        )
    return found


def _time_to_full(
    history: list[dict], now: float, option: dict, resource: str, metric: str, limit: str | None
) -> Recommendation | None:
    """With no `limit`, `metric` is the room left, falling toward zero (free disk); with one,
    `metric` is the room used, rising toward `limit` (LMDB pages toward the map size)."""
    points = window(history, metric, now, option["trend_s"])
    if stale(points, now, option["stale_s"]):
        return missing(NAME, resource, metric, option["stale_s"])
    if len(points) < 3 or points[-1][0] - points[0][0] < option["min_trend_s"]:
        return None
    sign = -1.0 if limit is None else 1.0  # growth is the filling direction
    filling = [(t, sign * v) for t, v in points]
    growth = _robust_slope(filling, option["trend_s"])
    if growth <= 0 or _stopped(filling, growth, option["stopped_s"]):
        return None
    if limit is None:
        left = points[-1][1]
    else:
        size = latest(history, limit, now, option["stale_s"]) or 0.0
        left = size - points[-1][1]
    seconds = max(0.0, left) / growth
    if seconds > option["warn_within_s"]:
        return None
    what = "the disk of the home" if resource == "disk" else "the LMDB map (it is grown then)"
    return Recommendation(
        policy=NAME,
        action="warn",
        resource=resource,
        current=round(left),
        desired=None,
        metric=metric,
        ratio=round(option["warn_within_s"] / max(seconds, 1.0), 3),
        confidence=round(min(1.0, (points[-1][0] - points[0][0]) / option["trend_s"]), 2),
        reason=(
            f"{what} is full {_time_left(seconds)} at the current rate "
            f"({growth / 1e6:.2f} MB/s)"
        ),
        details={"seconds_to_full": round(seconds), "bytes_per_s": round(growth)},
    )


BUCKETS = 30
"""Buckets a window's readings are reduced to (their medians) before the Theil-Sen slope:
enough to be robust, few enough pairs to be cheap in the node's process each evaluation."""


def _robust_slope(points: list[tuple[float, float]], span_s: float) -> float:
    """Theil-Sen slope of value against time over medians of `BUCKETS` buckets of `span_s`."""
    width = span_s / BUCKETS
    buckets: dict[int, list[tuple[float, float]]] = {}
    for point in points:
        buckets.setdefault(int(point[0] // width), []).append(point)
    reduced = [(_median([t for t, _ in b]), _median([v for _, v in b])) for b in buckets.values()]
    slopes = [
        (v2 - v1) / (t2 - t1)
        for index, (t1, v1) in enumerate(reduced)
        for t2, v2 in reduced[index + 1 :]
        if t2 != t1
    ]
    return _median(slopes) if slopes else 0.0


def _stopped(filling: list[tuple[float, float]], growth: float, stopped_s: float) -> bool:
    """Whether the latest readings grew by less than half what the trend's rate says: the
    median of the later half of the last `stopped_s` seconds against the earlier half's, or
    of a longer stretch while the readings' noise could hide that half (the expected growth
    must stand `STOP_OVER_NOISE` deviations of the two medians' difference clear of zero)."""
    # second differences: zero along any steady rate, so the burst itself is no noise
    bends = [
        c[1] - 2 * b[1] + a[1] for a, b, c in zip(filling, filling[1:], filling[2:], strict=False)
    ]
    noise = 1.4826 * _median([abs(bend) for bend in bends]) / math.sqrt(3) if bends else 0.0
    for count in range(4, len(filling) + 1):
        recent = filling[-count:]
        half = count // 2
        earlier, later = recent[:half], recent[-half:]
        span = _median([t for t, _ in later]) - _median([t for t, _ in earlier])
        expected = growth * span
        # the median of `half` readings deviates about 1.25 / sqrt(half) as much as one does
        if recent[-1][0] - recent[0][0] >= stopped_s and (
            expected >= STOP_OVER_NOISE * noise * 1.25 / math.sqrt(half)
        ):
            grew = _median([v for _, v in later]) - _median([v for _, v in earlier])
            return grew < expected / 2
    return False


STOP_OVER_NOISE = 8.0
"""Half the expected growth is then 4 deviations from both the growth and no growth: a steady
fill is taken for stopped, or a stopped one for going on, about once in 30,000 evaluations."""


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _time_left(seconds: float) -> str:
    """When it fills, in words a person reads at a glance: minutes under an hour, since an
    hour's tenth ("0.0 h") says nothing of a few minutes left."""
    if seconds < 60:
        return "in under a minute"
    if seconds < 3600:
        return f"in about {round(seconds / 60)} min"
    return f"in about {seconds / 3600:.1f} h"

"""Capacity: how long until the disk or the LMDB map is full at the current growth rate, and
how much memory is left. The rate is the slope of a least-squares line over the last
`trend_s` seconds, so noise in single readings does not raise alarms; it must show over the last
`min_trend_s` seconds too, so a burst of writes that has stopped (a step, not a trend) raises
none. A warning is given when the time left falls under `warn_within_s`."""

from __future__ import annotations

from .hookspecs import declare_settings, hookimpl, settings_of
from .recommendation import Recommendation
from .series import latest, missing, stale, window

NAME = "capacity"
DEFAULTS = {
    "trend_s": 1800,
    "min_trend_s": 300,
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
    recent = [point for point in points if point[0] >= points[-1][0] - option["min_trend_s"]]
    slope = _slope(points)
    recent_slope = _slope(recent) if len(recent) >= 3 else 0.0
    # the slower of the two rates (in the direction that fills), so both must show it
    slope = min(slope, recent_slope) if limit is not None else max(slope, recent_slope)
    if limit is None:
        left, growth = points[-1][1], -slope
    else:
        size = latest(history, limit, now, option["stale_s"]) or 0.0
        left, growth = size - points[-1][1], slope
    if growth <= 0:
        return None
    seconds = left / growth
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


def _time_left(seconds: float) -> str:
    """When it fills, in words a person reads at a glance: minutes under an hour, since an
    hour's tenth ("0.0 h") says nothing of a few minutes left."""
    if seconds < 60:
        return "in under a minute"
    if seconds < 3600:
        return f"in about {round(seconds / 60)} min"
    return f"in about {seconds / 3600:.1f} h"


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of value against time."""
    count = len(points)
    mean_t = sum(t for t, _ in points) / count
    mean_v = sum(v for _, v in points) / count
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if not spread:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread

"""Reading metric series out of the node's samples, for the scaling policies."""

from __future__ import annotations

from typing import Any

from .recommendation import Recommendation

Sample = dict[str, Any]


def lookup(sample: Sample, path: str) -> float | None:
    """A number in a sample by its dotted path ("ack_ms.p99", "host.disk_free_bytes")."""
    value: Any = sample
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


def window(
    history: list[Sample], path: str, now: float, span_s: float
) -> list[tuple[float, float]]:
    """(time, value) of the metric over the last `span_s` seconds, where it was measured."""
    points = []
    for sample in reversed(history):
        if sample["time"] < now - span_s:
            break
        value = lookup(sample, path)
        if value is not None:
            points.append((sample["time"], value))
    points.reverse()
    return points


def stale(points: list[tuple[float, float]], now: float, stale_s: float) -> bool:
    """No reading in `points` (a `window`), or none in the last `stale_s` seconds."""
    return not points or now - points[-1][0] > stale_s


def latest(history: list[Sample], path: str, now: float, stale_s: float) -> float | None:
    """The metric's newest value, or None when it is missing or older than `stale_s`."""
    if not history or now - history[-1]["time"] > stale_s:
        return None
    return lookup(history[-1], path)


def missing(policy: str, resource: str, metric: str, stale_s: float) -> Recommendation:
    return Recommendation(
        policy=policy,
        action="missing",
        resource=resource,
        current=None,
        desired=None,
        metric=metric,
        ratio=None,
        confidence=0.0,
        reason=f"no value of {metric} in the last {stale_s:g} s: nothing is advised on it",
    )


def mean(points: list[tuple[float, float]]) -> float:
    return sum(value for _, value in points) / len(points)

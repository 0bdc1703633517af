"""Reading metric series out of the node's samples, for the scaling policies."""

from __future__ import annotations

import functools
from typing import Any

from .recommendation import Recommendation

Sample = dict[str, Any]


@functools.lru_cache(maxsize=256)
def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _number(sample: Sample, parts: tuple[str, ...]) -> float | None:
    value: Any = sample
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return float(value) if isinstance(value, int | float) else None


def lookup(sample: Sample, path: str) -> float | None:
    """A number in a sample by its dotted path ("ack_ms.p99", "host.disk_free_bytes")."""
    return _number(sample, _parts(path))


def window(
    history: list[Sample], path: str, now: float, span_s: float
) -> list[tuple[float, float]]:
    """(time, value) of the metric over the last `span_s` seconds, where it was measured.
    Policies ask for windows of a day's samples every evaluation: the path is split once."""
    parts, since = _parts(path), now - span_s
    points = []
    for sample in reversed(history):
        moment = sample["time"]
        if moment < since:
            break
        value = _number(sample, parts)
        if value is not None:
            points.append((moment, value))
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

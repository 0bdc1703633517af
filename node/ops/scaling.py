"""Scaling: every policy plugin's advice, stabilized, with since when each piece holds.

Policies are plugins of the `marketnode.scaling` entry point group, the only group the node's
process loads (plugins/host.py), and stateless (plugins/hookspecs.py `recommend_scaling`). The
Scaler keeps what makes advice steady, Kubernetes HPA style: every evaluation's count is kept
for `stabilization_s` seconds, "stay at the current count" included when a policy advises
nothing, and the count advised is the highest of them. So a scale-up is given at once and held
for the window, a scale-down comes only after a whole window of lower advice, and direction
changes at most once per window. Warnings are held for a few seconds against a missed reading;
other advice that is no longer given disappears. New advice goes to the
`act_on_recommendation` hook, except forecast-only advice. A policy that raises is logged and
left out; the others still advise.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from marketnode.plugins.host import SCALING, plugin_host
from marketnode.plugins.reactive import node_count, offered_load
from marketnode.plugins.recommendation import Recommendation
from marketnode.plugins.settings import settings_in_effect

from ..home.config import ScalingConfig
from ..protocol.messages import SCALING_TOPIC


def policy_settings(
    config: ScalingConfig, source: str = "config.toml"
) -> dict[str, dict[str, Any]]:
    """Every installed policy's settings: its declared defaults under `[scaling.NAME]`."""
    return settings_in_effect(SCALING, config.policies, source)


HOLDING = "; holding "
SCALE_ACTIONS = ("scale_up", "scale_down")
WARNING_HOLD_S = 20.0
"""A warning no longer given is kept this long: it bridges a reading that missed, and is short
enough that a warning about a burst that stopped ends within a minute (plugins/capacity.py
sees the stop within 30 s)."""


class Scaler:
    """Turns each moment's raw advice into the current, stabilized recommendations.

    Kubernetes HPA's stabilization: every evaluation's recommendation of each (policy,
    resource) is kept for `stabilization_s`, including "stay at the current count" when the
    policy advises nothing, and the count advised is the highest of them. A scale-up is given at
    once (and held for the window); a scale-down only once a whole window, counted from the
    first evaluation, asked for less; so advice changes direction at most once a window."""

    def __init__(self, settings: dict[str, dict[str, Any]], stabilization_s: float) -> None:
        self.settings = settings
        self.stabilization_s = stabilization_s
        self.plugins = plugin_host(SCALING)
        self.started: float | None = None
        self.evaluated: float | None = None
        """The previous evaluation's time."""
        self.asked: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        """(policy, resource) -> (time, desired) of every evaluation in the window."""
        self.last_asked: dict[tuple[str, str], Recommendation] = {}
        """The latest raw scale advice of each key: what a held scale-up is shown as."""
        self.warned: dict[tuple[str, str], tuple[float, Recommendation]] = {}
        """(policy, resource) -> when a warning was last given, and it."""
        self.current: list[Recommendation] = []
        self.outlook: dict[str, Any] | None = None
        """The latest load forecast against its target (`forecast_load`), for the dashboard."""

    def update(self, history: list[dict], now: float) -> list[Recommendation]:
        if self.started is None:
            self.started = now
        given = {"history": history, "settings": self.settings, "now": now}
        raw = [
            item
            for found in self.plugins.call_each("recommend_scaling", **given)
            for item in found
        ]
        self.outlook = self.plugins.call_each("forecast_load", **given)
        advice = [item for item in raw if item.action not in (*SCALE_ACTIONS, "warn")]
        advice += self._stabilized(raw, node_count(history, self.settings), now)
        advice += self._warnings(raw, now)
        self.evaluated = now
        previous = {(r.policy, r.resource, r.action): r for r in self.current}
        for item in advice:
            before = previous.get((item.policy, item.resource, item.action))
            item.since = before.since if before is not None else now
            if (
                before is None
                and item.action != "missing"
                and not item.details.get("forecast_only")
            ):
                self.plugins.call_each("act_on_recommendation", recommendation=item)
        self.current = sorted(advice, key=lambda r: (r.resource, r.policy, r.action))
        return self.current

    def _stabilized(
        self, raw: list[Recommendation], nodes: int, now: float
    ) -> list[Recommendation]:
        """Each key's advice from the highest count of its window, "stay" counted."""
        asked = {item.key: item for item in raw if item.action in SCALE_ACTIONS}
        advice = []
        for key in {*self.asked, *asked}:
            item = asked.get(key)
            if item is not None:
                self.last_asked[key] = item
            template = self.last_asked[key]
            current = nodes if key[1] == "nodes" else (template.current or 0)
            window = self.asked.get(key)
            if window is None:  # advised nothing since the first evaluation: it stayed
                stayed = [(self.started or now, current), (self.evaluated or now, current)]
                window = self.asked[key] = deque(stayed)
            window.append((now, item.desired if item is not None else current))
            while window[0][0] < now - self.stabilization_s:
                window.popleft()
            highest = max(desired for _, desired in window)
            if highest != current:
                advice.append(self._holding(template, current, highest, held=item is None))
        return advice

    def _holding(
        self, item: Recommendation, current: float, highest: float, held: bool
    ) -> Recommendation:
        """`item` advising `highest`, the count its window holds, from `current` (`held`: the
        policy no longer asks for it)."""
        if not held and item.current == current and item.desired == highest:
            return item
        reason = item.reason.split(HOLDING)[0]
        if held or item.desired != highest:
            window = f"{self.stabilization_s:g} s stabilization window"
            reason += f"{HOLDING}{highest:g} for the {window}"
        return Recommendation(
            policy=item.policy,
            action="scale_up" if highest > current else "scale_down",
            resource=item.resource,
            current=current,
            desired=highest,
            metric=item.metric,
            ratio=item.ratio,
            confidence=item.confidence,
            reason=reason,
            details=item.details,
        )

    def _warnings(self, raw: list[Recommendation], now: float) -> list[Recommendation]:
        """This moment's warnings, and those given within the last `WARNING_HOLD_S`."""
        for item in raw:
            if item.action == "warn":
                self.warned[item.key] = (now, item)
        for key, (given, _) in list(self.warned.items()):
            if given < now - WARNING_HOLD_S:
                del self.warned[key]
        return [item for _, item in self.warned.values()]


class ScalingListener:
    """Asks the Scaler every `interval_s` from the metrics sampler's thread; publishes the
    recommendations (market-data topic `scaling.`) whenever they change.

    The sampler keeps an hour of seconds; the policies also get minute means of the fields they
    read for the last `MINUTES_KEPT` minutes before that, so the predictive policy sees whole
    days (its daily seasonality) on a node that has run that long."""

    MINUTES_KEPT = 3 * 1440

    def __init__(self, scaler: Scaler, history: Any, post: Any, interval_s: float) -> None:
        self.scaler = scaler
        self.history = history
        self.post = post
        self.interval_s = interval_s
        self.due = 0.0
        self.published: list[tuple] = []
        self.minutes: deque[dict] = deque(maxlen=self.MINUTES_KEPT)
        self.minute: list[dict] = []
        self.seeded: list[dict] | None = None

    def __call__(self, sample: dict) -> None:
        if self.seeded is not None:
            self._take_seed()
        self._keep_minutes(sample)
        now = sample["time"]
        if now < self.due:
            return
        self.due = now + self.interval_s
        seconds = list(self.history)
        oldest = seconds[0]["time"] if seconds else now
        history = [m for m in self.minutes if m["time"] < oldest] + seconds
        current = self.scaler.update(history, now)
        shown = [(r.policy, r.resource, r.action, r.desired) for r in current]
        if shown != self.published:
            self.published = shown
            self.post(
                "publish",
                topic=SCALING_TOPIC,
                payload=msgspec.msgpack.encode(
                    {"time": now, "recommendations": [msgspec.to_builtins(r) for r in current]}
                ),
            )

    def seed(self, minutes: list[dict]) -> None:
        """Minutes from before this run (the analytics store's rollups), oldest first; taken
        in at the next sample, in the sampler's thread, before what this run has kept."""
        self.seeded = minutes

    def _take_seed(self) -> None:
        minutes, self.seeded = self.seeded, None
        first = self.minutes[0]["time"] if self.minutes else float("inf")
        for minute in reversed([m for m in minutes or [] if m["time"] < first]):
            self.minutes.appendleft(minute)

    def _keep_minutes(self, sample: dict) -> None:
        if self.minute and int(sample["time"] // 60) != int(self.minute[0]["time"] // 60):
            self.minutes.append(minute_mean(self.minute))
            self.minute = []
        self.minute.append(sample)


def minute_mean(samples: list[dict]) -> dict:
    """One sample standing for a minute: the mean of what the policies read."""
    count = len(samples)

    def mean_of(read: Any) -> float | None:
        values = [v for v in (read(s) for s in samples) if v is not None]
        return sum(values) / len(values) if values else None

    markets = {
        market: {"orders_per_s": mean_of(lambda s, m=market: s["markets"].get(m, {}).get(
            "orders_per_s"))}
        for market in samples[-1]["markets"]
    }  # fmt: skip
    last = samples[-1]
    return {
        "time": samples[0]["time"] // 60 * 60,
        "samples": count,
        "matching_busy": mean_of(lambda s: s["matching_busy"]),
        "offered_load": mean_of(offered_load),
        "orders_per_s": mean_of(lambda s: s["orders_per_s"]),
        "ack_ms": {"p99": mean_of(lambda s: s["ack_ms"]["p99"])},
        "markets": markets,
        "lmdb_used_bytes": last["lmdb_used_bytes"],
        "lmdb_map_bytes": last["lmdb_map_bytes"],
        "host": {
            "disk_free_bytes": last["host"]["disk_free_bytes"],
            "memory_percent": mean_of(lambda s: s["host"]["memory_percent"]),
        },
    }


HISTORY_QUERY = """
SELECT epoch(time) AS minute,
       max(mean) FILTER (WHERE metric = 'matching_busy' AND market = '') AS busy,
       max(mean) FILTER (WHERE metric = 'orders_per_s' AND market = '') AS orders,
       max(mean) FILTER (WHERE metric = 'ack_p99_ms' AND market = '') AS ack_p99,
       max(mean) FILTER (WHERE metric = 'lmdb_used_bytes' AND market = '') AS lmdb_used,
       max(mean) FILTER (WHERE metric = 'disk_free_bytes' AND market = '') AS disk_free,
       max(mean) FILTER (WHERE metric = 'memory_percent' AND market = '') AS memory
FROM metrics
WHERE time > now() - INTERVAL 3 DAY
GROUP BY time ORDER BY time
"""
"""The minute rollups of the last three days, one row a minute: what a restarted node's
policies start from (the predictive one needs days for its daily seasonality)."""


def minutes_from_rollups(rows: list[list]) -> list[dict]:
    """HISTORY_QUERY's rows as minute samples (ScalingListener.minutes), oldest first."""
    return [
        {
            "time": float(minute),
            "matching_busy": busy,
            "orders_per_s": orders,
            "ack_ms": {"p99": ack_p99},
            "markets": {},
            "lmdb_used_bytes": lmdb_used,
            "lmdb_map_bytes": None,
            "host": {"disk_free_bytes": disk_free, "memory_percent": memory},
        }
        for minute, busy, orders, ack_p99, lmdb_used, disk_free, memory in rows
    ]

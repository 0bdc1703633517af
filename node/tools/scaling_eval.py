"""`mnode scale eval`: the scaling policies replayed over synthetic traces, scored per goal as
the worst case over seeds.

The traces (scaling_traces.py) are drawn per seed: steady loads with jitter and spikes, linear
and exponential ramps, flash crowds and steps on 1-5 nodes, a hot market past saturation, a
swinging load, three days of a working-day shape with a weekend day, a disk filling and a
burst of writes. The Scaler, with its stabilization window, is asked every `interval_s` of
trace time over the history a node keeps, exactly as beside a running node, and what it
advises is scored:

- `steady_false_alarms`, `noisy_steady_false_alarms`: scale-ups on steady loads up to 70% of
  the target (with spikes), none allowed; `steady_high_false_alarms` and
  `benign_ramp_false_alarms` (50-68%, a ramp that levels off under 70%) are shown beside;
- `ramp_lead_s` (linear and exponential ramps of 10 min or longer), `daily_lead_s`: how long
  the scale-up in force when the load crosses its target had been advised (>= 120 s);
- `flash_advice_s`: from a flash crowd to the first scale-up (<= 15 s); `spike_advised`;
- `advised_count_error`: how far the count advised is from the count that brings the load
  under the target (ceil(nodes x load / target)), once a step has settled: 30 s after a rise,
  a stabilization window after a fall (<= 1);
- `max_flaps_per_window`: direction changes within one stabilization window (<= 1);
  `scale_down_earliest_s`: the shortest time from the load last needing the current count
  (or the start) to a scale-down (>= the window);
- `disk_warning_lead_s` (>= 1 h before full), `disk_warning_gaps` (a warning that comes and
  goes), `burst_warning_outlives_s` (<= 60 s after a burst stops), `disk_false_scale_alarms`;
- the predictive policy's forecast error where it forecasts.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Any

from ..home.config import ScalingConfig
from ..ops.scaling import Scaler, policy_settings
from .scaling_traces import START, TARGET_BUSY, Trace, sample, scenarios

__all__ = ["START", "evaluate", "run", "sample"]

INTERVAL_S = 5.0
"""How often the node asks the Scaler (`[scaling] interval_s`)."""
SETTLE_S = 30.0
MAX_NODES = 8
SECONDS_KEPT = 3600.0
"""The sampler's hour of seconds; a trace of minutes stands for the rollups, kept three days."""


def run(trace: Trace, config: ScalingConfig) -> list[tuple[float, list]]:
    """The Scaler's advice at each evaluation: (seconds from the start, recommendations)."""
    policies = {**config.policies}
    policies["reactive"] = {**policies.get("reactive", {}), "current_nodes": trace.nodes}
    config = dataclasses.replace(config, policies=policies)
    scaler = Scaler(policy_settings(config), config.stabilization_s)
    history: deque[dict] = deque()
    kept = 3 * 86400 if trace.step_s >= 60 else SECONDS_KEPT
    advice = []
    due = 0.0
    for item in trace.samples:
        history.append(item)
        while history[0]["time"] < item["time"] - kept:
            history.popleft()
        now = item["time"] - START
        if now + 1e-9 < due:
            continue
        due = now + INTERVAL_S
        advice.append((now, list(scaler.update(list(history), item["time"]))))
    return advice


def evaluate(seed: int = 1, config: ScalingConfig | None = None, seeds: int = 1) -> dict:
    """Every scenario over `seeds` seeds from `seed`; each figure is the worst case."""
    config = config or ScalingConfig()
    window = config.stabilization_s
    worst: dict[str, list] = {}
    for each in range(seed, seed + seeds):
        for trace in scenarios(each):
            for key, value in score(trace, run(trace, config), window).items():
                worst.setdefault(key, []).append(value)
    report: dict[str, Any] = {"seed": seed, "seeds": seeds, "stabilization_s": window}
    for key, values in sorted(worst.items()):
        report[key] = _worst(key, values)
    report["targets_met"] = (
        report["steady_false_alarms"] == 0
        and report["noisy_steady_false_alarms"] == 0
        and (report["ramp_lead_s"] or -1) >= 120
        and (report["daily_lead_s"] or -1) >= 120
        and report["flash_advice_s"] is not None and report["flash_advice_s"] <= 15
        and report["advised_count_error"] <= 1
        and report["max_flaps_per_window"] <= 1
        and report["scale_down_earliest_s"] >= window
        and (report["disk_warning_lead_s"] or -1) >= 3600
        and report["burst_warning_outlives_s"] <= 60
    )  # fmt: skip
    return report


LOWEST_IS_WORST = ("lead_s", "earliest_s", "spike_advised")


def _worst(key: str, values: list) -> Any:
    """The worst of the seeds' figures: a missing one (None) is the worst of all."""
    if any(value is None for value in values):
        return None
    if key.endswith(LOWEST_IS_WORST):
        return min(values)
    return max(values)


def score(trace: Trace, advice: list[tuple[float, list]], window: float) -> dict[str, Any]:
    """The figures this trace's shape is scored on."""
    name = trace.scenario
    ups = [(t, any(r.action == "scale_up" for r in recs)) for t, recs in advice]
    found: dict[str, Any] = {
        "max_flaps_per_window": _max_flaps(advice, window),
        "advised_count_error": _count_error(trace, advice, window),
    }
    earliest = _earliest_scale_down(trace, advice)
    if earliest is not None:
        found["scale_down_earliest_s"] = earliest
    if name in ("steady", "noisy_steady", "steady_high", "benign_ramp"):
        found[f"{name}_false_alarms"] = len(_starts(ups))
    if name in ("ramp", "exponential_ramp"):
        long_enough = trace.changes[0] >= 600
        found["ramp_lead_s" if long_enough else "short_ramp_lead_s"] = _lead(trace, ups)
    if name == "daily":
        found["daily_lead_s"] = _lead(trace, ups, every_day=True)
    if name == "flash_crowd":
        onset = trace.changes[0]
        first = next((t for t, up in ups if up and t >= onset), None)
        found["flash_advice_s"] = None if first is None else round(first - onset, 1)
        found["spike_advised"] = first is not None
    if name.startswith("disk"):
        found["disk_false_scale_alarms"] = len(_starts(ups))
        found.update(_disk(trace, advice))
    errors = [
        r.details["forecast_error"]
        for _, recs in advice
        for r in recs
        if r.policy == "predictive" and r.details.get("forecast_error") is not None
    ]
    if errors:
        found[f"{name}_forecast_error"] = round(sum(errors) / len(errors), 4)
    return found


def _advised(recs: list, nodes: int) -> float:
    """The count in force: the highest scale-up, else the lowest scale-down, else no change."""
    up = [r.desired for r in recs if r.action == "scale_up"]
    down = [r.desired for r in recs if r.action == "scale_down"]
    return max(up) if up else min(down) if down else nodes


def _right(trace: Trace, t: float) -> int:
    """The fewest nodes that bring the load under the target."""
    needed = math.ceil(trace.nodes * trace.load(t) / TARGET_BUSY - 1e-9)
    return max(1, min(MAX_NODES, needed))


def _count_error(trace: Trace, advice: list[tuple[float, list]], window: float) -> float:
    """The largest gap between the count advised and the right one, once each level has
    settled (a stabilization window after a fall or after the start, 30 s after a rise); a
    ramp, a day or a swinging load, where the right count moves all the time, is scored by its
    lead or its flapping instead."""
    if trace.scenario in ("ramp", "benign_ramp", "exponential_ramp", "daily", "oscillating"):
        return 0
    edges = [0.0, *trace.changes]
    worst = 0.0
    for index, begin in enumerate(edges):
        end = edges[index + 1] if index + 1 < len(edges) else math.inf
        before = _right(trace, edges[index - 1]) if index else trace.nodes
        falls = _right(trace, begin) < before
        settled = begin + (window + SETTLE_S if falls else SETTLE_S)
        for t, recs in advice:
            if settled <= t < end:
                worst = max(worst, abs(_advised(recs, trace.nodes) - _right(trace, t)))
    return worst


def _earliest_scale_down(trace: Trace, advice: list[tuple[float, list]]) -> float | None:
    """The shortest time from the load last needing the current count (or from the start)
    to a scale-down coming into force; None when none came."""
    earliest = None
    last_needed = 0.0
    down_before = False
    for t, recs in advice:
        if _right(trace, t) >= trace.nodes:
            last_needed = t
        down = any(r.action == "scale_down" for r in recs)
        if down and not down_before:
            wait = t - last_needed
            earliest = wait if earliest is None else min(earliest, wait)
        down_before = down
    return earliest


def _lead(trace: Trace, ups: list[tuple[float, bool]], every_day: bool = False) -> float | None:
    """Seconds between the scale-up advice in force when the load crosses its target and the
    moment that advice began (every day's first crossing on a daily trace, the worst); None
    when a crossing found no advice in force."""
    crossings = []
    below = True
    day = -1
    for item in trace.samples:
        t = item["time"] - START
        over = item["load"] > TARGET_BUSY
        if over and below and (not every_day or int(t // 86400) != day):
            crossings.append(t)
            day = int(t // 86400)
        below = not over
    if not crossings:
        return None
    leads = []
    for crossing in crossings[: None if every_day else 1]:
        began = None
        for t, up in ups:
            if t > crossing:
                break
            began = (began if began is not None else t) if up else None
        if began is None:
            return None
        leads.append(crossing - began)
    return round(min(leads))


def _disk(trace: Trace, advice: list[tuple[float, list]]) -> dict[str, Any]:
    warned = [(t, any(r.resource == "disk" and r.action == "warn" for r in recs))
              for t, recs in advice]  # fmt: skip
    if trace.full_at is not None:
        first = next((t for t, on in warned if on), None)
        starts = _starts([(t, on) for t, on in warned if t < trace.full_at])
        return {
            "disk_warning_lead_s": None if first is None else round(trace.full_at - first),
            "disk_warning_gaps": max(0, len(starts) - 1),
        }
    end = trace.burst_ends[0]
    last = max((t for t, on in warned if on and t >= end), default=end)
    return {"burst_warning_outlives_s": round(last - end)}


def _starts(flags: list[tuple[float, Any]]) -> list[float]:
    """The moments a flag turns on."""
    starts = []
    before = False
    for t, on in flags:
        if on and not before:
            starts.append(t)
        before = bool(on)
    return starts


def _max_flaps(advice: list[tuple[float, list]], window_s: float) -> int:
    """Most direction changes of the advice within any one window."""
    changes = []
    direction = 0
    for t, recs in advice:
        now = 1 if any(r.action == "scale_up" for r in recs) else (
            -1 if any(r.action == "scale_down" for r in recs) else 0)  # fmt: skip
        if now and now != direction:
            if direction:
                changes.append(t)
            direction = now
    most = 0
    for index, start in enumerate(changes):
        most = max(most, sum(1 for t in changes[index:] if t < start + window_s))
    return most

"""`mnode scale eval`: the scaling policies replayed over synthetic traces.

Each trace is a sequence of node samples (the fields the policies read: the matching thread's
busy share, acknowledgement latency, per-market orders, free disk, LMDB map use, memory) at a
fixed step. The Scaler, with its stabilization window, is asked at every step, exactly as it is
beside a running node, and what it advises is scored:

- steady and noisy steady: any scale advice is a false alarm;
- ramp and daily cycle: lead time of the first scale-up before the busy share first crosses its
  target (on the daily trace, the crossing on the last day, once the model has seen the others);
- a drop spike: advice during it; a load swinging every two minutes on two nodes: direction
  changes (flapping) per stabilization window, over every trace;
- a disk slowly filling: lead time of the first disk warning before the disk is full;
- the predictive policy's own forecast error where it forecasts.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from ..home.config import ScalingConfig
from ..ops.scaling import Scaler, policy_settings

TARGET_BUSY = 0.7
START = 1_800_000_000.0
"""Traces start at a fixed epoch second (a multiple of a day would do; this one is midnight UTC
on 2027-01-15), so the daily cycle falls on the same hours in every run."""
MARKETS = {"PUNK-ETH": 0.5, "GOLD-USDC": 0.3, "LAND-ETH": 0.2}
DISK_TOTAL = 100e9


def sample(time_s: float, load: float, noise: float, disk_free: float = 60e9) -> dict[str, Any]:
    """A node sample measuring `load + noise` as the busy share; `load` itself is kept (under
    "load") to tell when the target is really breached, which no policy reads."""
    busy = max(0.0, min(1.0, load + noise))
    orders = busy * 60_000
    return {
        "time": time_s,
        "load": load,
        "matching_busy": busy,
        "ack_ms": {"p99": 2.0 + 40 * busy**4},
        "orders_per_s": orders,
        "markets": {m: {"orders_per_s": orders * share} for m, share in MARKETS.items()},
        "lmdb_used_bytes": 1e9,
        "lmdb_map_bytes": 4e9,
        "host": {"disk_free_bytes": disk_free, "disk_total_bytes": DISK_TOTAL,
                 "memory_percent": 40.0},
    }  # fmt: skip


def trace(
    duration_s: float,
    step_s: float,
    load: Callable[[float], float],
    noise: Callable[[], float],
    **extra: Callable[[float], float],
) -> list:
    return [
        sample(START + t, load(t), noise(), **{k: f(t) for k, f in extra.items()})
        for t in (i * step_s for i in range(int(duration_s / step_s)))
    ]


def traces(seed: int) -> dict[str, tuple[list[dict], float]]:
    """name -> (samples, step); busy shares chosen so that only ramp, daily and spike cross the
    target."""
    rng = random.Random(seed)
    hour = 3600.0

    def ramp(t: float) -> float:  # flat for 40 min, then up by 0.5 an hour
        return 0.3 + max(0.0, t - 40 * 60) / hour * 0.5

    def daily(t: float) -> float:  # peaks at 0.8 in the afternoon, 0.3 at night
        return 0.55 - 0.25 * math.cos(2 * math.pi * ((t % 86400) / 86400 - 0.15))

    def spike(t: float) -> float:  # a drop: three minutes at 0.95
        return 0.95 if 3600 <= t < 3780 else 0.35

    def swinging(t: float) -> float:  # two nodes' worth of load, then none, every two minutes
        return 0.95 if (t // 120) % 2 else 0.2

    def noise(sigma: float) -> Callable[[], float]:
        return lambda: rng.gauss(0, sigma)

    def filling(t: float) -> float:  # 50 GB free, 5 GB an hour written: full after 10 h
        return max(0.0, 50e9 - t * 5e9 / hour + rng.gauss(0, 2e7))

    return {
        "steady": (trace(2 * hour, 10, lambda t: 0.4, noise(0.01)), 10),
        "noisy_steady": (trace(2 * hour, 10, lambda t: 0.45, noise(0.08)), 10),
        "ramp": (trace(2 * hour, 10, ramp, noise(0.02)), 10),
        "daily": (trace(2 * 86400, 60, daily, noise(0.02)), 60),
        "spike": (trace(2 * hour, 10, spike, noise(0.02)), 10),
        "oscillating": (trace(hour, 10, swinging, noise(0.02)), 10),
        "disk": (trace(12 * hour, 30, lambda t: 0.4, noise(0.01), disk_free=filling), 30),
    }


def run(samples: list[dict], step_s: float, config: ScalingConfig) -> list[tuple[float, list]]:
    """The Scaler's advice after each sample: (time, recommendations)."""
    scaler = Scaler(policy_settings(config), config.stabilization_s)
    history: deque[dict] = deque()
    advice = []
    span = 3 * 86400 if step_s >= 60 else 3600  # what the node keeps (or the rollups hold)
    for item in samples:
        history.append(item)
        while history[0]["time"] < item["time"] - span:
            history.popleft()
        advice.append((item["time"], list(scaler.update(list(history), item["time"]))))
    return advice


def evaluate(seed: int = 1, config: ScalingConfig | None = None) -> dict[str, Any]:
    config = config or ScalingConfig()
    report: dict[str, Any] = {"seed": seed, "stabilization_s": config.stabilization_s}
    flaps = 0
    for name, (samples, step) in traces(seed).items():
        if name == "oscillating":  # two nodes, so that advice could go down as well as up
            policies = {**config.policies, "reactive": {"current_nodes": 2}}
            advice = run(samples, step, dataclasses.replace(config, policies=policies))
        else:
            advice = run(samples, step, config)
        scale = [(t, [r for r in recs if r.action in ("scale_up", "scale_down")])
                 for t, recs in advice]  # fmt: skip
        first_up = next((t for t, recs in scale if any(r.action == "scale_up" for r in recs)), None)
        if name in ("steady", "noisy_steady"):
            report[f"{name}_false_alarms"] = sum(1 for _, recs in _starts(scale) if recs)
        if name in ("ramp", "daily"):
            report[f"{name}_lead_s"] = _lead(samples, scale, name == "daily")
        if name == "spike":
            report["spike_advised"] = first_up is not None
        flaps = max(flaps, _max_flaps(scale, config.stabilization_s))
        errors = [
            r.details["forecast_error"]
            for _, recs in advice
            for r in recs
            if r.policy == "predictive" and r.details.get("forecast_error") is not None
        ]
        if errors:
            report[f"{name}_forecast_error"] = round(sum(errors) / len(errors), 4)
        if name == "disk":
            full = next(s["time"] for s in samples if s["host"]["disk_free_bytes"] <= 0)
            warnings = (
                t
                for t, recs in advice
                if any(r.resource == "disk" and r.action == "warn" for r in recs)
            )
            warned = next(warnings, None)
            report["disk_warning_lead_s"] = None if warned is None else round(full - warned)
            report["disk_false_scale_alarms"] = sum(1 for _, recs in _starts(scale) if recs)
    report["max_flaps_per_window"] = flaps
    report["targets_met"] = (
        report["steady_false_alarms"] == 0
        and report["noisy_steady_false_alarms"] == 0
        and (report["ramp_lead_s"] or -1) >= 60
        and (report["daily_lead_s"] or -1) >= 60
        and flaps <= 1
        and (report["disk_warning_lead_s"] or -1) >= 3600
    )
    return report


def _starts(scale: list[tuple[float, list]]) -> list[tuple[float, list]]:
    """The moments scale advice appears (from none to some)."""
    starts = []
    before = False
    for t, recs in scale:
        if recs and not before:
            starts.append((t, recs))
        before = bool(recs)
    return starts


def _lead(samples: list[dict], scale: list[tuple[float, list]], last_day: bool) -> float | None:
    """Seconds between the scale-up advice in force when the load first crosses the target (on
    the daily trace, the last day's first crossing) and the moment that advice began. The
    crossing is the load's own, not a noisy reading's."""
    crossings = []
    below = True
    for item in samples:
        over = item["load"] > TARGET_BUSY
        if over and below:
            crossings.append(item["time"])
        below = not over
    if not crossings:
        return None
    last_day_start = samples[-1]["time"] - (samples[-1]["time"] - START) % 86400
    breach = next(t for t in crossings if t >= last_day_start) if last_day else crossings[0]
    ups = [(t, [r for r in recs if r.action == "scale_up"]) for t, recs in scale]
    began = None
    for t, _ in _starts(ups):
        if t <= breach:
            began = t
    return None if began is None else round(breach - began)


def _max_flaps(scale: list[tuple[float, list]], window_s: float) -> int:
    """Most direction changes of the advised node count within any one window."""
    changes = []
    direction = 0
    for t, recs in scale:
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

"""Synthetic node samples for `mnode scale eval`: many shapes per scenario, drawn from a seed.

A trace is a list of node samples with the fields the policies read (node/ops/sampler.py):
the offered load (`offered_load`, `arrivals_per_s`, `capacity_per_s`) and the busy share it
gives (capped at 1), ack latency, per-market orders, free disk, LMDB map use, memory; plus the
true load (`load`, no noise) under which no policy looks, to score against. Each `Trace` also
says what is right for it (when the load crosses the target, when a burst stops) so the scoring
in scaling_eval.py needs no knowledge of the shapes.

Every scenario draws its shape from the seed: levels, jitter, spike rate and height, ramp
lengths and ends, node counts, day shapes, bursts. Benign look-alikes sit beside the shapes
that need advice (spikes on a steady load, a ramp that levels off well under the target, a
burst of writes that stops), since advice that is right only on the traces it was tuned on is
not right.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from typing import Any

TARGET_BUSY = 0.7
CAPACITY_PER_S = 60_000.0
"""Commands the matching thread of a trace serves per second of work."""
START = 1_800_000_000.0
"""Traces start at a fixed epoch second (a multiple of a day would do; this one is midnight UTC
on 2027-01-15), so the daily cycle falls on the same hours in every run."""
MARKETS = {"PUNK-ETH": 0.5, "GOLD-USDC": 0.3, "LAND-ETH": 0.2}
DISK_TOTAL = 100e9
DAY_S = 86400.0


def sample(
    time_s: float,
    load: float,
    noise: float,
    disk_free: float = 60e9,
    markets: dict[str, float] | None = None,
    lmdb_used: float = 1e9,
) -> dict[str, Any]:
    """A node sample whose offered load is `load + noise` (the busy share it gives is capped at
    1); `load` itself is kept (under "load") to tell when the target is really breached, which
    no policy reads."""
    offered = max(0.0, load + noise)
    busy = min(1.0, offered)
    orders = busy * CAPACITY_PER_S
    shares = markets or MARKETS
    return {
        "time": time_s,
        "load": load,
        "matching_busy": busy,
        "backlog": 0.0 if offered <= 1 else round(1 - 1 / offered, 4),
        "capacity_per_s": CAPACITY_PER_S,
        "waiting_commands": None,
        "arrivals_per_s": offered * CAPACITY_PER_S,
        "offered_load": offered,
        "ack_ms": {"p99": 2.0 + 40 * busy**4},
        "orders_per_s": orders,
        "markets": {m: {"orders_per_s": orders * share} for m, share in shares.items()},
        "lmdb_used_bytes": lmdb_used,
        "lmdb_map_bytes": 4e9,
        "host": {"disk_free_bytes": disk_free, "disk_total_bytes": DISK_TOTAL,
                 "memory_percent": 40.0},
    }  # fmt: skip


@dataclasses.dataclass
class Trace:
    """Samples of one shape and what is right for it."""

    scenario: str
    samples: list[dict]
    step_s: float
    nodes: int = 1
    load: Callable[[float], float] = lambda t: 0.0
    """The true offered load per node at `t` seconds from the start."""
    changes: list[float] = dataclasses.field(default_factory=list)
    """Seconds from the start where the load steps (flash crowds, steps up and down)."""
    full_at: float | None = None
    """Seconds from the start when the disk is full (disk fills)."""
    burst_ends: list[float] = dataclasses.field(default_factory=list)
    """Seconds from the start when a burst of writes stops."""
    markets: dict[str, float] = dataclasses.field(default_factory=lambda: dict(MARKETS))


class Jitter:
    """Noise as a node shows it: a slow wander (AR(1)) plus white jitter, and short spikes of
    2-5 s at random moments (a batch of cancels, a market maker's refresh)."""

    def __init__(self, rng: random.Random, sigma: float, spikes_per_h: float, height: float):
        self.rng = rng
        self.sigma = sigma
        self.wander = 0.0
        self.spike_until = -1.0
        self.spike_height = 0.0
        self.spikes_per_s = spikes_per_h / 3600
        self.height = height

    def __call__(self, t: float, step_s: float) -> float:
        rng = self.rng
        self.wander = 0.95 * self.wander + rng.gauss(0, self.sigma * 0.1)
        if t >= self.spike_until and rng.random() < self.spikes_per_s * step_s:
            self.spike_until = t + rng.uniform(2, 5)
            self.spike_height = rng.uniform(0.5, 1.0) * self.height
        spike = self.spike_height if t < self.spike_until else 0.0
        return self.wander + rng.gauss(0, self.sigma) + spike


def build(
    scenario: str,
    rng: random.Random,
    load: Callable[[float], float],
    duration_s: float,
    step_s: float = 1.0,
    jitter: Jitter | None = None,
    disk: Callable[[float], float] | None = None,
    **fields: Any,
) -> Trace:
    noise = jitter or Jitter(rng, 0.02, 0, 0)
    markets = fields.pop("markets", None) or dict(MARKETS)
    samples = [
        sample(START + t, load(t), noise(t, step_s), disk(t) if disk else 60e9, markets)
        for t in (i * step_s for i in range(int(duration_s / step_s)))
    ]
    return Trace(scenario, samples, step_s, load=load, markets=markets, **fields)


def steady(rng: random.Random, name: str, low: float, high: float, sigma: float) -> Trace:
    """A level between `low` and `high` for half an hour, with jitter and 20-90 spikes an hour
    reaching up to full busy."""
    level = rng.uniform(low, high)
    spikes = Jitter(rng, sigma, rng.uniform(20, 90), rng.uniform(0.2, 1.0 - level))
    return build(name, rng, lambda t: level, 1800, jitter=spikes)


def ramp(rng: random.Random, benign: bool = False) -> Trace:
    """Flat, then linear over 10-60 min (5-10 min sometimes, scored apart) to past the target;
    benign: to at most 70% of the target, then flat."""
    minutes = rng.choice([5, 10, 15, 20, 30, 45, 60]) if not benign else rng.uniform(10, 60)
    begin, end = rng.uniform(0.15, 0.35), rng.uniform(0.9, 1.4)
    if benign:
        end = rng.uniform(begin + 0.05, 0.7 * TARGET_BUSY)
    flat, length = rng.uniform(300, 600), minutes * 60

    def load(t: float) -> float:
        return begin + (end - begin) * min(1.0, max(0.0, t - flat) / length)

    jitter = Jitter(rng, rng.uniform(0.01, 0.03), rng.uniform(0, 40), rng.uniform(0.1, 0.3))
    trace = build("benign_ramp" if benign else "ramp", rng, load, flat + length + 300,
                  jitter=jitter)  # fmt: skip
    trace.changes = [length]  # the ramp's length, for the scoring's "10 min or longer"
    return trace


def exponential_ramp(rng: random.Random) -> Trace:
    """Flat, then growing by a constant factor a second for 10-30 min to past the target."""
    begin, end, length = rng.uniform(0.08, 0.25), rng.uniform(1.0, 1.5), rng.uniform(600, 1800)
    flat, rate = rng.uniform(300, 600), math.log(end / begin) / length

    def load(t: float) -> float:
        return begin * math.exp(rate * min(length, max(0.0, t - flat)))

    jitter = Jitter(rng, rng.uniform(0.005, 0.02), rng.uniform(0, 30), 0.1)
    trace = build("exponential_ramp", rng, load, flat + length + 300, jitter=jitter)
    trace.changes = [length]
    return trace


def steps(rng: random.Random, flash: bool) -> Trace:
    """On 1-5 nodes: a level, then a flash crowd (a jump past the target within a second) or a
    step to another level, up or down, and back later."""
    nodes = rng.randint(1, 5)
    before = rng.uniform(0.2, 0.6)
    after = rng.uniform(0.9, 2.0) if flash else rng.choice(
        [rng.uniform(0.1, 0.45), rng.uniform(0.8, 1.6)])  # fmt: skip
    first = rng.uniform(400, 700)
    second = first + rng.uniform(400, 900)

    def load(t: float) -> float:
        return after if first <= t < second else before

    jitter = Jitter(rng, rng.uniform(0.01, 0.03), rng.uniform(0, 40), rng.uniform(0.1, 0.3))
    return build("flash_crowd" if flash else "step", rng, load, second + 500, jitter=jitter,
                 nodes=nodes, changes=[first, second])  # fmt: skip


def hot_market(rng: random.Random) -> Trace:
    """One market with most of the orders, the node at and past saturation, on 1-3 nodes."""
    hot = rng.uniform(0.5, 0.85)
    markets = {"PUNK-ETH": hot, "GOLD-USDC": (1 - hot) * 0.6, "LAND-ETH": (1 - hot) * 0.4}
    level, first = rng.uniform(0.95, 2.2), rng.uniform(300, 500)

    def load(t: float) -> float:
        return level if t >= first else 0.4

    return build("hot_market", rng, load, first + 900, nodes=rng.randint(1, 3),
                 changes=[first], markets=markets)  # fmt: skip


def daily(rng: random.Random) -> Trace:
    """Three days at one reading a minute: a working day's shape (a morning rise, a lunch dip,
    an afternoon peak, a quiet night), not a sine; the third day is a weekday after a weekend
    day at a fraction of the load. The peak crosses the target on weekdays."""
    night, peak = rng.uniform(0.1, 0.3), rng.uniform(0.78, 1.1)
    weekend = rng.uniform(0.4, 0.7)
    rise, fall = rng.uniform(7, 9.5) * 3600, rng.uniform(17, 20) * 3600

    def shape(hour_s: float) -> float:
        if hour_s < rise or hour_s > fall + 3 * 3600:
            return 0.0
        if hour_s < rise + 3 * 3600:
            return (hour_s - rise) / (3 * 3600) * 0.85
        if hour_s > fall:
            return 0.85 * (1 - (hour_s - fall) / (3 * 3600))
        lunch = 0.15 * math.exp(-(((hour_s - 12.5 * 3600) / 2400) ** 2))
        afternoon = 0.15 * math.exp(-(((hour_s - 15 * 3600) / 5400) ** 2))
        return 0.85 - lunch + afternoon

    def load(t: float) -> float:
        day = int(t // DAY_S)
        scale = weekend if day == 1 else 1.0
        return night + (peak - night) * scale * shape(t % DAY_S)

    jitter = Jitter(rng, 0.02, 0, 0)
    return build("daily", rng, load, 3 * DAY_S, step_s=60, jitter=jitter)


def disk_fill(rng: random.Random) -> Trace:
    """The disk filling at a steady rate with noisy readings: full after 7-9 h."""
    free, hours = rng.uniform(20e9, 80e9), rng.uniform(7, 9)
    rate, noise = free / (hours * 3600), rng.uniform(5e6, 5e7)

    def disk(t: float) -> float:
        return max(0.0, free - rate * t + rng.gauss(0, noise))

    return build("disk_fill", rng, lambda t: 0.4, hours * 3600 + 60, step_s=30,
                 disk=disk, full_at=free / rate)  # fmt: skip


def disk_burst(rng: random.Random) -> Trace:
    """A temporary write of 2-10 GB at 2-30 MB/s on a disk with little or no growth; the space
    is freed some minutes after, or kept."""
    free, size, speed = rng.uniform(15e9, 60e9), rng.uniform(2e9, 10e9), rng.uniform(2e6, 3e7)
    begin, slow = rng.uniform(900, 1800), rng.uniform(0, 2e4)
    end = begin + size / speed
    freed = end + rng.uniform(60, 900) if rng.random() < 0.5 else math.inf
    noise = rng.uniform(1e6, 2e7)

    def disk(t: float) -> float:
        written = speed * min(max(0.0, t - begin), end - begin) if t < freed else 0.0
        return free - slow * t - written + rng.gauss(0, noise)

    return build("disk_burst", rng, lambda t: 0.4, end + 1200, step_s=5, disk=disk,
                 burst_ends=[end])  # fmt: skip


def swinging(rng: random.Random) -> Trace:
    """Two nodes' worth of load, then little, swinging every 1-3 minutes on 2 nodes."""
    period, high, low = rng.uniform(60, 180), rng.uniform(0.9, 1.1), rng.uniform(0.15, 0.3)
    return build("oscillating", rng, lambda t: high if (t // period) % 2 else low, 3600,
                 step_s=5, nodes=2)  # fmt: skip


def scenarios(seed: int) -> list[Trace]:
    """Every scenario's trace for one seed."""
    rng = random.Random(seed)
    return [
        steady(rng, "steady", 0.3, 0.49, rng.uniform(0.01, 0.03)),
        steady(rng, "noisy_steady", 0.3, 0.49, rng.uniform(0.05, 0.08)),
        steady(rng, "steady_high", 0.5, 0.68, rng.uniform(0.01, 0.04)),
        ramp(rng),
        ramp(rng),
        ramp(rng, benign=True),
        exponential_ramp(rng),
        steps(rng, flash=True),
        steps(rng, flash=False),
        hot_market(rng),
        swinging(rng),
        disk_fill(rng),
        disk_burst(rng),
        daily(rng),
    ]

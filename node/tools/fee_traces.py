"""Base-fee traces for `mnode settlement eval`: many shapes per scenario, drawn from a seed,
each with the chain's blocks and the trades that arrive meanwhile with their deadlines.

A trace's base fee moves as EIP-1559 moves it: each block's fee is the previous one times
1 + 12.5% x (gas used - target) / target, the gas used between empty (-12.5%) and full
(+12.5%), so no block moves it more. How full a block is follows the demand of the moment
(the fee users would pay) against the current base fee, with noise. The tip each block's
transactions paid is drawn beside it (higher when blocks are full).

Everything a policy could be fitted to is drawn from the seed, so that traces of other seeds
are shapes it has not seen: the chain's block time (12 s with a share of missed slots, like
Ethereum's; 5, 2 or 1 s, like rollups), the fee level, the noise, the trades' rate and the
relayer's `max_delay_s`, and each shape's heights, lengths, periods and phases:

- `calm`: a flat demand with small or larger noise;
- `spikes`: a short or a long spike, alone or in a cluster, or a storm of spikes of any
  height and width at random times;
- `cycle`: a window of hours of a week whose working days have a morning and a higher
  evening peak and a night trough, the weekend flatter and lower; or waves of a period of
  10 to 90 minutes with an overtone (neither is a sine);
- `climb`: a demand rising linearly or in steps, where the fee only goes up (waiting never
  pays);
- `lookalike`: benign shapes that resemble the others: a blip of a few full blocks, a rise that
  levels off, a dip, a slow random drift (no cheap moment to wait for).

Trades arrive as a Poisson process; each has the relayer's deadline (`max_delay_s` after it)
or, for some, an earlier one set by an order's expiry (the relayer settles such a trade a
margin before the order expires).

Two families of seeds: `tuning` (what the policy's settings were chosen on) and `held_out`
(never looked at while choosing them): the same generator, its draws keyed apart.
"""

from __future__ import annotations

import dataclasses
import math
import random

MAX_CHANGE = 0.125
"""EIP-1559: the base fee moves by at most 1/8 a block."""
GWEI = 10**9
L1_BLOCK_S = 12.0
BLOCK_TIMES_S = (12.0, 12.0, 5.0, 2.0, 2.0, 1.0)
"""Ethereum's slot, drawn as often as the rollups' blocks together."""
MISSED_SLOTS = (0.0, 0.02)
"""The share of 12 s slots without a block (Ethereum's is about 1%): the next block comes a
slot later, which is what a deadline margin has to hold through. Two in a row (the share
squared: under 0.04% of slots) are not drawn: the policy's margin is one missed slot."""
RATES_PER_MIN = (0.5, 1.0, 3.0, 8.0, 20.0, 60.0)
MAX_DELAYS_S = (30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
"""The relayer's `max_delay_s`: its default (30 s), and longer ones an operator choosing
cheaper fees over quicker settlement sets."""
EXPIRING_SHARE = 0.2
"""Trades whose order expires before `max_delay_s` is over, their deadline drawn between three
blocks and `max_delay_s`."""
MINUTE_S, HOUR_S, DAY_S = 60.0, 3600.0, 86400.0
SHAPES = {
    "calm": ("quiet", "noisy"),
    "spikes": ("short", "long", "short_cluster", "long_cluster", "storm"),
    "cycle": ("weekday", "evening_peak", "weekend", "waves"),
    "climb": ("linear", "steps"),
    "lookalike": ("blip", "plateau", "dip", "drift"),
}
FAMILIES = ("tuning", "held_out")
WARM_UP_BLOCKS = 20
"""Blocks before the first trade: a policy has some fee history from the start."""


@dataclasses.dataclass(frozen=True)
class FeeTrace:
    """One chain's blocks and the trades to settle on it: block `i` comes at `block_times[i]`
    seconds, and `base_fees[i]` and `tips[i]` are the wei per gas paid in it; `block_s` is the
    chain's nominal block time (what the relayer is configured with)."""

    scenario: str
    shape: str
    seed: int
    family: str
    block_s: float
    block_times: list[float]
    base_fees: list[int]
    tips: list[int]
    arrivals: list[float]
    deadlines: list[float]
    rate_per_min: float
    max_delay_s: float

    @property
    def name(self) -> str:
        return f"{self.family}/{self.scenario}/{self.shape}/{self.block_s:g}s/seed{self.seed}"


def demand(scenario: str, shape: str, rng: random.Random, duration_s: float):
    """The fee the demand would bear at `t` seconds, relative to the trace's level (1.0)."""
    if scenario == "calm":
        return lambda t: 1.0
    if scenario == "spikes":
        return _storm(rng, duration_s) if shape == "storm" else _spikes(shape, rng, duration_s)
    if scenario == "cycle":
        return _waves(rng) if shape == "waves" else _week(shape, rng)
    if scenario == "climb":
        return _climb(shape, rng)
    return _lookalike(shape, rng, duration_s)


def _highest(spikes: list[tuple[float, float, float]]):
    """The demand of spikes (start, end, height) over a level of 1.0."""
    return lambda t: max([height for a, b, height in spikes if a <= t < b], default=1.0)


def _spikes(shape: str, rng: random.Random, duration_s: float):
    short = shape.startswith("short")
    count = rng.randint(3, 5) if shape.endswith("cluster") else 1
    start = rng.uniform(0.15, 0.4) * duration_s
    spikes = []
    for _ in range(count):
        length = rng.uniform(60, 240) if short else rng.uniform(600, 1800)
        spikes.append((start, start + length, rng.uniform(1.3, 6.0)))
        start += length + rng.uniform(120, 900)
    return _highest(spikes)


def _storm(rng: random.Random, duration_s: float):
    """Spikes at random times (2 to 10 an hour), each 30 s to 20 minutes long (log-uniform)
    and 1.2 to 8 times the level."""
    spikes, t = [], 0.0
    per_hour = rng.uniform(2, 10)
    while (t := t + rng.expovariate(per_hour / HOUR_S)) < duration_s:
        length = math.exp(rng.uniform(math.log(30), math.log(1200)))
        spikes.append((t, t + length, rng.uniform(1.2, 8.0)))
    return _highest(spikes)


def _week(shape: str, rng: random.Random):
    """A week's demand: working days with a morning peak and a higher evening one over a night
    trough, the weekend lower and flatter; the window starts where its shape is."""
    morning, evening = rng.uniform(1.3, 1.8), rng.uniform(1.8, 2.8)
    weekend = rng.uniform(0.5, 0.8)
    start = {"weekday": rng.uniform(6, 14), "evening_peak": rng.uniform(16, 20),
             "weekend": rng.uniform(8, 18)}[shape] * HOUR_S  # fmt: skip
    start += (5 if shape == "weekend" else rng.randint(0, 4)) * DAY_S

    def week(t: float) -> float:
        at = start + t
        day, hour = int(at // DAY_S) % 7, (at % DAY_S) / HOUR_S
        bumps = (0.7 + (morning - 0.7) * math.exp(-(((hour - 9.5) / 2.0) ** 2))
                 + (evening - 0.7) * math.exp(-(((hour - 19.0) / 2.5) ** 2)))  # fmt: skip
        return weekend * (1 + 0.3 * (bumps - 1)) if day >= 5 else bumps

    return week


def _waves(rng: random.Random):
    """A cycle of 10 to 90 minutes between a trough and a peak 1.3 to 3 times it, with an
    overtone of a third to a half of its swing at twice or three times its frequency."""
    period = rng.uniform(10, 90) * MINUTE_S
    swing = math.log(rng.uniform(1.3, 3.0)) / 2
    overtone, times = rng.uniform(0.3, 0.5), rng.choice((2, 3))
    phase, phase2 = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)

    def waves(t: float) -> float:
        angle = 2 * math.pi * t / period
        wave = math.sin(angle + phase) + overtone * math.sin(times * angle + phase2)
        return math.exp(swing * wave / (1 + overtone))

    return waves


def _climb(shape: str, rng: random.Random):
    if shape == "linear":
        per_hour = rng.uniform(0.6, 3.0)
        return lambda t: 1.0 + per_hour * t / HOUR_S
    step_s, factor = rng.uniform(300, 900), rng.uniform(1.15, 1.5)
    return lambda t: factor ** int(t // step_s)


def _lookalike(shape: str, rng: random.Random, duration_s: float):
    at = rng.uniform(0.2, 0.6) * duration_s
    if shape == "blip":
        blips = [at + i * rng.uniform(600, 1500) for i in range(rng.randint(1, 4))]
        length = rng.uniform(24, 60)
        return _highest([(a, a + length, rng.uniform(1.5, 2.5)) for a in blips])
    if shape == "plateau":
        rise_s, top = rng.uniform(300, 900), rng.uniform(1.2, 1.6)
        return lambda t: 1.0 + (top - 1.0) * min(1.0, max(0.0, (t - at) / rise_s))
    if shape == "drift":
        return _drift(rng, duration_s)
    length, depth = rng.uniform(300, 1200), rng.uniform(0.5, 0.8)
    return lambda t: depth if at <= t < at + length else 1.0


def _drift(rng: random.Random, duration_s: float):
    """A demand wandering at random, a minute's step at most 3%: no moment is predictably
    cheaper than the others."""
    steps = [0.0]
    for _ in range(int(duration_s / MINUTE_S) + 1):
        steps.append(steps[-1] + rng.gauss(0, 0.015))
    return lambda t: math.exp(steps[min(len(steps) - 1, int(t / MINUTE_S))])


def block_path(block_s: float, blocks: int, rng: random.Random) -> list[float]:
    """When each block comes: every `block_s`, but for a 12 s chain's missed slots (one at
    a time)."""
    missed = rng.uniform(*MISSED_SLOTS) if block_s == L1_BLOCK_S else 0.0
    times, t = [], 0.0
    for _ in range(blocks):
        times.append(t)
        t += 2 * block_s if rng.random() < missed else block_s
    return times


def base_fee_path(level: int, shape, block_times: list[float], noise: float,
                  rng: random.Random) -> tuple[list[int], list[int]]:  # fmt: skip
    """Base fees and tips of the blocks: a block is fuller the more the demand's fee is over
    the base fee, never beyond empty or full, so the fee moves at most 12.5% a block."""
    fee, fees, tips = float(level), [], []
    tip_level = level * rng.uniform(0.02, 0.1)
    for at in block_times:
        fees.append(max(1, int(fee)))
        wanted = level * shape(at)
        fullness = 1 + 3 * math.log(wanted / fee) + rng.gauss(0, noise)
        fullness = min(2.0, max(0.0, fullness))
        tips.append(max(1, int(tip_level * (0.5 + fullness / 2) * rng.uniform(0.8, 1.25))))
        fee *= 1 + MAX_CHANGE * (fullness - 1)
    return fees, tips


def trades(rate_per_min: float, max_delay_s: float, start_s: float, end_s: float,
           shortest_s: float, rng: random.Random) -> tuple[list[float], list[float]]:  # fmt: skip
    """Arrival times and deadlines: from `start_s` (after the blocks of a fee history) on, the
    last deadline before `end_s`; an expiring order's at least `shortest_s` away."""
    arrivals, deadlines = [], []
    t = start_s + rng.expovariate(rate_per_min / 60)
    while t < end_s - max_delay_s:
        delay = max_delay_s
        if rng.random() < EXPIRING_SHARE:
            delay = rng.uniform(min(shortest_s, max_delay_s), max_delay_s)
        arrivals.append(t)
        deadlines.append(t + delay)
        t += rng.expovariate(rate_per_min / 60)
    return arrivals, deadlines


def trace(scenario: str, shape: str, seed: int, family: str = "tuning") -> FeeTrace:
    """One shape drawn from `seed` of `family`: its chain, fee level, noise, trades and
    deadlines too."""
    rng = random.Random(f"{family}/{scenario}/{shape}/{seed}")
    block_s = rng.choice(BLOCK_TIMES_S)
    rate, max_delay = rng.choice(RATES_PER_MIN), rng.choice(MAX_DELAYS_S)
    duration = (3 if scenario == "cycle" else 2) * HOUR_S
    gwei = rng.uniform(5, 40) if block_s == L1_BLOCK_S else rng.uniform(0.005, 0.1)
    noise = rng.uniform(0.5, 0.9) if shape == "noisy" else rng.uniform(0.1, 0.5)
    blocks = int(duration / block_s) + WARM_UP_BLOCKS + 2
    times = block_path(block_s, blocks, rng)
    fees, tips = base_fee_path(int(gwei * GWEI), demand(scenario, shape, rng, duration), times,
                               noise, rng)  # fmt: skip
    arrivals, deadlines = trades(rate, max_delay, times[WARM_UP_BLOCKS], times[-3],
                                 3 * block_s, rng)  # fmt: skip
    return FeeTrace(scenario, shape, seed, family, block_s, times, fees, tips, arrivals,
                    deadlines, rate, max_delay)  # fmt: skip


def scenarios(seed: int, family: str = "tuning") -> list[FeeTrace]:
    """Every shape of every scenario for `seed` of `family`."""
    return [trace(scenario, shape, seed, family)
            for scenario, shapes in SHAPES.items() for shape in shapes]  # fmt: skip

"""Base-fee traces for `mnode settlement eval`: many shapes per scenario, drawn from a seed,
each with the trades that arrive meanwhile and their deadlines.

A trace's base fee moves as EIP-1559 moves it: each block's fee is the previous one times
1 + 12.5% x (gas used - target) / target, the gas used between empty (-12.5%) and full
(+12.5%), so no block moves it more. How full a block is follows the demand of the moment
(the fee users would pay: calm, a spike, a day's cycle, a climb) against the current base fee,
with noise. The tip each block's transactions paid is drawn beside it (higher when blocks are
full). Blocks come every 12 s (Ethereum) or 2 s (a rollup).

Scenarios and their shapes (every level, height, length and phase drawn from the seed):

- `calm`: a flat demand with small or larger noise;
- `spikes`: a short or a long spike, alone or in a cluster;
- `cycle`: a window of hours of a week whose working days have a morning and a higher
  evening peak and a night trough, the weekend flatter and lower (not a sine);
- `climb`: a demand rising linearly or in steps, where the fee only goes up (waiting never
  pays);
- `lookalike`: benign shapes that resemble the others: a blip of a few full blocks, a rise that
  levels off, a dip.

Trades arrive as a Poisson process at one of several rates; each has the relayer's deadline
(`max_delay_s` after it, one of several) or, for some, an earlier one set by an order's expiry
(the relayer settles such a trade a margin before the order expires).
"""

from __future__ import annotations

import dataclasses
import math
import random

from ..chain.fees import HISTORY_BLOCKS

MAX_CHANGE = 0.125
"""EIP-1559: the base fee moves by at most 1/8 a block."""
GWEI = 10**9
L1_BLOCK_S, L2_BLOCK_S = 12.0, 2.0
RATES_PER_MIN = (0.5, 3.0, 20.0)
MAX_DELAYS_S = (30.0, 300.0, 1800.0)
"""The relayer's `max_delay_s`: its default, and longer ones an operator choosing cheaper fees
over quicker settlement sets."""
EXPIRING_SHARE = 0.2
"""Trades whose order expires before `max_delay_s` is over, their deadline drawn between three
blocks and `max_delay_s`."""
HOUR_S, DAY_S = 3600.0, 86400.0
SHAPES = {
    "calm": ("quiet", "noisy"),
    "spikes": ("short", "long", "short_cluster", "long_cluster"),
    "cycle": ("weekday", "evening_peak", "weekend"),
    "climb": ("linear", "steps"),
    "lookalike": ("blip", "plateau", "dip"),
}


@dataclasses.dataclass(frozen=True)
class FeeTrace:
    """One chain's blocks and the trades to settle on it. Block `i` comes at `i x block_s`
    seconds; `base_fees[i]` and `tips[i]` are the wei per gas paid in it."""

    scenario: str
    shape: str
    seed: int
    block_s: float
    base_fees: list[int]
    tips: list[int]
    arrivals: list[float]
    deadlines: list[float]
    rate_per_min: float
    max_delay_s: float

    @property
    def name(self) -> str:
        chain = "l1" if self.block_s == L1_BLOCK_S else "l2"
        return f"{self.scenario}/{self.shape}/{chain}/seed{self.seed}"


def demand(scenario: str, shape: str, rng: random.Random, duration_s: float):
    """The fee the demand would bear at `t` seconds, relative to the trace's level (1.0)."""
    if scenario == "calm":
        return lambda t: 1.0
    if scenario == "spikes":
        return _spikes(shape, rng, duration_s)
    if scenario == "cycle":
        return _week(shape, rng)
    if scenario == "climb":
        return _climb(shape, rng)
    return _lookalike(shape, rng, duration_s)


def _spikes(shape: str, rng: random.Random, duration_s: float):
    short = shape.startswith("short")
    count = rng.randint(3, 5) if shape.endswith("cluster") else 1
    first = rng.uniform(0.15, 0.4) * duration_s
    spikes = []
    start = first
    for _ in range(count):
        length = rng.uniform(60, 240) if short else rng.uniform(600, 1800)
        spikes.append((start, start + length, rng.uniform(1.5, 5.0)))
        start += length + rng.uniform(120, 900)
    return lambda t: max([height for a, b, height in spikes if a <= t < b], default=1.0)


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
        return lambda t: 2.0 if any(a <= t < a + length for a in blips) else 1.0
    if shape == "plateau":
        rise_s, top = rng.uniform(300, 900), rng.uniform(1.2, 1.6)
        return lambda t: 1.0 + (top - 1.0) * min(1.0, max(0.0, (t - at) / rise_s))
    length, depth = rng.uniform(300, 1200), rng.uniform(0.5, 0.8)
    return lambda t: depth if at <= t < at + length else 1.0


def base_fee_path(level: int, shape, blocks: int, block_s: float, noise: float,
                  rng: random.Random) -> tuple[list[int], list[int]]:  # fmt: skip
    """Base fees and tips of `blocks` blocks: a block is fuller the more the demand's fee is
    over the base fee, never beyond empty or full, so the fee moves at most 12.5% a block."""
    fee, fees, tips = float(level), [], []
    tip_level = level * rng.uniform(0.02, 0.1)
    for i in range(blocks):
        fees.append(max(1, int(fee)))
        wanted = level * shape(i * block_s)
        fullness = 1 + 3 * math.log(wanted / fee) + rng.gauss(0, noise)
        fullness = min(2.0, max(0.0, fullness))
        tips.append(max(1, int(tip_level * (0.5 + fullness / 2) * rng.uniform(0.8, 1.25))))
        fee *= 1 + MAX_CHANGE * (fullness - 1)
    return fees, tips


def trades(rate_per_min: float, max_delay_s: float, block_s: float, duration_s: float,
           rng: random.Random) -> tuple[list[float], list[float]]:  # fmt: skip
    """Arrival times and deadlines; the first trade after the blocks of a fee history, the last
    early enough to be settled within the trace."""
    arrivals, deadlines = [], []
    t = HISTORY_BLOCKS * block_s + rng.expovariate(rate_per_min / 60)
    while t < duration_s - max_delay_s - 2 * block_s:
        delay = max_delay_s
        if rng.random() < EXPIRING_SHARE:
            delay = rng.uniform(min(3 * block_s, max_delay_s), max_delay_s)
        arrivals.append(t)
        deadlines.append(t + delay)
        t += rng.expovariate(rate_per_min / 60)
    return arrivals, deadlines


def trace(scenario: str, shape: str, seed: int, variant: int) -> FeeTrace:
    """One shape drawn from `seed`; `variant` walks the chains, rates and deadlines so that
    the shapes of a scenario over a few seeds cover all of them."""
    rng = random.Random(f"{scenario}/{shape}/{seed}")
    block_s = L1_BLOCK_S if variant % 2 == 0 else L2_BLOCK_S
    rate = RATES_PER_MIN[variant % len(RATES_PER_MIN)]
    max_delay = MAX_DELAYS_S[(variant // len(RATES_PER_MIN)) % len(MAX_DELAYS_S)]
    duration = (3 if scenario == "cycle" else 2) * HOUR_S
    level = int(rng.uniform(5, 40) * GWEI) if block_s == L1_BLOCK_S else int(
        rng.uniform(0.005, 0.1) * GWEI)  # fmt: skip
    noise = 0.6 if shape == "noisy" else rng.uniform(0.2, 0.4)
    blocks = int(duration / block_s) + HISTORY_BLOCKS + 2
    fees, tips = base_fee_path(level, demand(scenario, shape, rng, duration), blocks, block_s,
                               noise, rng)  # fmt: skip
    arrivals, deadlines = trades(rate, max_delay, block_s, blocks * block_s, rng)
    return FeeTrace(scenario, shape, seed, block_s, fees, tips, arrivals, deadlines, rate,
                    max_delay)  # fmt: skip


def scenarios(seed: int) -> list[FeeTrace]:
    """Every shape of every scenario for `seed`."""
    return [
        trace(scenario, shape, seed, seed + index)
        for scenario, shapes in SHAPES.items()
        for index, shape in enumerate(shapes)
    ]

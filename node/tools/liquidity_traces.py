"""Seeded order flows for the liquidity evaluation: a fair price path and what the takers do
at each step, the same draws for every strategy so that they are compared on one flow.

The fair price F is what the market will be worth: informed takers know it `horizon` steps
ahead and trade when the book is on the wrong side of it; uninformed (noise) takers trade a
random side and size. A background liquidity provider (the "street") rests wide quotes around
F, so a strategy sees a two-sided market whose mid is F now, never F to come. The traces:

- `uninformed`: F a random walk, noise takers only;
- `informed`: the same walk, informed takers too;
- `drop`: the walk, then F falls `drop` over three steps at 40% of the run (informed too);
- `trending`: F drifts `drift_bps` a step, up or down by the seed (informed too).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

TRACES = ("uninformed", "informed", "drop", "trending")


@dataclass(frozen=True)
class FlowShape:
    """What a trace is made of; the defaults are the evaluation's."""

    steps: int = 240
    start_price: float = 100.0
    volatility_bps: float = 8.0
    """Standard deviation of F's log return per step."""
    drift_bps: float = 6.0
    drop: float = 0.10
    horizon: int = 5
    """Steps ahead that informed takers know F (and over which adverse selection is measured)."""
    noise_probability: float = 0.7
    noise_max_qty: int = 6
    informed_qty: int = 4
    street_width: float = 0.01
    """The street's quotes rest this share of F either side."""


@dataclass(frozen=True)
class Step:
    """One step: F now, F `horizon` steps ahead, and the noise taker's draw (None: none)."""

    fair: float
    fair_ahead: float
    noise: tuple[str, int] | None
    informed: bool


def fair_path(trace: str, shape: FlowShape, rng: random.Random) -> list[float]:
    sigma = shape.volatility_bps * 1e-4
    drift = 0.0
    if trace == "trending":
        drift = shape.drift_bps * 1e-4 * rng.choice((1, -1))
    drop_at = int(shape.steps * 0.4) if trace == "drop" else None
    log_price = math.log(shape.start_price)
    path = []
    for step in range(shape.steps + shape.horizon):
        log_price += drift + sigma * rng.gauss(0.0, 1.0)
        if drop_at is not None and drop_at <= step < drop_at + 3:
            log_price += math.log(1 - shape.drop) / 3
        path.append(math.exp(log_price))
    return path


def make_steps(trace: str, seed: int, shape: FlowShape) -> list[Step]:
    """The trace's steps for `seed` (the same for every strategy run on it)."""
    if trace not in TRACES:
        raise ValueError(f"unknown trace {trace!r} (known: {', '.join(TRACES)})")
    rng = random.Random(f"{trace}-{seed}")
    path = fair_path(trace, shape, rng)
    steps = []
    for index in range(shape.steps):
        noise = None
        if rng.random() < shape.noise_probability:
            noise = (rng.choice(("buy", "sell")), rng.randint(1, shape.noise_max_qty))
        steps.append(Step(path[index], path[index + shape.horizon], noise, trace != "uninformed"))
    return steps

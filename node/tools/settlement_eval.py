"""`mnode settlement eval`: the relayer's fee timing replayed over base-fee traces, against
sending every trade at once.

Each trace (fee_traces.py) is replayed as the relayer lives it: it looks every poll interval;
the trades that came are pending, oldest first; at each look it sends the oldest `batch_size`
while the relayer's own rule (`relayer.batch_due`: full, its earliest deadline come, or the
`settlement_timing` plugins through their host) says so, at most `MAX_IN_FLIGHT` batches a
block. It sees what `eth_feeHistory` shows it: the base fees of the last blocks and the next
block's, and a batch sent is in that next block (the relayer offers twice its base fee, more
than a few blocks' rises). Sending at once: every trade its own batch at its arrival, in the
next block.

A batch pays its gas (196,070 for one trade, 87,621 for each further one: docs/performance.md)
times the base fee plus the tip of the block it is in. A trade misses its deadline when that
block comes after it. Per scenario: the fraction of the fees of sending at once saved over all
its traces, the worst seed's and the worst single trace's, by the relayer's `max_delay_s`, and
the deadline misses; `fee_saving` is the lower of the cyclic and the spiky scenarios' worst
seeds over the tuning and the held-out seeds (the goal: >= 20%, with no deadline missed
anywhere). A trace's fees are counted in gas at its mean base fee, so that a seed's figure
weighs its traces by their trades, not by their chain's price: pooled in wei, one 12 s trace
of the four decides a seed's figure, since an L1 gwei costs a thousand rollup ones.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import pluggy

from marketnode.plugins.settlement_timing import batch_gas, timing_manager

from ..chain.fees import HISTORY_BLOCKS
from ..chain.relayer import MAX_IN_FLIGHT, RelayerSettings, batch_due
from .fee_traces import SHAPES, FeeTrace, scenarios

POLL_S = 0.5
"""How often the relayer looks (`[settlement] poll_interval_ms`, its default)."""
GOAL_SAVING = 0.20
TUNING_SEEDS, HELD_OUT_SEEDS, HELD_OUT_FIRST = 8, 8, 101
"""The default seeds: tuning 1-8, held-out 101-108 (fee_traces.FAMILIES)."""
JUDGED = ("cycle", "spikes")
"""The scenarios `fee_saving` is the lower of."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What settling one trace cost, with the relayer's timing and with sending at once."""

    trace: str
    scenario: str
    seed: int
    max_delay_s: float
    trades: int
    batches: int
    fees: float
    immediate_fees: float
    misses: int
    immediate_misses: int

    @property
    def saving(self) -> float:
        return 1 - self.fees / self.immediate_fees if self.immediate_fees else 0.0


def _in_block(trace: FeeTrace, block: int) -> float:
    """Wei per gas paid in `block`: its base fee and tip."""
    return trace.base_fees[block] + trace.tips[block]


def immediately(trace: FeeTrace) -> tuple[float, int]:
    """Fees and deadline misses of sending each trade alone when it comes."""
    fees, misses = 0.0, 0
    for arrival, deadline in zip(trace.arrivals, trace.deadlines, strict=True):
        block = bisect.bisect_right(trace.block_times, arrival)
        fees += batch_gas(1) * _in_block(trace, block)
        misses += trace.block_times[block] > deadline
    return fees, misses


def with_relayer(trace: FeeTrace, settings: RelayerSettings, timing: pluggy.PluginManager,
                 poll_s: float = POLL_S) -> tuple[float, int, int]:  # fmt: skip
    """Fees, deadline misses and batches of the relayer's batching and timing rule."""
    arrivals, deadlines, fees = trace.arrivals, trace.deadlines, trace.base_fees
    pending: deque[int] = deque()
    arrived = 0
    paid, misses, batches = 0.0, 0, 0
    sent_block, in_flight = -1, 0
    tick = 0
    while arrived < len(arrivals) or pending:
        if not pending:  # nothing to look at until the next trade comes
            tick = max(tick, math.ceil(arrivals[arrived] / poll_s))
        now = tick * poll_s
        while arrived < len(arrivals) and arrivals[arrived] <= now:
            pending.append(arrived)
            arrived += 1
        latest = bisect.bisect_right(trace.block_times, now) - 1
        if latest + 1 >= len(fees):
            raise ValueError(f"{trace.name}: trades still pending when the trace ends")
        if latest != sent_block:
            sent_block, in_flight = latest, 0
        history = fees[max(0, latest - HISTORY_BLOCKS + 1) : latest + 2]
        while pending and in_flight < MAX_IN_FLIGHT:
            rows = [pending[i] for i in range(min(settings.batch_size, len(pending)))]
            due = batch_due([deadlines[i] for i in rows], arrivals[rows[0]], now, history,
                            settings, timing)  # fmt: skip
            if not due:
                break
            included = trace.block_times[latest + 1]
            paid += batch_gas(len(rows)) * _in_block(trace, latest + 1)
            misses += sum(deadlines[i] < included for i in rows)
            for _ in rows:
                pending.popleft()
            in_flight += 1
            batches += 1
        tick += 1
    return paid, misses, batches


def replay(trace: FeeTrace, timing_settings: dict[str, Any] | None = None) -> Outcome:
    """One trace both ways; the policy is told the chain's nominal block time. Fees are
    counted in gas at the trace's mean base fee, so that every trace weighs by its trades and
    gas, not by its chain's price (an L1 gwei is a thousand rollup ones)."""
    settings = RelayerSettings(timing={"block_time_s": trace.block_s, **(timing_settings or {})})
    fees, misses, batches = with_relayer(trace, settings, timing_manager())
    immediate_fees, immediate_misses = immediately(trace)
    unit = statistics.fmean(trace.base_fees)
    return Outcome(trace.name, trace.scenario, trace.seed, trace.max_delay_s,
                   len(trace.arrivals), batches, fees / unit, immediate_fees / unit, misses,
                   immediate_misses)  # fmt: skip


def _replay_seed(family_seed: tuple[str, int]) -> list[Outcome]:
    family, seed = family_seed
    return [replay(trace) for trace in scenarios(seed, family)]


def replay_seeds(families: dict[str, list[int]], workers: int = 2) -> dict[str, list[Outcome]]:
    """Every trace of every family's seeds, the seeds replayed in `workers` processes."""
    jobs = [(family, seed) for family, seeds in families.items() for seed in seeds]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            found = list(pool.map(_replay_seed, jobs))
    else:
        found = [_replay_seed(job) for job in jobs]
    outcomes: dict[str, list[Outcome]] = {family: [] for family in families}
    for (family, _), each in zip(jobs, found, strict=True):
        outcomes[family].extend(each)
    return outcomes


def family_report(outcomes: list[Outcome], seeds: list[int]) -> dict[str, Any]:
    """One family's figures: per scenario (summary), `fee_saving` the lower of the cyclic and
    spiky scenarios' worst seeds, and the deadlines missed."""
    scenario_figures = {name: summary([o for o in outcomes if o.scenario == name])
                        for name in SHAPES}  # fmt: skip
    judged = min(JUDGED, key=lambda name: scenario_figures[name]["worst_seed_saving"])
    return {
        "seeds": [seeds[0], seeds[-1]] if seeds else [],
        "traces": len(outcomes),
        "trades": sum(o.trades for o in outcomes),
        "fee_saving": scenario_figures[judged]["worst_seed_saving"],
        "worst": f"{judged} seed {scenario_figures[judged]['worst_seed']}",
        "deadline_misses": sum(o.misses for o in outcomes),
        "immediate_deadline_misses": sum(o.immediate_misses for o in outcomes),
        "scenarios": scenario_figures,
    }


def evaluate(seed: int = 1, seeds: int = TUNING_SEEDS, held_out_seed: int = HELD_OUT_FIRST,
             held_out_seeds: int = HELD_OUT_SEEDS, workers: int = 2) -> dict[str, Any]:
    """Every scenario over `seeds` tuning seeds from `seed` and `held_out_seeds` held-out ones
    from `held_out_seed`. `fee_saving` and `deadline_misses` are over both families: the
    lower of their worst seeds' savings, the sum of their misses."""
    families = {"tuning": list(range(seed, seed + seeds)),
                "held_out": list(range(held_out_seed, held_out_seed + held_out_seeds))}
    families = {family: chosen for family, chosen in families.items() if chosen}
    outcomes = replay_seeds(families, workers)
    reports = {family: family_report(outcomes[family], chosen)
               for family, chosen in families.items()}  # fmt: skip
    worst = min(reports, key=lambda family: reports[family]["fee_saving"])
    report: dict[str, Any] = {
        "fee_saving": reports[worst]["fee_saving"],
        "worst": f"{worst} {reports[worst]['worst']}",
        "deadline_misses": sum(each["deadline_misses"] for each in reports.values()),
        "immediate_deadline_misses": sum(
            each["immediate_deadline_misses"] for each in reports.values()),
        "traces": sum(each["traces"] for each in reports.values()),
        "trades": sum(each["trades"] for each in reports.values()),
    }
    report["goal_met"] = report["fee_saving"] >= GOAL_SAVING and report["deadline_misses"] == 0
    return {**report, **reports}


def _saving(outcomes: list[Outcome]) -> float:
    immediate = sum(o.immediate_fees for o in outcomes)
    return round(1 - sum(o.fees for o in outcomes) / immediate, 4) if immediate else 0.0


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """One scenario's figures: pooled, per seed (its worst), per trace (its worst)."""
    by_seed = {s: _saving([o for o in outcomes if o.seed == s])
               for s in sorted({o.seed for o in outcomes})}  # fmt: skip
    worst_seed = min(by_seed, key=by_seed.__getitem__)
    worst_trace = min(outcomes, key=lambda o: o.saving)
    delays = sorted({o.max_delay_s for o in outcomes})
    trades = sum(o.trades for o in outcomes)
    return {
        "saving": _saving(outcomes),
        "worst_seed_saving": by_seed[worst_seed],
        "worst_seed": worst_seed,
        "worst_trace_saving": round(worst_trace.saving, 4),
        "worst_trace": worst_trace.trace,
        "saving_by_max_delay_s": {
            f"{delay:g}": _saving([o for o in outcomes if o.max_delay_s == delay])
            for delay in delays
        },
        "deadline_misses": sum(o.misses for o in outcomes),
        "trades": trades,
        "trades_per_batch": round(trades / max(1, sum(o.batches for o in outcomes)), 2),
    }

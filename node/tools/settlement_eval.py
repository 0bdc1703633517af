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
seeds (the goal: >= 20%, with no deadline missed anywhere).
"""

from __future__ import annotations

import math
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
        block = int(arrival // trace.block_s) + 1
        fees += batch_gas(1) * _in_block(trace, block)
        misses += block * trace.block_s > deadline
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
        latest = int(now // trace.block_s)
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
            included = (latest + 1) * trace.block_s
            paid += batch_gas(len(rows)) * _in_block(trace, latest + 1)
            misses += sum(deadlines[i] < included for i in rows)
            for _ in rows:
                pending.popleft()
            in_flight += 1
            batches += 1
        tick += 1
    return paid, misses, batches


def replay(trace: FeeTrace, timing_settings: dict[str, Any] | None = None) -> Outcome:
    """One trace both ways; the policy is told the trace's block time."""
    settings = RelayerSettings(timing={"block_time_s": trace.block_s, **(timing_settings or {})})
    fees, misses, batches = with_relayer(trace, settings, timing_manager())
    immediate_fees, immediate_misses = immediately(trace)
    return Outcome(trace.name, trace.scenario, trace.seed, trace.max_delay_s,
                   len(trace.arrivals), batches, fees, immediate_fees, misses,
                   immediate_misses)  # fmt: skip


def _replay_seed(seed: int) -> list[Outcome]:
    return [replay(trace) for trace in scenarios(seed)]


def evaluate(seed: int = 1, seeds: int = 3, workers: int = 2) -> dict[str, Any]:
    """Every scenario over `seeds` seeds from `seed`, the seeds replayed in `workers`
    processes; per scenario the saving over all its traces and the worst cases."""
    seed_list = list(range(seed, seed + seeds))
    if workers > 1 and seeds > 1:
        with ProcessPoolExecutor(min(workers, seeds)) as pool:
            outcomes = [one for found in pool.map(_replay_seed, seed_list) for one in found]
    else:
        outcomes = [one for each in seed_list for one in _replay_seed(each)]
    report: dict[str, Any] = {"seed": seed, "seeds": seeds, "traces": len(outcomes),
                              "trades": sum(o.trades for o in outcomes)}  # fmt: skip
    report["scenarios"] = {name: summary([o for o in outcomes if o.scenario == name])
                           for name in SHAPES}  # fmt: skip
    report["fee_saving"] = min(report["scenarios"][name]["worst_seed_saving"] for name in JUDGED)
    report["deadline_misses"] = sum(o.misses for o in outcomes)
    report["immediate_deadline_misses"] = sum(o.immediate_misses for o in outcomes)
    report["goal_met"] = report["fee_saving"] >= GOAL_SAVING and report["deadline_misses"] == 0
    return report


def _saving(outcomes: list[Outcome]) -> float:
    immediate = sum(o.immediate_fees for o in outcomes)
    return round(1 - sum(o.fees for o in outcomes) / immediate, 4) if immediate else 0.0


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """One scenario's figures: pooled, per seed (its worst), per trace (its worst)."""
    seeds = sorted({o.seed for o in outcomes})
    worst_trace = min(outcomes, key=lambda o: o.saving)
    delays = sorted({o.max_delay_s for o in outcomes})
    trades = sum(o.trades for o in outcomes)
    return {
        "saving": _saving(outcomes),
        "worst_seed_saving": min(_saving([o for o in outcomes if o.seed == s]) for s in seeds),
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

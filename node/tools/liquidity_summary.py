"""The liquidity evaluation's verdict: the issue's goals over every run, as worst cases with
the seed that gave each.

- `inventory_breaches`: steps, over every run and maker, with the position beyond its
  `max_inventory`, plus makers halted by the kill switch (each is a limit reached);
- `adverse_selection_reduction`: 1 - adaptive / fixed adverse selection on the trending trace,
  the lowest over the seeds (goal: at least 0.3);
- `spread_increase`: adaptive / fixed average quoted spread - 1 on the trending trace, the
  highest over the seeds (goal: at most 0.2);
- `amm_reserve_mismatch`: the largest difference, in lots plus tick-lots, between the AMM's
  reserves and its fills (goal: 0);
- `self_trades`: trades with one owner on both sides, over every run (goal: 0).
"""

from __future__ import annotations

from typing import Any

from .liquidity_traces import FlowShape

GOALS = {
    "inventory_breaches": lambda value: value == 0,
    "adverse_selection_reduction": lambda value: value is not None and value >= 0.3,
    "spread_increase": lambda value: value is not None and value <= 0.2,
    "amm_reserve_mismatch": lambda value: value == 0,
    "self_trades": lambda value: value == 0,
}


def summarise(runs: list[dict[str, Any]], seeds: list[int], shape: FlowShape) -> dict[str, Any]:
    breaches = sum(
        figures["inventory_breaches"] + (figures["halted"] is not None)
        for run in runs
        for name, figures in run["strategies"].items()
        if name != "amm"
    )
    trending = [run for run in runs if run["trace"] == "trending"]
    reductions = [(_reduction(run), run["seed"]) for run in trending]
    increases = [(_increase(run), run["seed"]) for run in trending]
    mismatches = [(run["strategies"]["amm"]["mismatch"], run["seed"], run["trace"])
                  for run in runs]  # fmt: skip
    worst_reduction = min(reductions, default=(None, None), key=lambda pair: _low(pair[0]))
    worst_increase = max(increases, default=(None, None), key=lambda pair: _high(pair[0]))
    worst_mismatch = max(mismatches, default=(0, None, None))
    result = {
        "inventory_breaches": breaches,
        "adverse_selection_reduction": worst_reduction[0],
        "spread_increase": worst_increase[0],
        "amm_reserve_mismatch": worst_mismatch[0],
        "self_trades": sum(f["self_trades"] for run in runs for f in run["strategies"].values()),
    }
    goals = {name: GOALS[name](value) for name, value in result.items()}
    return {
        **result,
        "goals": goals,
        "passed": all(goals.values()),
        "worst_seed": {"adverse_selection_reduction": worst_reduction[1],
                       "spread_increase": worst_increase[1]},
        "seeds": seeds,
        "by_seed": {"adverse_selection_reduction": {str(seed): value for value, seed in reductions},
                    "spread_increase": {str(seed): value for value, seed in increases}},
        "shape": vars(shape),
        "adverse_selection_measure": (
            f"sum over fills of lots x the move of the fair price over the next {shape.horizon} "
            "steps in the taker's direction (quote asset)"
        ),
        "runs": runs,
    }


def _reduction(run: dict[str, Any]) -> float | None:
    adaptive = run["strategies"]["adaptive"]["adverse_selection"]
    fixed = run["strategies"]["fixed"]["adverse_selection"]
    return round(1 - adaptive / fixed, 4) if fixed > 0 else None


def _increase(run: dict[str, Any]) -> float | None:
    adaptive = run["strategies"]["adaptive"]["spread_bps"]
    fixed = run["strategies"]["fixed"]["spread_bps"]
    return round(adaptive / fixed - 1, 4) if fixed > 0 else None


def _low(value: float | None) -> float:
    return float("-inf") if value is None else value


def _high(value: float | None) -> float:
    return float("inf") if value is None else value

"""Predictive scaling: a model fitted on the recent history forecasts the load `horizon_s`
ahead (10 min by default) and advises more capacity before the forecast crosses the target.

The metric is resampled to `step_s` means. Each step's features are its trend (time), its
daily seasonality (two harmonics of the time of day, once a day of history is there to learn
them) and lags (the value now, a step ago, five steps ago); a ridge regression maps them to the
value `horizon_s` later (plugins/forecast.py, imported at the first fit, once there is
`min_history_s` of history: the node's process imports no numerical library before). The policy
reports its own forecast error (mean absolute percentage error over the last `evaluate_s`,
forecasting each point from a model fitted on what came before it) so the operator can judge
it, and its advice is forecast-only unless `act = true`: the action hook is not called for it.
"""

from __future__ import annotations

import math
from typing import Any

from .hookspecs import declare_settings, hookimpl, settings_of
from .recommendation import Recommendation
from .series import lookup

NAME = "predictive"
DEFAULTS = {
    "metric": "matching_busy",
    "target": 0.7,
    "horizon_s": 600,
    "step_s": 60,
    "min_history_s": 1200,
    "evaluate_s": 1800,
    "max_history_s": 3 * 86400,
    "act": False,
}


scaling_settings = declare_settings("scaling_settings", NAME, DEFAULTS)


STEPS_SHOWN = 60
"""How many of the latest steps `forecast_load` returns with its forecast."""


@hookimpl
def recommend_scaling(history: list[dict], settings: dict, now: float) -> list[Recommendation]:
    option = settings_of(settings, NAME, DEFAULTS)
    outlook = _outlook(history, option, now)
    forecast = outlook["forecast"]
    target = option["target"]
    if forecast is None or forecast[1] <= target:
        return []  # too little history to forecast from (no advice, nothing missing), or fine
    value, error = forecast[1], outlook["forecast_error"]
    confidence = 0.5 if error is None else max(0.0, 1.0 - error)
    error_text = "unknown yet" if error is None else f"{error:.0%}"
    return [
        Recommendation(
            policy=NAME,
            action="scale_up",
            resource="nodes",
            current=1,
            desired=math.ceil(value / target),
            metric=f"{option['metric']} (forecast)",
            ratio=round(value / target, 3),
            confidence=round(confidence, 2),
            reason=(
                f"{option['metric']} forecast at {value:.3g} in "
                f"{option['horizon_s'] / 60:g} min (target {target:g}, now "
                f"{outlook['steps'][-1][1]:.3g}); recent forecast error {error_text}"
            ),
            details={
                "forecast": value,
                "horizon_s": option["horizon_s"],
                "forecast_error": error,
                "forecast_only": not option["act"],
            },
        )
    ]


@hookimpl
def forecast_load(history: list[dict], settings: dict, now: float) -> dict[str, Any]:
    return _outlook(history, settings_of(settings, NAME, DEFAULTS), now)


_last_outlook: list[Any] = [None, None]
"""(key, outlook) of the latest call: both hooks ask for the same moment, the model is fitted
once."""


def _outlook(history: list[dict], option: dict[str, Any], now: float) -> dict[str, Any]:
    """The steps the model sees, and its forecast `horizon_s` past the last one (None, with
    why, while there is less than `min_history_s` of history)."""
    key = (now, len(history), history[-1]["time"] if history else None, *option.items())
    if _last_outlook[0] != key:
        _last_outlook[:] = [key, _fit_outlook(history, option, now)]
    return _last_outlook[1]


def _fit_outlook(history: list[dict], option: dict[str, Any], now: float) -> dict[str, Any]:
    times, values = resample(history, option["metric"], option["step_s"], now,
                             option["max_history_s"])  # fmt: skip
    outlook: dict[str, Any] = {
        "metric": option["metric"],
        "target": option["target"],
        "step_s": option["step_s"],
        "horizon_s": option["horizon_s"],
        "steps": [[float(t), round(float(v), 4)] for t, v in zip(
            times[-STEPS_SHOWN:], values[-STEPS_SHOWN:], strict=True)],
        "forecast": None,
        "forecast_error": None,
    }  # fmt: skip
    span = times[-1] - times[0] if len(times) >= 2 else 0.0
    if span < option["min_history_s"]:
        outlook["why"] = (
            f"forecasts start after {option['min_history_s'] / 60:g} min of history "
            f"({span / 60:.0f} min so far)"
        )
        return outlook
    steps = max(1, round(option["horizon_s"] / option["step_s"]))
    if len(times) <= steps + 1:  # steps without readings are left out: the span may be there
        outlook["why"] = f"forecasts need more than {steps + 1} steps with readings"
        return outlook
    from .forecast import forecast

    found, error = forecast(times, values, steps, round(option["evaluate_s"] / option["step_s"]))
    # a load is never below zero, however a short history's trend extrapolates
    value = round(max(0.0, found), 4)
    outlook["forecast"] = [float(times[-1] + option["horizon_s"]), value]
    outlook["forecast_error"] = None if error is None else round(error, 4)
    return outlook


def resample(
    history: list[dict], metric: str, step_s: float, now: float, span_s: float
) -> tuple[list[float], list[float]]:
    """Step start times and the metric's mean in each step, oldest first (steps without a
    reading are left out)."""
    sums: dict[int, list[float]] = {}
    for sample in history:
        if sample["time"] < now - span_s:
            continue
        value = lookup(sample, metric)
        if value is not None:
            cell = sums.setdefault(int(sample["time"] // step_s), [0.0, 0])
            cell[0] += value
            cell[1] += 1
    keys = sorted(sums)
    return [key * step_s for key in keys], [sums[key][0] / sums[key][1] for key in keys]

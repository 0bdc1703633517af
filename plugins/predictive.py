"""Predictive scaling: a model fitted on the recent history forecasts the load `horizon_s`
ahead (10 min by default) and advises more capacity before the forecast crosses the target.

The metric is resampled to `step_s` means. Each step's features are its trend (time), its
daily seasonality (two harmonics of the time of day, once a day of history is there to learn
them) and lags (the value now, a step ago, five steps ago); a ridge regression (scikit-learn)
maps them to the value `horizon_s` later. The policy reports its own forecast error (mean
absolute percentage error over the last `evaluate_s`, forecasting each point from a model fitted
on what came before it) so the operator can judge it, and its advice is forecast-only unless
`act = true`: the action hook is not called for it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.linear_model import Ridge

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
DAY_S = 86400


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
    features = design(times, values, seasonal=span >= DAY_S)
    forecast = fit_predict(features[:-steps], values[steps:], features[-1:])[0]
    error = forecast_error(features, values, steps, round(option["evaluate_s"] / option["step_s"]))
    # a load is never below zero, however a short history's trend extrapolates
    value = round(max(0.0, float(forecast)), 4)
    outlook["forecast"] = [float(times[-1] + option["horizon_s"]), value]
    outlook["forecast_error"] = None if error is None else round(error, 4)
    return outlook


def resample(
    history: list[dict], metric: str, step_s: float, now: float, span_s: float
) -> tuple[np.ndarray, np.ndarray]:
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
    return (
        np.array([key * step_s for key in keys], dtype=float),
        np.array([sums[key][0] / sums[key][1] for key in keys], dtype=float),
    )


def design(times: np.ndarray, values: np.ndarray, seasonal: bool) -> np.ndarray:
    """Features per step: trend, time-of-day harmonics (zeros without a day of history), and
    the value now, one step ago and five steps ago."""
    day = 2 * math.pi * (times % DAY_S) / DAY_S
    harmonics = [np.sin(day), np.cos(day), np.sin(2 * day), np.cos(2 * day)]
    if not seasonal:
        harmonics = [np.zeros_like(times)] * 4
    lag1 = np.concatenate([values[:1], values[:-1]])
    lag5 = np.concatenate([np.repeat(values[:1], 5), values[:-5]])[: len(values)]
    trend = (times - times[0]) / DAY_S
    return np.column_stack([trend, *harmonics, values, lag1, lag5])


def fit_predict(features: np.ndarray, targets: np.ndarray, query: np.ndarray) -> np.ndarray:
    return Ridge(alpha=1e-3).fit(features, targets).predict(query)


def forecast_error(features: np.ndarray, values: np.ndarray, steps: int, span: int) -> float | None:
    """Mean absolute percentage error of forecasts for the last `span` steps, each made from a
    model fitted only on what was known `steps` before it (refitted every few steps)."""
    first = len(values) - span
    if first - steps < 10:
        return None
    errors = []
    stride = max(1, span // 3)
    for start in range(first, len(values), stride):
        known = start - steps  # the forecast for `start` is made at `known`
        model = Ridge(alpha=1e-3).fit(features[: known - steps + 1], values[steps : known + 1])
        stop = min(start + stride, len(values))
        predicted = model.predict(features[known : known + (stop - start)])
        actual = values[start:stop]
        errors.extend(np.abs(predicted - actual) / np.maximum(np.abs(actual), 1e-9))
    return float(np.mean(errors)) if errors else None

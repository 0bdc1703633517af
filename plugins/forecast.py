"""The predictive policy's model: each step's features and a ridge regression from them to the
value `steps` later, with its own forecast error.

Numpy is imported here only, and this module only when the policy first fits, so loading the
scaling plugins in the node's process imports no numerical library. The ridge regression is
solved in closed form: eight features and a few thousand steps need no more than that.
"""

from __future__ import annotations

import math

import numpy as np

DAY_S = 86400
RIDGE_ALPHA = 1.0
"""The penalty on standardized features (each column scaled to unit deviation first, so one
penalty means the same for a lag near 0.5 and a trend counted in days): about one step's worth
of evidence, which keeps a short or collinear history from fitting coefficients of hundreds
that a single odd step then multiplies."""


class Ridge:
    """Least squares with an L2 penalty on the coefficients, not on the intercept: the
    features are standardized and the targets centred, and the penalized normal equations
    solved; the coefficients are given back on the features' own scale."""

    def __init__(self, alpha: float = RIDGE_ALPHA) -> None:
        self.alpha = alpha
        self.coefficients = np.zeros(0)
        self.intercept = 0.0

    def fit(self, features: np.ndarray, targets: np.ndarray) -> Ridge:
        feature_means = features.mean(axis=0)
        spread = features.std(axis=0)
        spread[spread == 0] = 1.0  # a constant column (no seasonality yet) stays all zeros
        target_mean = targets.mean()
        scaled = (features - feature_means) / spread
        gram = scaled.T @ scaled + self.alpha * np.eye(features.shape[1])
        coefficients = np.linalg.solve(gram, scaled.T @ (targets - target_mean))
        self.coefficients = coefficients / spread
        self.intercept = float(target_mean - feature_means @ self.coefficients)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return features @ self.coefficients + self.intercept


def forecast(
    times: list[float], values: list[float], steps: int, evaluate_steps: int
) -> tuple[float, float | None]:
    """The value `steps` steps past the last one, from the steps' start times and means (oldest
    first), and the forecast error over the last `evaluate_steps` (None: too few steps).

    The forecast is clamped to what the history makes possible: never below zero, never above
    the highest value seen plus the largest rise over `steps` steps seen, since a regression
    extrapolates any odd step without bound and no history backs a larger one."""
    at, measured = np.array(times, dtype=float), np.array(values, dtype=float)
    features = design(at, measured, seasonal=times[-1] - times[0] >= DAY_S)
    value = fit_predict(features[:-steps], measured[steps:], features[-1:])[0]
    rises = measured[steps:] - measured[:-steps]
    ceiling = measured.max() + max(0.0, float(rises.max()))
    return float(np.clip(value, 0.0, ceiling)), forecast_error(
        features, measured, steps, evaluate_steps
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
    return Ridge().fit(features, targets).predict(query)


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
        model = Ridge().fit(features[: known - steps + 1], values[steps : known + 1])
        stop = min(start + stride, len(values))
        predicted = model.predict(features[known : known + (stop - start)])
        actual = values[start:stop]
        errors.extend(np.abs(predicted - actual) / np.maximum(np.abs(actual), 1e-9))
    return float(np.mean(errors)) if errors else None

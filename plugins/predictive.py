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

What keeps it from advising on noise: it forecasts only from finished steps (the current,
unfinished minute is a few seconds' mean, where one spike weighs as much as the minute), on
standardized features with a real penalty, clamped to what the history makes possible
(plugins/forecast.py); and it advises only while its own recent forecast error is known and
within `max_error`: a model that has just been wrong (after a flash crowd, say) keeps quiet
until it is right again. The metric is the offered load (plugins/reactive.py `offered_load`),
so a forecast past saturation says how far past, and the count is sized from the real node
count (`node_count`).
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from .hookspecs import declare_settings, hookimpl, settings_of
from .reactive import LOAD, node_count, offered_load
from .recommendation import Recommendation
from .series import lookup

NAME = "predictive"
DEFAULTS = {
    "metric": LOAD,
    "target": 0.7,
    "horizon_s": 600,
    "step_s": 60,
    "min_history_s": 1200,
    "evaluate_s": 1800,
    "max_history_s": 3 * 86400,
    "max_error": 0.2,
    "act": False,
}


scaling_settings = declare_settings("scaling_settings", NAME, DEFAULTS)


STEPS_SHOWN = 60
"""How many of the latest steps `forecast_load` returns with its forecast."""


@hookimpl
def recommend_scaling(history: list[dict], settings: dict, now: float) -> list[Recommendation]:
    option = settings_of(settings, NAME, DEFAULTS)
    outlook = _outlook(history, option, now)
    forecast, error = outlook["forecast"], outlook["forecast_error"]
    target = option["target"]
    if forecast is None or forecast[1] <= target:
        return []  # too little history to forecast from (no advice, nothing missing), or fine
    if error is None or error > option["max_error"]:
        return []  # a model not yet shown right, or just shown wrong, advises nothing
    value = forecast[1]
    current = node_count(history, settings)
    return [
        Recommendation(
            policy=NAME,
            action="scale_up",
            resource="nodes",
            current=current,
            desired=max(current + 1, math.ceil(current * value / target - 1e-9)),
            metric=f"{option['metric']} (forecast)",
            ratio=round(value / target, 3),
            confidence=round(max(0.0, 1.0 - error), 2),
            reason=(
                f"{option['metric']} forecast at {value:.3g} in "
                f"{option['horizon_s'] / 60:g} min (target {target:g}, last finished step "
                f"{outlook['steps'][-1][1]:.3g}); recent forecast error {error:.0%}"
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
"""(key, outlook) of the latest fit: both hooks ask for the same moment, and every evaluation
between two finished steps sees the same steps, so the model is fitted once a step."""


def _outlook(history: list[dict], option: dict[str, Any], now: float) -> dict[str, Any]:
    """The finished steps the model sees, and its forecast `horizon_s` past the last one (None,
    with why, while there is less than `min_history_s` of history)."""
    times, values = _steps.of(history, option, now)
    key = (tuple(times[-2:]), len(times), sum(values), *option.items())
    if _last_outlook[0] != key:
        _last_outlook[:] = [key, _fit_outlook(times, values, option)]
    return _last_outlook[1]


def _fit_outlook(times: list[float], values: list[float], option: dict[str, Any]) -> dict[str, Any]:
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
    value = round(found, 4)
    outlook["forecast"] = [float(times[-1] + option["horizon_s"]), value]
    outlook["forecast_error"] = None if error is None else round(error, 4)
    return outlook


class FinishedSteps:
    """Each finished step's sum and count of readings, kept from one evaluation to the next: a
    node's history only grows at its end and loses its oldest readings, so a finished step does
    not change (but for the oldest, read again), and only the samples after the last one read
    are read. A history that no longer holds that sample is read whole."""

    def __init__(self) -> None:
        self.last: dict | None = None
        """The last sample read (kept, so that its id is not reused by another one)."""
        self.key: tuple = ()
        self.sums: dict[int, list[float]] = {}

    def of(
        self, history: list[dict], option: dict[str, Any], now: float
    ) -> tuple[list[float], list[float]]:
        """Start times and the metric's mean of the finished steps within `max_history_s`,
        oldest first (the step `now` is in is left out, and so are steps without a reading)."""
        step_s, metric = option["step_s"], option["metric"]
        if not history:
            return [], []
        read = offered_load if metric == LOAD else (lambda sample: lookup(sample, metric))
        begin = self._resume(history, (step_s, metric), read)
        unfinished = int(now // step_s)
        for sample in history[begin:]:
            index = int(sample["time"] // step_s)
            if index >= unfinished:
                break
            self._add(index, read(sample))
            self.last = sample
        oldest = (now - option["max_history_s"]) // step_s
        sums = self.sums
        keys = [key for key in sorted(sums) if key >= oldest and sums[key][1]]
        return [key * step_s for key in keys], [sums[key][0] / sums[key][1] for key in keys]

    def _resume(self, history: list[dict], key: tuple, read: Any) -> int:
        """Where to go on reading `history`; the oldest step read again from what is left."""
        last = self.last
        at = -1
        if last is not None and key == self.key:
            at = bisect.bisect_left(history, last["time"], key=_time)
            while at < len(history) and history[at]["time"] == last["time"]:
                if history[at] is last:
                    break
                at += 1
            else:
                at = -1
        if at < 0:
            self.key, self.sums, self.last = key, {}, None
            return 0
        step_s = key[0]
        oldest = int(history[0]["time"] // step_s)
        for index in [index for index in self.sums if index <= oldest]:
            del self.sums[index]
        for sample in history[: at + 1]:
            if int(sample["time"] // step_s) != oldest:
                break
            self._add(oldest, read(sample))
        return at + 1

    def _add(self, index: int, value: float | None) -> None:
        cell = self.sums.setdefault(index, [0.0, 0])
        if value is not None:
            cell[0] += value
            cell[1] += 1


def _time(sample: dict) -> float:
    return sample["time"]


_steps = FinishedSteps()

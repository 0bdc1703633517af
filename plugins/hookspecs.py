"""The hooks a marketnode plugin may implement.

Plugins, built-in ones included, are modules listed under the `marketnode.plugins` entry point
group; each implements some of these hooks with `@hookimpl`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import duckdb

    from .alerts import Alert
    from .recommendation import Recommendation

hookspec = pluggy.HookspecMarker("marketnode")
hookimpl = pluggy.HookimplMarker("marketnode")


@hookspec
def detect_integrity(
    connection: duckdb.DuckDBPyConnection, settings: dict[str, Any]
) -> list[Alert] | None:
    """Look at the analytics store (tables trades, events, links and their views) and return
    the alerts this detector raises. `settings` maps each detector's name to its settings
    (what `integrity_settings` declared, overridden by config.toml's `[integrity.NAME]`)."""


@hookspec
def integrity_settings() -> dict[str, dict[str, Any]] | None:
    """The settings of this plugin's detectors with their defaults, by detector name, e.g.
    `{"churn": {"window_s": 86400}}`. The operator overrides them in `[integrity.churn]`; a
    value must have its default's type, and a key or table nobody declared is refused."""


@hookspec
def act_on_alert(alert: Alert) -> None:
    """Do something about a new alert (disable a peer, halt a market, page someone). Nothing
    acts by default."""


@hookspec
def scaling_settings() -> dict[str, dict[str, Any]] | None:
    """The settings of this plugin's scaling policies with their defaults, by policy name; the
    operator overrides them in `[scaling.NAME]`, checked as `integrity_settings` are."""


@hookspec
def recommend_scaling(
    history: list[dict[str, Any]], settings: dict[str, dict[str, Any]], now: float
) -> list[Recommendation] | None:
    """Advice for this moment from the node's samples (oldest first, one a second; see
    node/ops/sampler.py for their fields). Stateless: the node applies the stabilization window
    and keeps `since`. A metric that is missing or older than the policy's `stale_s` must give
    a `missing` recommendation, never a scale-down."""


@hookspec(firstresult=True)
def forecast_load(
    history: list[dict[str, Any]], settings: dict[str, dict[str, Any]], now: float
) -> dict[str, Any] | None:
    """The load outlook the dashboard plots whether or not it leads to advice: `metric`,
    `target`, `step_s`, `steps` (`[time, mean]` pairs the forecast was made from, oldest
    first), `forecast` (`[time, value]`, or None with `why`) and `forecast_error`. The first
    plugin that answers is used."""


@hookspec
def act_on_recommendation(recommendation: Recommendation) -> None:
    """Do something about a new recommendation (call an orchestrator). Nothing acts by
    default."""


def declare_settings(hook: str, name: str, defaults: dict[str, Any]) -> Callable[[], dict]:
    """A plugin's `integrity_settings` or `scaling_settings` implementation, declaring `name`'s
    settings and their defaults: `scaling_settings = declare_settings("scaling_settings", ...)`
    at module level (pluggy finds an implementation by its attribute name)."""

    def settings() -> dict[str, dict[str, Any]]:
        return {name: defaults}

    settings.__name__ = hook
    return hookimpl(settings)


def settings_of(settings: dict[str, dict[str, Any]], name: str, defaults: dict) -> dict[str, Any]:
    """Detector `name`'s settings: its defaults under what `settings` gives it."""
    return {**defaults, **settings.get(name, {})}

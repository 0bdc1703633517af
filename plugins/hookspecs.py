"""The hooks a marketnode plugin may implement, one class per entry point group.

A plugin is a module listed under a group's entry point (built-in ones too, in marketnode's own
pyproject.toml): `marketnode.integrity` for detectors, called in the analytics process, and
`marketnode.scaling` for policies, called in the node's process, and `marketnode.liquidity` for
liquidity strategies, called in the liquidity process. It implements some of its
group's hooks as module-level functions marked `@hookimpl`. Keeping the groups apart keeps a
detector's imports (DuckDB queries, scikit-learn) out of the matching process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import duckdb

    from .alerts import Alert
    from .quoting import Decision, MarketState
    from .recommendation import Recommendation

hookspec = pluggy.HookspecMarker("marketnode")
hookimpl = pluggy.HookimplMarker("marketnode")


class IntegrityHooks:
    """Hooks of the `marketnode.integrity` group: market-integrity detectors."""

    @hookspec
    def integrity_settings(self) -> dict[str, dict[str, Any]] | None:
        """The settings of this plugin's detectors with their defaults, by detector name, e.g.
        `{"churn": {"window_s": 86400}}`. The operator overrides them in `[integrity.churn]`;
        a value must have its default's type, and a key or table nobody declared is refused."""

    @hookspec
    def detect_integrity(
        self, connection: duckdb.DuckDBPyConnection, settings: dict[str, Any]
    ) -> list[Alert] | None:
        """Look at the analytics store (tables trades, events, links and their views) and
        return the alerts this detector raises. `settings` maps each detector's name to its
        settings (what `integrity_settings` declared, overridden by `[integrity.NAME]`)."""

    @hookspec
    def prepare_integrity(self) -> None:
        """Load what this plugin's scans need that is slow to load (a library taking a second
        to import). A running node's analytics process calls it once in each lane's scanning
        thread, before that thread's priority is lowered: an import holds the interpreter lock
        throughout, and a low-priority thread holding it stalls the process's other threads
        (the follower, the wash scans) for as long as the OS keeps it waiting for a core."""

    @hookspec
    def act_on_alert(self, alert: Alert) -> None:
        """Do something about a new alert (disable a peer, halt a market, page someone).
        Nothing acts by default."""


class ScalingHooks:
    """Hooks of the `marketnode.scaling` group: scaling policies."""

    @hookspec
    def scaling_settings(self) -> dict[str, dict[str, Any]] | None:
        """The settings of this plugin's scaling policies with their defaults, by policy name;
        the operator overrides them in `[scaling.NAME]`, checked as `integrity_settings`
        are."""

    @hookspec
    def recommend_scaling(
        self, history: list[dict[str, Any]], settings: dict[str, dict[str, Any]], now: float
    ) -> list[Recommendation] | None:
        """Advice for this moment from the node's samples (oldest first, one a second; see
        node/ops/sampler.py for their fields). Stateless: the node applies the stabilization
        window and keeps `since`. A metric that is missing or older than the policy's
        `stale_s` must give a `missing` recommendation, never a scale-down."""

    @hookspec(firstresult=True)
    def forecast_load(
        self, history: list[dict[str, Any]], settings: dict[str, dict[str, Any]], now: float
    ) -> dict[str, Any] | None:
        """The load outlook the dashboard plots whether or not it leads to advice: `metric`,
        `target`, `step_s`, `steps` (`[time, mean]` pairs the forecast was made from, oldest
        first), `forecast` (`[time, value]`, or None with `why`) and `forecast_error`. The
        first plugin that answers is used."""

    @hookspec
    def act_on_recommendation(self, recommendation: Recommendation) -> None:
        """Do something about a new recommendation (call an orchestrator). Nothing acts by
        default."""


class LiquidityHooks:
    """Hooks of the `marketnode.liquidity` group: liquidity strategies (AMM, market maker)."""

    @hookspec
    def liquidity_settings(self) -> dict[str, dict[str, Any]] | None:
        """The settings of this plugin's strategies with their defaults, by strategy name;
        a `[liquidity.NAME]` table names its `strategy` and overrides them, checked as
        `integrity_settings` are."""

    @hookspec(firstresult=True)
    def desired_quotes(
        self, strategy: str, state: MarketState, settings: dict[str, Any]
    ) -> Decision | None:
        """The quotes strategy `strategy` wants resting in `state`'s market now, with its
        settings (declared defaults under the instance's table); None when `strategy` is not
        this plugin's. Stateless: what a strategy must remember (inventory, resting orders,
        the day's PnL) is in `state`, kept by its host from the fills, so a restarted
        process quotes exactly as before. The host diffs the answer against what rests."""


def declare_settings(hook: str, name: str, defaults: dict[str, Any]) -> Callable[[], dict]:
    """A plugin's `integrity_settings`, `scaling_settings` or `liquidity_settings`
    implementation, declaring `name`'s settings and their defaults:
    `scaling_settings = declare_settings("scaling_settings", ...)` at module level (pluggy
    finds an implementation by its attribute name)."""

    def settings() -> dict[str, dict[str, Any]]:
        return {name: defaults}

    settings.__name__ = hook
    return hookimpl(settings)


def settings_of(settings: dict[str, dict[str, Any]], name: str, defaults: dict) -> dict[str, Any]:
    """Detector `name`'s settings: its defaults under what `settings` gives it."""
    return {**defaults, **settings.get(name, {})}

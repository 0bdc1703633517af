"""Scaling recommendations: what a policy advises, with the evidence an operator needs."""

from __future__ import annotations

from typing import Any

import msgspec

ACTIONS = ("scale_up", "scale_down", "warn", "missing")
"""`missing`: a metric the policy needs is absent or stale; it is reported, never acted on,
and never turns into a scale-down."""


class Recommendation(msgspec.Struct, kw_only=True):
    """One piece of advice: do `action` to `resource`, from `current` to `desired`, because
    `metric` stands at `ratio` times its target."""

    policy: str
    action: str
    resource: str
    current: float | None
    desired: float | None
    metric: str
    ratio: float | None
    confidence: float
    reason: str
    since: float = 0.0
    """When this advice (same policy, resource and action) was first given, epoch seconds."""
    details: dict[str, Any] = {}

    @property
    def key(self) -> tuple[str, str]:
        return self.policy, self.resource

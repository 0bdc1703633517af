"""When the relayer sends a batch that is not full yet: the `settlement_timing` hook and the
built-in policy.

The relayer always sends a full batch, and a batch whose oldest trade reaches its deadline;
between the two it asks this hook, each time it looks, whether fees are cheap enough to send
now. A policy sees the recent blocks' base fees (`eth_feeHistory`, oldest first, the next
block's last) and the seconds left before the earliest deadline, so a policy that forecasts
fees can wait for a trough it expects before then.

The hook has a group of its own, `marketnode.settlement` (a plugin lists itself under that
entry point group); it runs in the relayer's process only. The built-in policy, `cheap_fees`:
send when the next block's base fee is at or below the `quantile` of the recent ones (a dip
in a cycle, the calm after a spike), or always once less than `hurry_s` is left.
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
from typing import Any

import pluggy

from .hookspecs import hookimpl, hookspec

log = logging.getLogger(__name__)
ENTRY_POINTS = "marketnode.settlement"
CHEAP_FEES = {"quantile": 0.25, "hurry_s": 5.0, "min_history": 5}
"""The built-in policy's settings."""


class SettlementTimingHooks:
    """Hooks of the `marketnode.settlement` group."""

    @hookspec(firstresult=True)
    def settlement_timing(
        self, base_fees: list[int], seconds_left: float, settings: dict[str, Any]
    ) -> bool | None:
        """Send the waiting batch now (True), or wait (False)? `base_fees`: wei per gas of the
        recent blocks, oldest first, the last the next block's; `seconds_left` before the
        earliest deadline of its trades (the relayer sends at the deadline whatever the answer).
        The first plugin that answers decides."""


@hookimpl(trylast=True)
def settlement_timing(base_fees: list[int], seconds_left: float, settings: dict[str, Any]
                      ) -> bool:  # fmt: skip
    """The built-in `cheap_fees` policy."""
    wanted = {**CHEAP_FEES, **settings}
    if seconds_left <= wanted["hurry_s"] or len(base_fees) < wanted["min_history"]:
        return True
    ranked = sorted(base_fees[:-1])
    threshold = ranked[min(len(ranked) - 1, int(wanted["quantile"] * len(ranked)))]
    return base_fees[-1] <= threshold


def timing_manager() -> pluggy.PluginManager:
    """The hook's plugins: installed ones (their entry points) first, the built-in last."""
    manager = pluggy.PluginManager("marketnode")
    manager.add_hookspecs(SettlementTimingHooks)
    manager.register(sys.modules[__name__], name="cheap_fees")
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINTS):
        try:
            manager.register(entry_point.load(), name=entry_point.name)
        except Exception as error:  # a broken plugin must not stop settlement
            log.error("settlement plugin %s cannot be loaded: %s", entry_point.name, error)
    return manager


def send_now(manager: pluggy.PluginManager, base_fees: list[int], seconds_left: float,
             settings: dict[str, Any] | None = None) -> bool:  # fmt: skip
    """The plugins' decision; a plugin that raises is logged and the batch sent (never held
    back by a broken policy)."""
    try:
        answer = manager.hook.settlement_timing(
            base_fees=base_fees, seconds_left=seconds_left, settings=settings or {}
        )
    except Exception as error:
        log.error("settlement_timing failed: %s: sending now", error)
        return True
    return True if answer is None else bool(answer)

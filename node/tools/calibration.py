"""What the demo offers: rates taken from what this machine sustains, measured at the start.

The demo's node is pushed as hard as a window of messages in flight allows for a couple of
seconds, with the seeded flow the demo then trades. That figure includes everything the
demo's flow will meet (the loopback sockets, CURVE, the synced journal on this disk, the
analytics process and whatever else the machine is busy with), which the engine bench's
in-memory figure leaves out and could only guess at by scaling. The steady flow is then
offered at 40% of it and the drop at 90%: busy, never at collapse.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..client import NodeAddress
from ..home.keys import KeyPair
from .flow import generate_flow
from .load import LoadProfile, run_load

CALIBRATION_S = 2.0
CALIBRATION_ORDERS = 60_000
"""Enough for two seconds of a fast machine; a faster one ends early, its rate still measured."""
CALIBRATION_FIRST_ID = 10**12
"""Calibration orders' ids, far above the flow's."""
CALIBRATION_WINDOW = 32
STEADY_SHARE = 0.40
DROP_SHARE = 0.90
LOWEST_RATE = 100.0
"""Rates below this say more about a stalled calibration than about the machine."""


@dataclass(frozen=True)
class DemoRates:
    """Orders/s of the steady flow and of the drop, and what they came from: the measured
    capacity, or None when the operator gave the rate."""

    steady: float
    drop: float
    measured: float | None = None

    @property
    def drop_times(self) -> float:
        """The drop as a multiple of the steady rate (the load profile's `burst_x`)."""
        return self.drop / self.steady

    def reason(self) -> str:
        """One line for the screen and the summary: the rates and why."""
        chosen = f"steady {self.steady:,.0f} orders/s, drop {self.drop:,.0f} orders/s"
        if self.measured is None:
            return f"{chosen}: --rate given (the drop at {self.drop_times:.2f}x it)"
        return (
            f"{chosen}: {STEADY_SHARE:.0%} and {DROP_SHARE:.0%} of the {self.measured:,.0f} "
            f"orders/s this machine sustained in a {CALIBRATION_S:g} s calibration"
        )


def rates_for(capacity: float) -> DemoRates:
    """The steady and drop rates for a machine that sustains `capacity` orders/s, taken in
    whole orders a second: the figure the summary reports is the one the rates follow from."""
    capacity = round(capacity)
    steady = max(LOWEST_RATE, capacity * STEADY_SHARE)
    return DemoRates(steady, max(steady, capacity * DROP_SHARE), measured=capacity)


def given_rates(rate: float) -> DemoRates:
    """The operator's steady `rate`, the drop in the same proportion as a calibrated one."""
    return DemoRates(rate, rate * DROP_SHARE / STEADY_SHARE)


def measure_capacity(address: NodeAddress, key: KeyPair | None) -> float:
    """Orders/s the node answered with `CALIBRATION_WINDOW` messages of ten orders always in
    flight, over `CALIBRATION_S`."""
    commands = generate_flow(CALIBRATION_ORDERS, seed=5, first_id=CALIBRATION_FIRST_ID)
    profile = LoadProfile(rate=0, duration_s=CALIBRATION_S, batch=10, window=CALIBRATION_WINDOW)
    result = run_load(address, key, commands, profile)
    return result.answered / result.elapsed_s if result.elapsed_s else 0.0

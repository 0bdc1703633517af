"""An instance's books, from its fills alone: holdings, realized and unrealized PnL, the day's
PnL, and the short-term volatility and order flow its strategy reads.

Integers for what is exact (lots held, tick-lots of the quote asset: a fill of q lots at p
ticks moves exactly p * q), floats for the estimates (average cost, volatility). Realized PnL
is by average cost of the position taken since the start (base held minus base at the start):
reducing the position realizes (price - average cost) x lots; unrealized is the position at the
mid against that cost. `fees` is the part of the fills' value that is the strategy's own fee
(an AMM's `fee_bps` of each fill's quote amount, as Uniswap v2 takes it from the amount in,
valued at the fill's price): already inside the PnL, kept apart to show what the fee earned.
The node charges the instances nothing: their orders are unsigned, and a market's `fee_bps` is
settled on chain for signed orders only.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field

from marketnode.plugins.quoting import BUY, Fill

DAY_S = 86_400


@dataclass
class Ledger:
    """Holdings and PnL of one instance (`base` lots, `quote` tick-lots)."""

    base: int
    quote: int
    start_base: int
    average_cost: float = 0.0
    realized: float = 0.0
    fills: int = 0
    bought: int = 0
    sold: int = 0
    fees: float = 0.0
    """Tick-lots of the strategy's own fee in the fills (see the module's docstring)."""
    day: int = -1
    day_value: float | None = None
    """The holdings' value at mid when the UTC day began (or when the first mid of it came)."""

    @property
    def position(self) -> int:
        return self.base - self.start_base

    def apply(self, fill: Fill, fee_bps: float = 0) -> None:
        """Move the holdings exactly as the fill says, and the average cost; count the
        strategy's fee (`fee_bps` of the fill's quote amount)."""
        signed = fill.qty if fill.side == BUY else -fill.qty
        self.fees += fill.price * fill.qty * fee_bps / 10_000
        before = self.position
        self.base += signed
        self.quote -= signed * fill.price
        self.fills += 1
        if fill.side == BUY:
            self.bought += fill.qty
        else:
            self.sold += fill.qty
        after = self.position
        if before == 0 or (before > 0) == (signed > 0):  # opening or adding
            cost = self.average_cost * abs(before) + fill.price * fill.qty
            self.average_cost = cost / abs(after)
            return
        closed = min(abs(signed), abs(before))
        direction = 1 if before > 0 else -1
        self.realized += (fill.price - self.average_cost) * closed * direction
        if after == 0:
            self.average_cost = 0.0
        elif (after > 0) != (before > 0):  # flipped: the rest opens at this price
            self.average_cost = float(fill.price)

    def unrealized(self, mid: float | None) -> float:
        if mid is None or self.position == 0:
            return 0.0
        return (mid - self.average_cost) * self.position

    def value(self, mid: float) -> float:
        return self.base * mid + self.quote

    def pnl_today(self, mid: float | None, now: float) -> float:
        """Value at mid now minus at the day's start (0 until a mid is known)."""
        if mid is None:
            return 0.0
        day = int(now // DAY_S)
        if day != self.day or self.day_value is None:
            self.day, self.day_value = day, self.value(mid)
        return self.value(mid) - self.day_value


@dataclass
class MarketWatch:
    """The mid's samples and the recent fills, for volatility and flow imbalance."""

    volatility_window_s: float
    flow_window_s: float
    mids: deque[tuple[float, float]] = field(default_factory=deque)
    fills: deque[Fill] = field(default_factory=deque)

    def observe_mid(self, now: float, mid: float | None) -> None:
        if mid is not None and mid > 0:
            self.mids.append((now, mid))
        while self.mids and self.mids[0][0] < now - self.volatility_window_s:
            self.mids.popleft()

    def observe_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def recent_fills(self, now: float) -> list[Fill]:
        while self.fills and self.fills[0].time < now - self.flow_window_s:
            self.fills.popleft()
        return list(self.fills)

    def volatility(self) -> float:
        """Standard deviation of log returns per square root of a second (0 with fewer than
        three samples): each return divided by the root of its interval, so uneven sampling
        does not bias it."""
        samples = list(self.mids)
        scaled = [
            math.log(later / earlier) / math.sqrt(t1 - t0)
            for (t0, earlier), (t1, later) in itertools.pairwise(samples)
            if t1 > t0
        ]
        if len(scaled) < 2:
            return 0.0
        mean = sum(scaled) / len(scaled)
        return math.sqrt(sum((value - mean) ** 2 for value in scaled) / (len(scaled) - 1))

    def drift(self) -> float:
        """The mid's mean log return per second over the window (0 with fewer than two
        samples)."""
        if len(self.mids) < 2 or self.mids[-1][0] <= self.mids[0][0]:
            return 0.0
        (t0, first), (t1, last) = self.mids[0], self.mids[-1]
        return math.log(last / first) / (t1 - t0)

    def flow_imbalance(self, now: float) -> float:
        """(bought - sold) / (bought + sold) by the takers of the recent fills."""
        fills = self.recent_fills(now)
        total = sum(fill.qty for fill in fills)
        if not total:
            return 0.0
        return sum(fill.qty if fill.aggressor == BUY else -fill.qty for fill in fills) / total


def utc_now() -> float:
    return time.time()

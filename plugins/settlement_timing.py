"""When the relayer sends a batch that is not full yet: the `settlement_timing` hook and the
built-in policy.

The relayer always sends a full batch, and a batch whose oldest trade reaches its deadline;
between the two it asks this hook, each time it looks, whether to send now. A policy sees the
recent blocks' base fees (`eth_feeHistory`, oldest first, the next block's last), the seconds
left before the earliest deadline, and the batch: how many trades wait, for how long, and how
many a batch takes.

The hook has a group of its own, `marketnode.settlement` (a plugin lists itself under that
entry point group); it runs in the relayer's process only.

The built-in policy, `fee_forecast`, weighs what a trade of the batch costs if sent now against
what it is expected to cost a few blocks later, and sends when no later block is expected to be
cheaper. Two things make a later block cheaper or dearer:

- the base fee there, forecast from the history: a level and its trend (the medians of the
  older and the newer half of the blocks: robust to a spike), followed no further than the
  history reaches; a next fee over the level fades back by 12.5% a block (the slowest a spike
  can end), one under it (a dip) is taken as noise that a deeper dip may follow;
- the batch: a batch's first trade costs 196,070 gas, each further one 87,621 (measured,
  docs/performance.md), so trades that join while it waits (at the rate they came so far)
  lower what each pays.

So a batch waits out a spike, waits for trades to share it on a flat or falling fee, and goes
at once on a climbing fee whose rise the trades joining cannot pay for; it also goes once
fewer than `hurry_blocks` blocks and one look (`look_s`, the relayer's poll interval: the next
look may come too late) are left before its deadline (a transaction sent now is in the next
block), or when the history is too short to forecast from. Replayed over base-fee
traces (`mnode settlement eval`), sending at a dip (the former `cheap_fees` rule: at or under
the recent blocks' 25th percentile) saved 5-35% against sending every trade at once, waiting
for company 20-55%: the base cost a batch shares outweighs a few blocks' fee moves.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import math
import statistics
import sys
from typing import Any

import pluggy

from .hookspecs import hookimpl, hookspec

log = logging.getLogger(__name__)
ENTRY_POINTS = "marketnode.settlement"
BATCH_GAS = 196_070
"""Gas of a settlement batch of one ERC-20 trade (docs/performance.md)."""
TRADE_GAS = 87_621
"""Gas each further trade in the batch adds (docs/performance.md)."""
FEE_FORECAST = {"block_time_s": 12.0, "hurry_blocks": 2, "look_s": 0.5, "min_history": 5}
"""The built-in policy's settings: the chain's seconds per block, how many blocks before the
deadline a batch goes whatever the fees, how long until the relayer looks again (its poll
interval), the fewest blocks of history it forecasts from."""
FALL, RISE = 1 - 0.125, 1 + 0.125
"""The most a base fee moves in one block (EIP-1559)."""


class SettlementTimingHooks:
    """Hooks of the `marketnode.settlement` group."""

    @hookspec(firstresult=True)
    def settlement_timing(
        self, base_fees: list[int], seconds_left: float, settings: dict[str, Any],
        pending: int | None, batch_size: int | None, waited_s: float | None,
    ) -> bool | None:  # fmt: skip
        """Send the waiting batch now (True), or wait (False)? `base_fees`: wei per gas of the
        recent blocks, oldest first, the last the next block's; `seconds_left` before the
        earliest deadline of its trades (the relayer sends at the deadline whatever the answer);
        `pending` trades in the batch, `batch_size` the most it takes, `waited_s` since its
        oldest trade (None when not known). The first plugin that answers decides."""


def batch_gas(trades: float) -> float:
    """Gas of a batch of `trades` trades (a fraction: an expected count)."""
    return BATCH_GAS + TRADE_GAS * (trades - 1)


@functools.lru_cache(maxsize=4096)
def forecast(base_fees: tuple[int, ...], blocks: int) -> tuple[float, ...]:
    """The base fee expected 1..`blocks` blocks after the next one. The history (all but its
    last, the next block's fee) gives a level at the next block and a trend per block: the
    medians of its older and newer halves, in logarithms; the trend is followed no further
    than the history reaches back (past that the level is expected to hold). The next fee's
    departure over the level fades by 12.5% a block (the slowest a spike can end); under the
    level the next fee is expected to follow the trend alone, a dip being noise that a deeper
    dip may follow. Every value stays within what 12.5% a block allows."""
    past = [math.log(max(fee, 1)) for fee in base_fees[:-1]]
    half = len(past) // 2
    older, newer = statistics.median(past[:half]), statistics.median(past[half:])
    trend = (newer - older) / (len(past) / 2)
    level = newer + trend * (len(past) - (half + len(past)) / 2 + 0.5)
    now, at_level = base_fees[-1], math.exp(level)
    expected = []
    for k in range(1, blocks + 1):
        climb = math.exp(trend * min(k, len(past)))
        over = max(0.0, now - at_level)  # a spike's part, fading; a dip's part is noise
        fee = (now - over) * climb + over * FALL**k
        expected.append(min(now * RISE**k, max(now * FALL**k, fee)))
    return tuple(expected)


@hookimpl(trylast=True)
def settlement_timing(base_fees: list[int], seconds_left: float, settings: dict[str, Any],
                      pending: int | None, batch_size: int | None, waited_s: float | None,
                      ) -> bool:  # fmt: skip
    """The built-in `fee_forecast` policy (see the module's docstring). The trades come at the
    rate they came so far (a block's worth of waiting counted in, so a first trade expects
    company); a later block is worth waiting for when its expected fee, shared by the trades
    expected by then, is less per trade than now's. The blocks after the history's reach
    differ only by more trades joining, so the last of them (the deadline's, or the one the
    batch is expected full in) stands for them all."""
    wanted = {**FEE_FORECAST, **settings}
    block_s = float(wanted["block_time_s"])
    hurry_s = wanted["hurry_blocks"] * block_s + float(wanted["look_s"])
    if seconds_left <= hurry_s or len(base_fees) < wanted["min_history"]:
        return True
    trades = pending or 1
    most = max(batch_size or trades, trades)
    rate = trades / (waited_s + block_s) if pending and waited_s is not None else 0.0
    blocks_left = int(seconds_left / block_s) - int(wanted["hurry_blocks"]) + 1
    if rate > 0:
        blocks_left = min(blocks_left, math.ceil((most - trades) / (rate * block_s)))
    reach = len(base_fees) - 1
    expected = forecast(tuple(base_fees), max(1, min(blocks_left, reach + 1)))
    candidates = [*enumerate(expected[:reach], 1)]
    if blocks_left > reach:
        candidates.append((blocks_left, expected[-1]))
    cost_now = base_fees[-1] * batch_gas(trades) / trades
    for k, fee in candidates:
        later = min(most, trades + rate * k * block_s)
        if fee * batch_gas(later) / later < cost_now:
            return False
    return True


def timing_manager() -> pluggy.PluginManager:
    """The hook's plugins: installed ones (their entry points) first, the built-in last."""
    manager = pluggy.PluginManager("marketnode")
    manager.add_hookspecs(SettlementTimingHooks)
    manager.register(sys.modules[__name__], name="fee_forecast")
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINTS):
        try:
            manager.register(entry_point.load(), name=entry_point.name)
        except Exception as error:  # a broken plugin must not stop settlement
            log.error("settlement plugin %s cannot be loaded: %s", entry_point.name, error)
    return manager


def send_now(manager: pluggy.PluginManager, base_fees: list[int], seconds_left: float,
             settings: dict[str, Any] | None = None, *, pending: int | None = None,
             batch_size: int | None = None, waited_s: float | None = None) -> bool:  # fmt: skip
    """The plugins' decision; a plugin that raises is logged and the batch sent (never held
    back by a broken policy)."""
    try:
        answer = manager.hook.settlement_timing(
            base_fees=base_fees, seconds_left=seconds_left, settings=settings or {},
            pending=pending, batch_size=batch_size, waited_s=waited_s,
        )  # fmt: skip
    except Exception as error:
        log.error("settlement_timing failed: %s: sending now", error)
        return True
    return True if answer is None else bool(answer)

"""EIP-1559 fees for the relayer's transactions, from `eth_feeHistory`, and the raise a
replacement needs.

A transaction offers `maxFeePerGas` (the most it pays per gas, base fee included) and
`maxPriorityFeePerGas` (the tip). The history gives the recent base fees (and the next block's,
its last entry) and the tips paid at a percentile of each block; the relayer offers the median
tip and twice the next base fee on top of it, so a few full blocks in a row (each may raise the
base fee by 12.5%) do not leave it behind.

A node replaces a pending transaction only with both fields raised by at least 10% (geth) or
12.5% (some others); the relayer always raises both by `REPLACEMENT_BUMP` at least.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

HISTORY_BLOCKS = 20
TIP_PERCENTILE = 50
MIN_TIP = 1_000_000_000 // 1000
"""A tip of at least 1 mwei per gas: a chain whose blocks carry no tips still orders by it."""
REPLACEMENT_BUMP_NUMERATOR, REPLACEMENT_BUMP_DENOMINATOR = 1125, 1000
"""+12.5%, rounded up."""


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee: int
    tip: int


@dataclass(frozen=True, slots=True)
class FeeHistory:
    """Base fees of the recent blocks, oldest first, the next block's last; the tip offered."""

    base_fees: list[int]
    tip: int

    @property
    def next_base_fee(self) -> int:
        return self.base_fees[-1]

    def fees(self) -> Fees:
        return Fees(2 * self.next_base_fee + self.tip, self.tip)


def fee_history(w3: Web3, blocks: int = HISTORY_BLOCKS) -> FeeHistory:
    """The chain's recent fees; a chain without `eth_feeHistory` (or too young for it) gives
    the latest block's base fee alone."""
    try:
        history = w3.eth.fee_history(blocks, "latest", [TIP_PERCENTILE])
        base_fees = [int(fee) for fee in history["baseFeePerGas"]]
        tips = sorted(int(reward[0]) for reward in history.get("reward") or [] if reward)
    except Exception:  # any provider's refusal means: no history
        base_fees, tips = [], []
    if not base_fees:
        base_fees = [int(w3.eth.get_block("latest").get("baseFeePerGas", 0))]
    tip = max(MIN_TIP, tips[len(tips) // 2] if tips else 0)
    return FeeHistory(base_fees, tip)


def bumped(value: int) -> int:
    """`value` raised by 12.5%, rounded up, and by at least 1."""
    raised = -(-value * REPLACEMENT_BUMP_NUMERATOR // REPLACEMENT_BUMP_DENOMINATOR)
    return max(raised, value + 1)


def replacement_fees(previous: Fees, current: Fees) -> Fees:
    """Fees for a replacement: both fields at least 12.5% over `previous`, and at least what
    the chain asks now; the tip never over the maximum fee."""
    tip = max(bumped(previous.tip), current.tip)
    max_fee = max(bumped(previous.max_fee), current.max_fee, tip)
    return Fees(max_fee, tip)

"""Market statistics (Cong et al., "Crypto Wash Trading"): organic trade sizes follow
Benford's law in their first digit and cluster at round sizes; fabricated volume departs from
both. Per market: the mean absolute deviation of first digits from Benford, and the share of
trades at round sizes, combined into a fake-volume score.

Known market makers' fills count like any other trade: the statistic names no wallet, and a
fill's size is the taker's choice (at most a level of the maker's ladder), so a maker's volume is
as organic as its takers'."""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal
from typing import Any

from .alerts import Alert, decimal_text
from .hookspecs import declare_settings, hookimpl, settings_of
from .window_totals import add_since_mark

BENFORD = [math.log10(1 + 1 / digit) for digit in range(1, 10)]
NAME = "market_statistics"
DEFAULTS = {"min_trades": 200, "benford_mad": 0.015, "min_round_share": 0.05}
"""MAD above 0.015 is "nonconformity" in Nigrini's bands for first digits; organic markets show
a share of round-sized trades well above 5%."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS market_sizes (
    market VARCHAR, first_digit INTEGER, round BOOLEAN, trades BIGINT,
    notional DECIMAL(38, 12), PRIMARY KEY (market, first_digit, round)
);
"""
"""Running totals (plugins/window_totals.py keeps their mark): trades and notional per market,
by the first digit of their size and whether the size is round."""
ADD_SIZES = """
INSERT INTO market_sizes
SELECT market,
       coalesce(TRY_CAST(left(ltrim(replace(CAST(qty AS VARCHAR), '.', ''), '0'), 1) AS INT), 0),
       qty >= 10 AND qty % 10 = 0, count(*), sum(notional)
FROM trades WHERE seq > $since AND seq <= $until
GROUP BY ALL
ON CONFLICT DO UPDATE SET trades = trades + excluded.trades,
                          notional = notional + excluded.notional
"""
"""A size's first significant digit from its exact decimal text (0 for a size of 0); round is
a whole multiple of 10 (`is_round`)."""
SIZES = "SELECT market, first_digit, round, trades, notional FROM market_sizes ORDER BY ALL"
SEQS = "SELECT list(seq ORDER BY seq) FROM trades WHERE market = ? AND seq <= ?"


def first_digit(value: Decimal) -> int:
    digits = value.normalize().as_tuple().digits
    return digits[0] if digits else 0


def is_round(value: Decimal) -> bool:
    """A whole multiple of 10, or of 100 / 1000 for larger sizes."""
    return value == value.to_integral_value() and value >= 10 and value % 10 == 0


def benford_mad(sizes: list[Decimal]) -> float:
    counts = [0] * 9
    for size in sizes:
        digit = first_digit(size)
        if digit:
            counts[digit - 1] += 1
    return mad_of_counts(counts)


def mad_of_counts(counts: list[int]) -> float:
    """The mean absolute deviation from Benford of first-digit `counts` (of 1 to 9)."""
    total = sum(counts) or 1
    return (
        sum(abs(count / total - expected) for count, expected in zip(counts, BENFORD, strict=True))
        / 9
    )


integrity_settings = declare_settings("integrity_settings", NAME, DEFAULTS)


@hookimpl(trylast=True)  # a score, not a finding: the wash detectors' alerts go first
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    option = settings_of(settings, NAME, DEFAULTS)
    until = add_since_mark(connection, NAME, SCHEMA, (ADD_SIZES,), {})
    markets: dict[str, _Sizes] = defaultdict(_Sizes)
    for market, digit, round_size, trades, notional in connection.execute(SIZES).fetchall():
        markets[market].add(digit, round_size, trades, notional)
    alerts = []
    for market, sizes in sorted(markets.items()):
        if sizes.trades < option["min_trades"]:
            continue
        mad = mad_of_counts(sizes.digits)
        round_share = sizes.round / sizes.trades
        off_benford = mad > option["benford_mad"]
        too_few_round = round_share < option["min_round_share"]
        if not (off_benford and too_few_round):
            continue
        score = min(1.0, mad / option["benford_mad"] / 2) * (1 - round_share)
        alerts.append(
            Alert(
                detector="market_statistics",
                severity="low",
                market=market,
                wallets=[],
                trades=connection.execute(SEQS, [market, until]).fetchone()[0],
                evidence={
                    "benford_mad": round(mad, 5),
                    "round_share": round(round_share, 4),
                    "fake_volume_score": round(score, 3),
                    "trades": sizes.trades,
                },
                wash_volume=decimal_text(sizes.notional),
            )
        )
    return alerts


class _Sizes:
    """One market's totals: trades, first-digit counts, round sizes, notional."""

    def __init__(self) -> None:
        self.trades = 0
        self.digits = [0] * 9
        self.round = 0
        self.notional = Decimal(0)

    def add(self, digit: int, round_size: bool, trades: int, notional: Decimal) -> None:
        self.trades += trades
        if digit:
            self.digits[digit - 1] += trades
        if round_size:
            self.round += trades
        self.notional += notional

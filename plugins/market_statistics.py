"""Market statistics (Cong et al., "Crypto Wash Trading"): organic trade sizes follow
Benford's law in their first digit and cluster at round sizes; fabricated volume departs from
both. Per market: the mean absolute deviation of first digits from Benford, and the share of
trades at round sizes, combined into a fake-volume score."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from .alerts import Alert, decimal_text
from .hookspecs import declare_settings, hookimpl, settings_of

BENFORD = [math.log10(1 + 1 / digit) for digit in range(1, 10)]
NAME = "market_statistics"
DEFAULTS = {"min_trades": 200, "benford_mad": 0.015, "min_round_share": 0.05}
"""MAD above 0.015 is "nonconformity" in Nigrini's bands for first digits; organic markets show
a share of round-sized trades well above 5%."""

QUERY = """
SELECT market, CAST(qty AS VARCHAR), seq, CAST(notional AS VARCHAR)
FROM trades ORDER BY market, seq
"""


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
    total = sum(counts) or 1
    return (
        sum(abs(count / total - expected) for count, expected in zip(counts, BENFORD, strict=True))
        / 9
    )


integrity_settings = declare_settings("integrity_settings", NAME, DEFAULTS)


@hookimpl(trylast=True)  # a score, not a finding: the wash detectors' alerts go first
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    option = settings_of(settings, NAME, DEFAULTS)
    markets: dict[str, list[tuple[Decimal, int, Decimal]]] = {}
    for market, qty, seq, notional in connection.execute(QUERY).fetchall():
        markets.setdefault(market, []).append((Decimal(qty), seq, Decimal(notional)))
    alerts = []
    for market, trades in sorted(markets.items()):
        if len(trades) < option["min_trades"]:
            continue
        sizes = [qty for qty, _, _ in trades]
        mad = benford_mad(sizes)
        round_share = sum(1 for size in sizes if is_round(size)) / len(sizes)
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
                trades=[seq for _, seq, _ in trades],
                evidence={
                    "benford_mad": round(mad, 5),
                    "round_share": round(round_share, 4),
                    "fake_volume_score": round(score, 3),
                    "trades": len(trades),
                },
                wash_volume=decimal_text(sum(n for _, _, n in trades)),
            )
        )
    return alerts

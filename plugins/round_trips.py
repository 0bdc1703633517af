"""Round trips: A sells to B and B sells about as much back to A within a window: the position
goes nowhere while volume is printed.

Only partners' trades count (see `partners`): a market maker also buys and sells back, but to
hundreds of wallets, none of which it trades mostly with. A known maker (see `partners`) is
nobody's partner in its market: a taker buying from a thin market's only maker and selling back
to it later goes round with the liquidity, not with an accomplice. Legs are compared in total
per pair and window, not one by one, so a return at a moved price, in several pieces or after
other trading still closes the trip.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from .alerts import Alert, decimal_text
from .hookspecs import declare_settings, hookimpl, settings_of
from .partners import PartnerTrade, partner_trades, total_notional

NAME = "round_trips"
DEFAULTS = {"window_s": 30 * 24 * 3600, "min_pair_share": 0.3, "qty_tolerance": 0.15}


integrity_settings = declare_settings("integrity_settings", NAME, DEFAULTS)


@hookimpl
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    option = settings_of(settings, NAME, DEFAULTS)
    tolerance = Decimal(str(option["qty_tolerance"]))
    alerts: dict[tuple, Alert] = {}
    for (market, bucket), trades in partner_trades(
        connection, option["window_s"], option["min_pair_share"]
    ).items():
        pairs: dict[tuple[str, str], list[PartnerTrade]] = defaultdict(list)
        for trade in trades:
            pairs[min(trade.seller, trade.buyer), max(trade.seller, trade.buyer)].append(trade)
        for (a, b), legs in sorted(pairs.items()):
            a_sold = sum((t.qty for t in legs if t.seller == a), Decimal(0))
            b_sold = sum((t.qty for t in legs if t.seller == b), Decimal(0))
            if not (a_sold and b_sold) or abs(a_sold - b_sold) > tolerance * max(a_sold, b_sold):
                continue
            returns = min(sum(t.seller == a for t in legs), sum(t.seller == b for t in legs))
            alerts.setdefault(  # (the same legs in both of two overlapping windows: once)
                (market, tuple(t.seq for t in legs)),
                Alert(
                    detector=NAME,
                    severity="high" if returns >= 3 else "medium",
                    market=market,
                    wallets=[a, b],
                    trades=[t.seq for t in legs],
                    evidence={
                        "window_s": option["window_s"],
                        "window_start": bucket,
                        "sold": {a: decimal_text(a_sold), b: decimal_text(b_sold)},
                        "round_trips": returns,
                    },
                    wash_volume=total_notional(legs),
                ),
            )
    return list(alerts.values())

"""Churn: a wallet trading one market many times in a window with a few partners, ending
almost where it started.

Only partners' trades count (see `partners`): a market maker trades as often and ends as flat,
but with hundreds of counterparties, none of them a partner; and a churner's cover trades with
outsiders neither hide it nor get flagged with it. In a thin market a maker may have only a
few takers and still end its day flat: a known maker (see `partners`) is nobody's partner there,
so its day is no churn, nor is a taker's back and forth against it.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from .alerts import Alert, decimal_text
from .hookspecs import declare_settings, hookimpl, settings_of
from .partners import PartnerTrade, partner_trades, total_notional

NAME = "churn"
DEFAULTS = {
    "window_s": 86400,
    "min_trades": 10,
    "max_counterparties": 3,
    "max_net_share": 0.05,
    "min_pair_share": 0.3,
}


integrity_settings = declare_settings("integrity_settings", NAME, DEFAULTS)


@hookimpl
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    option = settings_of(settings, NAME, DEFAULTS)
    most_net = Decimal(str(option["max_net_share"]))
    alerts: dict[tuple, Alert] = {}
    for (market, bucket), trades in partner_trades(
        connection, option["window_s"], option["min_pair_share"]
    ).items():
        by_wallet: dict[str, list[PartnerTrade]] = defaultdict(list)
        for trade in trades:
            by_wallet[trade.seller].append(trade)
            by_wallet[trade.buyer].append(trade)
        for wallet, own in sorted(by_wallet.items()):
            partners = sorted({t.buyer if t.seller == wallet else t.seller for t in own})
            volume = sum(t.qty for t in own)
            net = sum(t.qty if t.buyer == wallet else -t.qty for t in own)
            if (
                len(own) < option["min_trades"]
                or len(partners) > option["max_counterparties"]
                or abs(net) > most_net * volume
            ):
                continue
            seqs = [t.seq for t in own]
            alerts.setdefault(
                (market, tuple(seqs)),
                Alert(
                    detector=NAME,
                    severity="medium",
                    market=market,
                    wallets=[wallet, *partners],
                    trades=seqs,
                    evidence={
                        "churner": wallet,
                        "trades": len(own),
                        "partners": partners,
                        "net_position": decimal_text(net),
                        "volume": decimal_text(volume),
                        "window_s": option["window_s"],
                        "window_start": bucket,
                    },
                    wash_volume=total_notional(own),
                ),
            )
    return list(alerts.values())

"""Churn: a wallet trading one market many times in a window, with few counterparties, and
ending almost where it started. A market maker trades as often but with many counterparties."""

from __future__ import annotations

from typing import Any

from .alerts import Alert
from .hookspecs import hookimpl, settings_of

NAME = "churn"
DEFAULTS = {"window_s": 86400, "min_trades": 10, "max_counterparties": 3, "max_net_share": 0.05}

QUERY = """
SELECT market, wallet, epoch(time_bucket(to_seconds(?), time)) AS bucket,
       count(*) AS trades, list(seq ORDER BY seq) AS seqs,
       count(DISTINCT counterparty) AS counterparties,
       sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END) AS net, sum(qty) AS volume,
       rtrim(rtrim(CAST(sum(notional) AS VARCHAR), '0'), '.') AS notional
FROM wallet_trades
WHERE wallet <> counterparty
GROUP BY market, wallet, bucket
HAVING count(*) >= ? AND count(DISTINCT counterparty) <= ?
   AND abs(sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END)) <= ? * sum(qty)
ORDER BY market, wallet, bucket
"""


@hookimpl
def integrity_settings() -> dict[str, dict[str, Any]]:
    return {NAME: DEFAULTS}


@hookimpl
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    option = settings_of(settings, NAME, DEFAULTS)
    rows = connection.execute(
        QUERY,
        [
            option["window_s"],
            option["min_trades"],
            option["max_counterparties"],
            option["max_net_share"],
        ],
    ).fetchall()
    return [
        Alert(
            detector="churn",
            severity="medium",
            market=market,
            wallets=[wallet],
            trades=list(seqs),
            evidence={
                "trades": trades,
                "counterparties": counterparties,
                "net_position": str(net),
                "volume": str(volume),
                "window_s": option["window_s"],
                "window_start": bucket,
            },
            wash_volume=notional,
        )
        for market, wallet, bucket, trades, seqs, counterparties, net, volume, notional in rows
    ]

"""Round trips: A sells to B, then B sells the same asset back to A within a window, for a
similar quantity: the position goes nowhere while volume is printed."""

from __future__ import annotations

from typing import Any

from .alerts import Alert
from .hookspecs import hookimpl, settings_of

NAME = "round_trips"
DEFAULTS = {
    "window_s": 30 * 24 * 3600,
    "qty_tolerance": 0.0,
    "price_tolerance": 0.0,
    "max_counterparties": 5,
}
"""Wash pairs trade with few others; market makers, who also buy and sell back, with many."""
"""A wash round trip hands the same quantity back at the same price; honest traders who meet
twice rarely match both."""

QUERY = """
WITH diversity AS (
    SELECT wallet, count(DISTINCT counterparty) AS counterparties FROM wallet_trades GROUP BY wallet
),
pairs AS (
    SELECT first.market, least(first.seller, first.buyer) AS a,
           greatest(first.seller, first.buyer) AS b, first.seq AS there, back.seq AS back,
           first.time AS start, back.time AS stop
    FROM trades first
    JOIN trades back
      ON back.market = first.market AND back.seller = first.buyer
     AND back.buyer = first.seller AND back.seq > first.seq
     AND back.time - first.time <= to_seconds(?)
     AND abs(back.qty - first.qty) <= ? * first.qty
     AND abs(back.price - first.price) <= ? * first.price
    WHERE first.buyer <> first.seller
      AND (SELECT counterparties FROM diversity WHERE wallet = first.seller) <= ?
      AND (SELECT counterparties FROM diversity WHERE wallet = first.buyer) <= ?
),
legs AS (
    SELECT market, a, b, there AS seq FROM pairs
    UNION SELECT market, a, b, back FROM pairs
)
SELECT legs.market, legs.a, legs.b, list(legs.seq ORDER BY legs.seq) AS trades,
       rtrim(rtrim(CAST(sum(t.notional) AS VARCHAR), '0'), '.') AS volume,
       any_value(counted.pairs) AS pairs, any_value(counted.start) AS start,
       any_value(counted.stop) AS stop
FROM legs
JOIN trades t ON t.seq = legs.seq
JOIN (SELECT market, a, b, count(*) AS pairs, min(start) AS start, max(stop) AS stop
      FROM pairs GROUP BY ALL) counted
  ON counted.market = legs.market AND counted.a = legs.a AND counted.b = legs.b
GROUP BY legs.market, legs.a, legs.b
ORDER BY legs.market, legs.a, legs.b
"""


@hookimpl
def integrity_settings() -> dict[str, dict[str, Any]]:
    return {NAME: DEFAULTS}


@hookimpl
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    option = settings_of(settings, NAME, DEFAULTS)
    window = option["window_s"]
    tolerance = option["qty_tolerance"]
    alerts = []
    price_tolerance = option["price_tolerance"]
    most = option["max_counterparties"]
    for market, a, b, trades, volume, pairs, start, stop in connection.execute(
        QUERY, [window, tolerance, price_tolerance, most, most]
    ).fetchall():
        alerts.append(
            Alert(
                detector="round_trips",
                severity="medium" if pairs < 3 else "high",
                market=market,
                wallets=[a, b],
                trades=list(trades),
                evidence={"pairs": pairs, "window_s": window, "from": str(start), "to": str(stop)},
                wash_volume=volume,
            )
        )
    return alerts

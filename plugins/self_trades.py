"""Self-trades: buyer and seller are the same owner, or owners the operator linked
(`mnode integrity link A B --reason …`: same funder, same person).

Known market makers (a liquidity instance's owner, an operator's declared maker) are not exempt:
quoting never needs a trade with itself, and a maker filling an owner linked to it prints volume
between one party's two wallets like any other wash. This is where a maker's own wash is seen,
while the partner detectors leave its quoting alone (plugins/partners.py)."""

from __future__ import annotations

from typing import Any

from .alerts import Alert
from .hookspecs import declare_settings, hookimpl

QUERY = """
SELECT market, buyer, seller, list(seq ORDER BY seq) AS trades,
       rtrim(rtrim(CAST(sum(notional) AS VARCHAR), '0'), '.') AS volume,
       min(time) AS first, max(time) AS last,
       any_value(reason) AS link
FROM (
    SELECT t.*, l.reason
    FROM trades t
    LEFT JOIN links l
      ON (l.a = t.buyer AND l.b = t.seller) OR (l.a = t.seller AND l.b = t.buyer)
    WHERE t.buyer = t.seller OR l.a IS NOT NULL
)
GROUP BY market, buyer, seller
ORDER BY market, buyer, seller
"""


integrity_settings = declare_settings("integrity_settings", "self_trades", {})


@hookimpl
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    alerts = []
    for market, buyer, seller, trades, volume, first, last, link in connection.execute(
        QUERY
    ).fetchall():
        same = buyer == seller
        alerts.append(
            Alert(
                detector="self_trades",
                severity="high",
                market=market,
                wallets=sorted({buyer, seller}),
                trades=list(trades),
                evidence={
                    "kind": "same owner" if same else "linked owners",
                    "link_reason": link,
                    "from": str(first),
                    "to": str(last),
                },
                wash_volume=volume,
            )
        )
    return alerts

"""Anomalous wallets: an IsolationForest over per-wallet behaviour, wallets ranked by score
(which features the forest sees, and why, at MODELLED).

Features per wallet over the training window: trade count and notional, counterparties and
the share of the largest one, |net position| / volume, regularity of the time between its
trades, cancels per fill, share of round sizes, and mean deviation of its prices from the
market's volume-weighted price. The scaler is fitted on the training window only; the model's
version names its window and parameters. Only wallets the forest isolates (negative decision
function) are reported, each with its score and rank, never as a bare label.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler

from .alerts import Alert
from .hookspecs import hookimpl, settings_of

NAME = "anomalous_wallets"
DEFAULTS = {"min_wallets": 30, "min_trades": 3, "seed": 0}
FEATURES = (
    "trades", "notional", "counterparties", "top_counterparty_share", "net_over_volume",
    "gap_regularity", "cancels_per_fill", "round_share", "price_deviation",
)  # fmt: skip

MODELLED = [2, 3, 4, 7, 8]
"""Columns of FEATURES the forest sees: counterparties (log), the largest one's share, net
position over volume, round-size share, price deviation. Trade count, notional, gap regularity
and cancels per fill are reported but not modelled: size and requoting alone isolate the market
makers, who trade most and cancel most, and must not be flagged."""

QUERY = """
WITH vwap AS (
    SELECT market, sum(notional) / sum(qty) AS vwap FROM trades GROUP BY market
),
per_pair AS (
    SELECT wallet, counterparty, count(*) AS n FROM wallet_trades GROUP BY ALL
),
gaps AS (
    SELECT wallet, epoch(time) - lag(epoch(time)) OVER (PARTITION BY wallet ORDER BY seq) AS gap
    FROM wallet_trades
),
cancels AS (
    SELECT owner AS wallet, count(*) AS n FROM events WHERE kind = 'cancelled' GROUP BY owner
)
SELECT w.wallet,
       count(*) AS trades,
       CAST(sum(w.notional) AS DOUBLE) AS notional,
       count(DISTINCT w.counterparty) AS counterparties,
       (SELECT max(n) FROM per_pair p WHERE p.wallet = w.wallet) / count(*) AS top_share,
       CAST(abs(sum(CASE WHEN w.side = 'buy' THEN w.qty ELSE -w.qty END)) / sum(w.qty) AS DOUBLE)
           AS net_over_volume,
       coalesce((SELECT stddev_pop(gap) / nullif(avg(gap), 0) FROM gaps g
                 WHERE g.wallet = w.wallet AND gap IS NOT NULL), 0) AS gap_regularity,
       coalesce(any_value(c.n), 0) / count(*) AS cancels_per_fill,
       avg(CASE WHEN w.qty >= 10 AND w.qty % 10 = 0 THEN 1 ELSE 0 END) AS round_share,
       avg(CAST(abs(w.price - v.vwap) / v.vwap AS DOUBLE)) AS price_deviation,
       list(w.seq ORDER BY w.seq) AS seqs, any_value(w.market) AS market,
       min(w.time) AS first, max(w.time) AS last
FROM wallet_trades w
JOIN vwap v ON v.market = w.market
LEFT JOIN cancels c ON c.wallet = w.wallet
GROUP BY w.wallet
HAVING count(*) >= ?
ORDER BY w.wallet
"""


def wallet_scores(connection, settings: dict[str, Any]) -> tuple[list[tuple], Any, Any, str]:
    """Rows of features, anomaly scores (higher: easier to isolate), decision values
    (negative: isolated) and the model version, for every wallet with enough trades."""
    option = settings_of(settings, NAME, DEFAULTS)
    rows = connection.execute(QUERY, [option["min_trades"]]).fetchall()
    if len(rows) < option["min_wallets"]:
        return [], np.array([]), np.array([]), ""
    features = np.array([row[1:10] for row in rows], dtype=float)[:, MODELLED]
    features[:, 0] = np.log1p(features[:, 0])  # counterparties span orders of magnitude
    window = (str(min(row[12] for row in rows)), str(max(row[13] for row in rows)))
    scaler = StandardScaler().fit(features)
    scaled = scaler.transform(features)
    forest = IsolationForest(
        n_estimators=100,
        max_samples="auto",
        contamination="auto",
        random_state=option["seed"],
    ).fit(scaled)
    version = hashlib.blake2b(
        f"{window}|{len(rows)}|{option['seed']}|100".encode(), digest_size=6
    ).hexdigest()
    return rows, -forest.score_samples(scaled), forest.decision_function(scaled), version


@hookimpl
def integrity_settings() -> dict[str, dict[str, Any]]:
    return {NAME: DEFAULTS}


@hookimpl
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    rows, scores, decisions, version = wallet_scores(connection, settings)
    if not rows:
        return []
    window = (str(min(row[12] for row in rows)), str(max(row[13] for row in rows)))
    order = np.argsort(-scores)
    alerts = []
    for rank, position in enumerate(order, start=1):
        if decisions[position] >= 0:
            continue
        row = rows[position]
        alerts.append(
            Alert(
                detector="anomalous_wallets",
                severity="low",
                market=row[11],
                wallets=[row[0]],
                trades=list(row[10]),
                evidence={
                    "score": round(float(scores[position]), 4),
                    "rank": rank,
                    "wallets_scored": len(rows),
                    "features": {
                        name: round(float(value), 6)
                        for name, value in zip(FEATURES, row[1:10], strict=True)
                    },
                    "model_version": version,
                    "training_window": list(window),
                },
                wash_volume="0",
            )
        )
    return alerts

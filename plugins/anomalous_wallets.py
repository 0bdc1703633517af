"""Anomalous wallets: leads for a compliance reviewer, an IsolationForest over per-wallet
behaviour weighted by the wash signature (which features the forest sees, and why: MODELLED).

Features per wallet over the training window: trade count and notional, counterparties and
the share of the largest one, |net position| / volume, regularity of the time between its
trades, cancels per fill, share of round sizes above the market's own (in a market whose lot is
10, every size is round), mean deviation of its prices from the market's recent price (the mean
of the 20 trades before each), the share of its volume traded with partners, the share traded
with counterparties it both bought from and sold to, and its closed group's (`closed_groups`):
the share of its volume inside it, how far positions moved there, and the share of its volume
inside it once that is taken into account.

Unusual is not wash: a supplier selling one size to one client again and again is as isolated
as a wash pair, but the asset really changes hands, while a wash group's positions come back to
flat. So the score is the forest's (how unusual the wallet is against the market) times the wash
signature, `flat_group_share` over `min_flat_share` (0.5), at most 1: one-way suppliers, OTC
desks and clients, collectors, arbitrageurs and makers, unusual as they may be, score in
proportion to how little of their volume comes back to flat in a closed group. The scaler is
fitted on the training window only; the model's version names its window and parameters. Only
wallets scoring at least `min_score` (0.6) are reported, with score, rank and the features that
made them unusual against the market's quartiles (`why`), never as a bare label; `explain_leads`
adds the wash findings of the same scan that already name them (`explained`). The forest is
trained again at most every `retrain_s` seconds on a store (`detect_integrity`). A known market
maker (plugins/partners.py) is scored with the others but is no lead: what makes it unusual is
its quoting, and its own wash is a self-trade (`self_trades`).

Numpy and scikit-learn are imported when a scan scores the wallets (or the analytics process
prepares its scoring lane: `prepare_integrity`), not when the detector is loaded: `mnode start`
loads the detectors to check their config.toml tables, in the process that runs the matching.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from collections import defaultdict
from typing import Any

from .alerts import Alert
from .hookspecs import declare_settings, hookimpl, settings_of
from .partners import known_maker_wallets

NAME = "anomalous_wallets"
DEFAULTS = {
    "min_wallets": 30,
    "min_trades": 3,
    "seed": 0,
    "min_pair_share": 0.3,
    "min_score": 0.6,
    "retrain_s": 60,
    "min_link_share": 0.05,
    "min_flat_share": 0.5,
}
FEATURES = (
    "trades", "notional", "counterparties", "top_counterparty_share", "net_over_volume",
    "gap_regularity", "cancels_per_fill", "round_share", "price_deviation", "partner_share",
    "both_ways_share", "closed_share", "group_imbalance", "flat_group_share",
)  # fmt: skip
QUERIED = 11
"""FEATURES the wallet query computes; the closed-group ones (`closed_groups`) follow."""

MODELLED = [3, 4, 7, 8, 9, 10, 11, 13]
"""Columns of FEATURES the forest sees: the largest counterparty's share, net over volume,
round-size share above the market's, price deviation from the recent price, the share traded
with partners (as the round-trip, cycle and churn detectors define them), the share traded both
ways with the same counterparties (a wash cluster passes volume back and forth; a retail wallet
meets a counterparty once), the share inside its closed group and inside one that came back to
flat. Trade count, notional, counterparties, gap regularity and cancels per fill are reported,
not modelled: makers trade, cancel and meet counterparties most, so those isolate the makers."""

TREES = 200
SUBSAMPLE = 64
"""Wallets each tree is grown on. Wash wallets come in groups that look alike (a ring, a farm):
dense in the whole population and hard to isolate (masking); small subsamples (Liu, Ting and
Zhou's remedy) isolate them again: on three generators 64 ranked wash best (AUC 0.92-0.96)."""

QUERY = """
WITH per_pair AS (
    SELECT wallet, counterparty, count(*) AS n FROM wallet_trades GROUP BY ALL
),
gaps AS (
    SELECT wallet, epoch(time) - lag(epoch(time)) OVER (PARTITION BY wallet ORDER BY seq) AS gap
    FROM wallet_trades
),
cancels AS (
    SELECT owner AS wallet, count(*) AS n FROM events WHERE kind = 'cancelled' GROUP BY owner
),
pair_volumes AS (
    SELECT market, wallet, counterparty, sum(qty) AS volume
    FROM wallet_trades WHERE wallet <> counterparty GROUP BY ALL
),
volumes AS (
    SELECT market, wallet, sum(qty) AS volume FROM wallet_trades GROUP BY ALL
),
mutual AS (
    SELECT p.wallet,
           sum(CASE WHEN least(p.volume / own.volume, p.volume / other.volume) >= $pair_share
                    THEN p.volume ELSE 0 END) AS volume
    FROM pair_volumes p
    JOIN volumes own ON own.market = p.market AND own.wallet = p.wallet
    JOIN volumes other ON other.market = p.market AND other.wallet = p.counterparty
    GROUP BY p.wallet
),
both_ways AS (
    SELECT wallet, sum(CASE WHEN bought > 0 AND sold > 0 THEN bought + sold ELSE 0 END)
                   / sum(bought + sold) AS share
    FROM (SELECT market, wallet, counterparty,
                 sum(CASE WHEN side = 'buy' THEN qty ELSE 0 END) AS bought,
                 sum(CASE WHEN side = 'sell' THEN qty ELSE 0 END) AS sold
          FROM wallet_trades WHERE wallet <> counterparty GROUP BY ALL)
    GROUP BY wallet
),
round_sizes AS (
    SELECT seq, CASE WHEN qty >= 10 AND qty % 10 = 0 THEN 1 ELSE 0 END AS round,
           avg(CASE WHEN qty >= 10 AND qty % 10 = 0 THEN 1 ELSE 0 END)
               OVER (PARTITION BY market) AS market_round
    FROM trades
),
local_price AS (
    SELECT seq, abs(price - avg(price) OVER recent) / avg(price) OVER recent AS deviation
    FROM trades
    WINDOW recent AS (PARTITION BY market ORDER BY seq ROWS BETWEEN 20 PRECEDING AND 1 PRECEDING)
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
       avg(rs.round - rs.market_round) AS round_share,
       coalesce(avg(CAST(lp.deviation AS DOUBLE)), 0) AS price_deviation,
       coalesce(CAST(any_value(m.volume) / sum(w.qty) AS DOUBLE), 0) AS partner_share,
       coalesce(CAST(any_value(bw.share) AS DOUBLE), 0) AS both_ways_share,
       list(w.seq ORDER BY w.seq) AS seqs, any_value(w.market) AS market,
       min(w.time) AS first, max(w.time) AS last
FROM wallet_trades w
LEFT JOIN cancels c ON c.wallet = w.wallet
LEFT JOIN mutual m ON m.wallet = w.wallet
LEFT JOIN local_price lp ON lp.seq = w.seq
JOIN round_sizes rs ON rs.seq = w.seq
LEFT JOIN both_ways bw ON bw.wallet = w.wallet
GROUP BY w.wallet
HAVING count(*) >= $min_trades
ORDER BY w.wallet
"""


PAIRS = """
SELECT market, least(buyer, seller) AS a, greatest(buyer, seller) AS b, count(*) AS trades,
       CAST(sum(qty) AS DOUBLE) AS volume,
       CAST(sum(CASE WHEN buyer = least(buyer, seller) THEN qty ELSE -qty END) AS DOUBLE)
           AS a_bought
FROM trades GROUP BY ALL ORDER BY ALL
"""
"""Each pair's trades, volume and what the first of the two bought from the other, net (in
one order, so that the sums over them come out the same however the store was filled)."""


def closed_groups(connection, link_share: float) -> dict[str, tuple[float, float, float]]:
    """Per wallet: `closed_share` (the share of its volume inside its closed group),
    `group_imbalance` (the sum of the members' |net position| from their trades with each other
    over those trades' volume: 0 when all came back to flat, 1 when the asset only went one way)
    and `flat_group_share` (the closed share times 1 - 2 x the imbalance, down to 0). A desk's
    group (sellers to it, it to buyers) has an imbalance of one half: not flat at all. (The
    wallet's own net is not asked to be flat too: wash members trading at random among
    themselves rarely are one by one; on hold-out B that cost more than it saved.)

    A closed group is a component of the links between wallets that traded at least twice for
    at least `link_share` of both wallets' volume in a market (a self-trade links a wallet to
    itself): a wash group passes volume among its members and back to flat; a supplier and its
    client are as closed, but the asset goes one way; a maker's, a collector's or an
    arbitrageur's volume is spread over many counterparties none of whom it links to."""
    pairs = connection.execute(PAIRS).fetchall()
    volume: dict[tuple[str, str], float] = defaultdict(float)
    for market, a, b, _, pair_volume, _ in pairs:
        volume[market, a] += pair_volume
        volume[market, b] += pair_volume
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(node: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(node, node) != node:
            node = parent[node] = parent[parent[node]]
        return node

    links = [
        (market, a, b, pair_volume, bought)
        for market, a, b, trades, pair_volume, bought in pairs
        if a == b
        or (trades >= 2 and pair_volume >= link_share * max(volume[market, a], volume[market, b]))
    ]
    for market, a, b, _, _ in links:
        parent[root((market, a))] = root((market, b))
    inside: dict[tuple[str, str], float] = defaultdict(float)
    net: dict[tuple[str, str], float] = defaultdict(float)
    for market, a, b, pair_volume, bought in links:
        inside[market, a] += pair_volume
        inside[market, b] += pair_volume
        if a != b:
            net[market, a] += bought
            net[market, b] -= bought
    moved: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for member, traded in inside.items():
        group = moved[root(member)]
        group[0] += abs(net[member])
        group[1] += traded
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for (market, wallet), traded in volume.items():
        total = totals[wallet]
        total[0] += traded
        if mine := inside.get((market, wallet)):
            group_net, group_volume = moved[root((market, wallet))]
            moved_share = group_net / group_volume
            total[1] += mine
            total[2] += mine * moved_share
            total[3] += mine * max(0.0, 1 - 2 * moved_share)
    return {
        wallet: (closed / traded, moved / closed if closed else 1.0, flat / traded)
        for wallet, (traded, closed, moved, flat) in totals.items()
        if traded
    }


def wallet_scores(connection, settings: dict[str, Any]) -> tuple[list[tuple], Any, str]:
    """Rows (wallet, FEATURES..., its trades' seqs, market, first and last trade time),
    scores (0 to 1: how easily the forest isolates the wallet, times its wash signature) and
    the model version, for every wallet with enough trades."""
    import numpy as np
    from sklearn.ensemble import IsolationForest
    from sklearn.preprocessing import StandardScaler

    option = settings_of(settings, NAME, DEFAULTS)
    queried = connection.execute(
        QUERY, {"min_trades": option["min_trades"], "pair_share": option["min_pair_share"]}
    ).fetchall()
    if len(queried) < option["min_wallets"]:
        return [], np.array([]), ""
    groups = closed_groups(connection, option["min_link_share"])
    rows = [
        (*row[: 1 + QUERIED], *groups.get(row[0], (0.0, 1.0, 0.0)), *row[1 + QUERIED :])
        for row in queried
    ]
    features = np.array([row[1 : 1 + len(FEATURES)] for row in rows], dtype=float)[:, MODELLED]
    window = _window(rows)
    scaler = StandardScaler().fit(features)
    scaled = scaler.transform(features)
    forest = IsolationForest(
        n_estimators=TREES,
        max_samples=min(SUBSAMPLE, len(rows)),
        contamination="auto",
        random_state=option["seed"],
    ).fit(scaled)
    basis = f"{window}|{len(rows)}|{option['seed']}|{TREES}|{SUBSAMPLE}|{MODELLED}|"
    basis += f"{option['min_link_share']}|{option['min_flat_share']}"
    version = hashlib.blake2b(basis.encode(), digest_size=6).hexdigest()
    unusual = -forest.score_samples(scaled)
    flat = np.array([row[1 + FEATURES.index("flat_group_share")] for row in rows], dtype=float)
    return rows, unusual * np.minimum(1.0, flat / option["min_flat_share"]), version


def _window(rows: list[tuple]) -> tuple[str, str]:
    return str(min(row[-2] for row in rows)), str(max(row[-1] for row in rows))


integrity_settings = declare_settings("integrity_settings", NAME, DEFAULTS)
_last_leads: dict[str, tuple[float, list[Alert]]] = {}
"""Per analytics file: when the forest was last trained (monotonic seconds) and its leads."""


@hookimpl
def prepare_integrity() -> None:
    for library in ("numpy", "sklearn.ensemble", "sklearn.preprocessing"):
        importlib.import_module(library)


@hookimpl(trylast=True)  # a score, not a finding: the wash detectors' alerts go first
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    """The forest's leads, trained again when `retrain_s` have passed since it was last
    trained on this file (the last leads until then). A forest learns nothing incrementally
    (no partial_fit): each training is over the whole population, seconds on a long history,
    while the wash detectors' scans are cheap and frequent; the leads are a slower view."""
    retrain_s = settings_of(settings, NAME, DEFAULTS)["retrain_s"]
    database = connection.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()[0]
    last = _last_leads.get(database) if database else None
    if last is not None and time.monotonic() - last[0] < retrain_s:
        return last[1]
    leads = _leads(connection, settings)
    if leads is None:
        return []
    if database:
        _last_leads[database] = (time.monotonic(), leads)
    return leads


EXPLAINED = """
SELECT wallet, list(DISTINCT detector ORDER BY detector)
FROM (SELECT unnest(wallets) AS wallet, detector FROM alerts
      WHERE detector NOT IN ('market_statistics', 'anomalous_wallets')
        AND coalesce(label, '') <> 'benign')
GROUP BY wallet
"""  # the wash findings kept so far (none a reviewer called benign), by the wallets they name


def explained_wallets(connection) -> dict[str, list[str]]:
    """Wallets a kept wash finding names, with those detectors."""
    return dict(connection.execute(EXPLAINED).fetchall())


def explain_leads(alerts: list[Alert]) -> None:
    """Mark each lead among one scan's `alerts` with the wash findings among them that name
    its wallet (`explained`), and number the others, the new leads, by score (`lead_rank`).
    Done over the scan's alerts, not inside the detector, so that a lead says the same
    whatever alerts earlier scans kept."""
    named: dict[str, set[str]] = defaultdict(set)
    for alert in alerts:
        if alert.detector not in (NAME, "market_statistics"):
            for wallet in alert.wallets:
                named[wallet].add(alert.detector)
    new_leads = 0
    for lead in sorted((a for a in alerts if a.detector == NAME), key=lambda a: a.evidence["rank"]):
        by = sorted(named.get(lead.wallets[0], ()))
        new_leads += not by
        lead.evidence["explained"] = by
        lead.evidence["lead_rank"] = None if by else new_leads


def _leads(connection, settings: dict[str, Any]) -> list[Alert] | None:
    """The wallets scoring at least `min_score` (None: too few wallets to train the forest
    on), highest first, each saying why (`why`)."""
    import numpy as np

    rows, scores, version = wallet_scores(connection, settings)
    least = settings_of(settings, NAME, DEFAULTS)["min_score"]
    if not rows:
        return None
    window, typical, makers = _window(rows), typical_values(rows), known_maker_wallets(connection)
    ranked = [p for p in np.argsort(-scores, kind="stable") if rows[p][0] not in makers]
    alerts = []
    for rank, position in enumerate(ranked, start=1):
        if scores[position] < least:
            break
        row = rows[position]
        features = dict(zip(FEATURES, row[1 : 1 + len(FEATURES)], strict=True))
        alerts.append(
            Alert(
                detector="anomalous_wallets",
                severity="low",
                market=row[-3],
                wallets=[row[0]],
                trades=list(row[-4]),
                evidence={
                    "score": round(float(scores[position]), 4),
                    "rank": rank,
                    "why": reasons(features, typical),
                    "wallets_scored": len(rows),
                    "features": {name: round(float(v), 6) for name, v in features.items()},
                    "model_version": version,
                    "training_window": list(window),
                },
                wash_volume="0",
            )
        )
    return alerts


def typical_values(rows: list[tuple]) -> dict[str, tuple[float, float, float]]:
    """Each feature's lower quartile, median and upper quartile over the scored wallets."""
    import numpy as np

    values = np.array([row[1 : 1 + len(FEATURES)] for row in rows], dtype=float)
    quartiles = np.percentile(values, [25, 50, 75], axis=0)
    return {name: tuple(float(q) for q in quartiles[:, i]) for i, name in enumerate(FEATURES)}


def reasons(
    features: dict[str, float], typical: dict[str, tuple[float, float, float]], most: int = 4
) -> list[str]:
    """The modelled features outside the market's typical range (Tukey's fences: beyond 1.5
    interquartile ranges past a quartile; a feature most wallets share one value of is
    unusual off that value), furthest first, as text a reviewer reads."""
    found = []
    for name in (FEATURES[column] for column in MODELLED):
        low, median, high = typical[name]
        spread = high - low
        value = features[name]
        beyond = max(low - value, value - high, 0.0)
        if beyond <= 1.5 * spread and (spread or value == median):
            continue
        distance = beyond / spread if spread else float("inf")
        found.append((-distance, -abs(value - median), name, value, low, median, high))
    return [
        f"{name} {value:.3g} against a typical {median:.3g} (quartiles {low:.3g} to {high:.3g})"
        for _, _, name, value, low, median, high in sorted(found)[:most]
    ]

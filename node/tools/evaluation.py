"""Scores the integrity detectors on a labelled market (washgen): precision, recall and F1 on
wash trades and wallets, ROC AUC of the anomaly score, and the share of market makers flagged."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import msgspec
from sklearn.metrics import roc_auc_score

from marketnode.plugins.anomalous_wallets import wallet_scores

from ..analytics.duckdb_store import AnalyticsStore
from ..analytics.follower import JournalFollower
from ..analytics.integrity import detector_settings, scan
from ..core.commands import PeerCommand
from ..home.config import IntegrityConfig
from ..store.durable import DurableEngine
from ..store.lmdb_store import Store
from .washgen import MARKET, generate_labelled_market

TRADE_DETECTORS = ("self_trades", "round_trips", "trade_cycles", "churn", "wash_clusters")
"""Detectors that name wash trades (the others score markets or wallets)."""


def evaluate(
    seed: int = 1, steps: int = 20_000, config: IntegrityConfig | None = None
) -> dict:
    settings = detector_settings(config or IntegrityConfig())
    market = generate_labelled_market(seed, steps)
    commands = [msgspec.convert(command, PeerCommand) for command in market.commands]
    with tempfile.TemporaryDirectory(prefix="mnode-eval-") as folder:
        store = Store(Path(folder) / "data", map_size=64 << 20, sync="none")
        analytics = AnalyticsStore(Path(folder) / "analytics.duckdb")
        try:
            durable = DurableEngine(store)
            durable.configure([MARKET])
            for start in range(0, len(commands), 10_000):
                durable.submit(commands[start : start + 10_000])
            JournalFollower(store, analytics).sync()
            started = time.perf_counter()
            alerts = scan(analytics.connection, settings)
            detect_seconds = time.perf_counter() - started
            trades = analytics.connection.execute(
                "SELECT seq, buyer, seller FROM trades"
            ).fetchall()
            rows, scores, _ = wallet_scores(analytics.connection, settings)
        finally:
            analytics.close()
            store.close()
    group_of = {wallet: name for name, members in market.wash_groups.items() for wallet in members}
    wash_trades = {
        seq for seq, buyer, seller in trades
        if buyer in group_of and group_of[buyer] == group_of.get(seller)
    }  # fmt: skip
    # the wallets that did trade wash (an injected order may have met someone else's instead)
    wash_wallets = {
        wallet for seq, buyer, seller in trades if seq in wash_trades for wallet in (buyer, seller)
    }
    report: dict = {
        "seed": seed,
        "steps": steps,
        "trades": len(trades),
        "wash_trades": len(wash_trades),
    }
    flagged_trades: set[int] = set()
    flagged_wallets: set[str] = set()
    per_detector = {}
    for detector in TRADE_DETECTORS:
        mine = [alert for alert in alerts if alert.detector == detector]
        its_trades = {seq for alert in mine for seq in alert.trades}
        its_wallets = {wallet for alert in mine for wallet in alert.wallets}
        flagged_trades |= its_trades
        flagged_wallets |= its_wallets
        per_detector[detector] = {
            "alerts": len(mine),
            **_scores(its_trades, wash_trades, "trades"),
            **_scores(its_wallets, wash_wallets, "wallets"),
        }
    overall = _scores(flagged_trades, wash_trades, "trades")
    report.update(
        precision=overall["trades_precision"],
        recall=overall["trades_recall"],
        f1=overall["trades_f1"],
        **_scores(flagged_wallets, wash_wallets, "wallets"),
    )
    anomalous = {a.wallets[0] for a in alerts if a.detector == "anomalous_wallets"}
    # the forest scores behaviour: every injected wallet is a positive, also one whose wash
    # orders happened to meet somebody else's; a wallet that traded too little to be scored
    # counts as scoring lowest, so leaving wallets out cannot raise the figure
    positives = set(group_of) | market.bots
    scored = {row[0]: float(score) for row, score in zip(rows, scores, strict=True)}
    traded = sorted({wallet for _, buyer, seller in trades for wallet in (buyer, seller)})
    labels = [1 if wallet in positives else 0 for wallet in traded]
    report["anomaly_auc"] = (
        round(float(roc_auc_score(labels, [scored.get(w, 0.0) for w in traded])), 4)
        if 0 < sum(labels) < len(labels)
        else None
    )
    report["wallets_scored"] = f"{len(scored)} of {len(traded)}"
    flagged_makers = market.makers & (flagged_wallets | anomalous)
    report["maker_flag_rate"] = round(len(flagged_makers) / len(market.makers), 4)
    report["detect_seconds"] = round(detect_seconds, 3)
    report["detectors"] = per_detector
    return report


def _scores(flagged: set, truth: set, prefix: str) -> dict:
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        f"{prefix}_precision": round(precision, 4),
        f"{prefix}_recall": round(recall, 4),
        f"{prefix}_f1": round(f1, 4),
    }

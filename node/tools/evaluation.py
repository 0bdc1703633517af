"""Scores the integrity detectors on a labelled market (washgen): precision, recall and F1 on
wash trades and wallets, recall per wash pattern, the anomaly score's ROC AUC, the share of the
anomaly leads that are wash wallets, and the share of market makers flagged; over several seeds,
the worst case of each.

The replay stamps each commit with the generated market's own time, so the detectors' hour and
day windows see the market's real spread of times. With `known_makers` the generated makers are
declared known market makers first (as a node's liquidity instances' owners are): the wash
findings and leads must not lose what they found without it."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import msgspec
from sklearn.metrics import roc_auc_score

from marketnode.plugins.alerts import Alert
from marketnode.plugins.anomalous_wallets import explain_leads, wallet_scores

from ..analytics.duckdb_store import AnalyticsStore
from ..analytics.follower import JournalFollower
from ..analytics.integrity import detector_settings, scan
from ..analytics.makers import declare_maker
from ..core.commands import PeerCommand
from ..home.config import IntegrityConfig
from ..store.durable import DurableEngine
from ..store.lmdb_store import Store
from .washgen import MARKETS, LabelledMarket, generate_labelled_market, pattern_of

TRADE_DETECTORS = ("self_trades", "round_trips", "trade_cycles", "churn", "wash_clusters")
"""Detectors that name wash trades (the others score markets or wallets)."""
COMMIT_NS = 60 * 10**9
"""A commit per minute of market time: the detectors' windows are hours and days, and a commit
per command would make the replay (the follower's work per commit) minutes long."""
HIGHER_IS_BETTER = (
    "precision", "recall", "f1", "wallets_precision", "wallets_recall", "wallets_f1",
    "anomaly_auc", "lead_precision",
)  # fmt: skip


def evaluate(
    seed: int = 1,
    steps: int = 20_000,
    config: IntegrityConfig | None = None,
    known_makers: bool = False,
) -> dict:
    settings = detector_settings(config or IntegrityConfig())
    market = generate_labelled_market(seed, steps)
    with tempfile.TemporaryDirectory(prefix="mnode-eval-") as folder:
        store, analytics = _replayed(market, Path(folder))
        try:
            for maker in sorted(market.makers) if known_makers else ():
                declare_maker(analytics.connection, maker, None, "the generator's maker")
            started = time.perf_counter()
            alerts = scan(analytics.connection, settings)
            detect_seconds = time.perf_counter() - started
            explain_leads(alerts)
            trades = analytics.connection.execute(
                "SELECT seq, buyer, seller FROM trades"
            ).fetchall()
            rows, scores, _ = wallet_scores(analytics.connection, settings)
        finally:
            analytics.close()
            store.close()
    group_of = {wallet: name for name, members in market.wash_groups.items() for wallet in members}
    wash_trades = {
        seq: group_of[buyer] for seq, buyer, seller in trades
        if buyer in group_of and group_of[buyer] == group_of.get(seller)
    }  # fmt: skip
    # the wallets that did trade wash (an injected order may have met someone else's instead)
    wash_wallets = {
        wallet for seq, buyer, seller in trades if seq in wash_trades for wallet in (buyer, seller)
    }
    report: dict = {
        "seed": seed,
        "steps": steps,
        "known_makers": known_makers,
        "markets": len(MARKETS),
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
            **_scores(its_trades, set(wash_trades), "trades"),
            **_scores(its_wallets, wash_wallets, "wallets"),
        }
    overall = _scores(flagged_trades, set(wash_trades), "trades")
    report.update(
        precision=overall["trades_precision"],
        recall=overall["trades_recall"],
        f1=overall["trades_f1"],
        **_scores(flagged_wallets, wash_wallets, "wallets"),
    )
    report["recall_by_pattern"] = _recall_by_pattern(wash_trades, flagged_trades)
    traded = sorted({wallet for _, buyer, seller in trades for wallet in (buyer, seller)})
    scored = {row[0]: float(score) for row, score in zip(rows, scores, strict=True)}
    report.update(_anomaly_scores(market, traded, scored))
    report.update(_lead_scores(market, alerts))
    flagged_makers = market.makers & (flagged_wallets | _leads(alerts))
    report["maker_flag_rate"] = round(len(flagged_makers) / len(market.makers), 4)
    report["detect_seconds"] = round(detect_seconds, 3)
    report["detectors"] = per_detector
    return report


def evaluate_seeds(seeds: list[int], steps: int = 20_000, known_makers: bool = False) -> dict:
    """Every seed's report and, at the top, the worst case over them of each figure (the
    lowest precision, recall, AUC and lead precision, each pattern's lowest recall, the
    highest share of makers flagged), so one lucky seed cannot carry the result."""
    reports = [evaluate(seed, steps, known_makers=known_makers) for seed in seeds]
    for report in reports:
        report.pop("detectors")
    worst: dict = {"seeds": seeds, "steps": steps, "known_makers": known_makers}
    for key in HIGHER_IS_BETTER:
        values = [report[key] for report in reports if report[key] is not None]
        worst[key] = min(values) if values else None
    patterns = sorted({name for report in reports for name in report["recall_by_pattern"]})
    worst["recall_by_pattern"] = {
        name: min(r["recall_by_pattern"][name] for r in reports if name in r["recall_by_pattern"])
        for name in patterns
    }
    worst["maker_flag_rate"] = max(report["maker_flag_rate"] for report in reports)
    worst["false_leads"] = sum(report["leads"] - report["wash_leads"] for report in reports)
    worst["per_seed"] = reports
    return worst


def journal_by_the_minute(
    path: Path, markets: list, commands: list[dict], times: list[int], map_size: int = 256 << 20
) -> Store:
    """`commands` through the real engine into a new LMDB store at `path`, a commit per minute
    (COMMIT_NS) of their generated times, each stamped with the time of its last command: the
    time-window detectors then see the times a live node would have given them."""
    commit_time = [times[0]]
    store = Store(path, map_size=map_size, sync="none", clock=lambda: commit_time[0])
    durable = DurableEngine(store)
    durable.configure(markets)
    batch: list[PeerCommand] = []
    opened = times[0]
    for command, stamp in zip(commands, times, strict=True):
        if stamp - opened >= COMMIT_NS and batch:
            durable.submit(batch)
            batch, opened = [], stamp
        commit_time[0] = stamp
        batch.append(msgspec.convert(command, PeerCommand))
    durable.submit(batch)
    return store


def _replayed(market: LabelledMarket, folder: Path) -> tuple[Store, AnalyticsStore]:
    """The market through the real engine into LMDB (`journal_by_the_minute`), then into
    DuckDB."""
    store = journal_by_the_minute(folder / "data", list(MARKETS), market.commands, market.times)
    analytics = AnalyticsStore(folder / "analytics.duckdb")
    JournalFollower(store, analytics).sync()
    return store, analytics


def _recall_by_pattern(wash_trades: dict[int, str], flagged: set[int]) -> dict[str, float]:
    totals: dict[str, list[int]] = {}
    for seq, group in wash_trades.items():
        counts = totals.setdefault(pattern_of(group), [0, 0])
        counts[0] += 1
        counts[1] += seq in flagged
    return {name: round(hits / total, 4) for name, (total, hits) in sorted(totals.items())}


def _anomaly_scores(market: LabelledMarket, traded: list[str], scored: dict[str, float]) -> dict:
    """ROC AUC of the anomaly score with the injected wash wallets as positives, every other
    wallet that traded (honest, makers, benign-but-unusual, odd bots) as negatives: the leads
    are for finding wash, and an odd but honest wallet ranked high is a false lead. Every
    injected wallet counts, also one whose wash orders happened to meet somebody else's; a
    wallet that traded too little to be scored counts as scoring lowest, so leaving wallets
    out cannot raise the figure. `anomaly_auc_vs_benign` counts only the benign-but-unusual
    wallets and makers as negatives: the hardest to tell apart."""
    positives = {wallet for members in market.wash_groups.values() for wallet in members}
    unusual = set().union(*market.benign.values(), market.makers)

    def auc(negatives: set[str]) -> float | None:
        wallets = [w for w in traded if w in positives or w in negatives]
        labels = [1 if wallet in positives else 0 for wallet in wallets]
        if not 0 < sum(labels) < len(labels):
            return None
        return round(float(roc_auc_score(labels, [scored.get(w, 0.0) for w in wallets])), 4)

    return {
        "anomaly_auc": auc(set(traded) - positives),
        "anomaly_auc_vs_benign": auc(unusual),
        "wallets_scored": f"{len(scored)} of {len(traded)}",
    }


def _leads(alerts: list[Alert]) -> set[str]:
    return {alert.wallets[0] for alert in alerts if alert.detector == "anomalous_wallets"}


def _lead_scores(market: LabelledMarket, alerts: list[Alert]) -> dict:
    """The anomaly leads: how many, the share that are wash wallets (1.0 when there are
    none), how many a wash finding of the scan already names (`explained`), and the false ones
    by what they really are."""
    leads = _leads(alerts)
    positives = {wallet for members in market.wash_groups.values() for wallet in members}
    kinds = {wallet: kind for kind, wallets in market.benign.items() for wallet in wallets}
    false_leads: dict[str, int] = {}
    for wallet in sorted(leads - positives):
        kind = "maker" if wallet in market.makers else kinds.get(wallet, "honest")
        false_leads[kind] = false_leads.get(kind, 0) + 1
    wash_leads = len(leads & positives)
    return {
        "leads": len(leads),
        "wash_leads": wash_leads,
        "lead_precision": round(wash_leads / len(leads), 4) if leads else 1.0,
        "leads_explained": sum(
            1
            for alert in alerts
            if alert.detector == "anomalous_wallets" and alert.evidence["explained"]
        ),
        "false_leads_by_kind": false_leads,
    }


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

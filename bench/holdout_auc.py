"""ROC AUC of the anomalous-wallets score, and the share of its leads that are wash wallets, on
a scanned hold-out home, through the CLI.

    python bench/holdout_auc.py --home DIR --labels FILE [--json]

FILE is what `bench/holdout_market.py` (truth.json) or `bench/holdout_b.py` (labels.json) wrote
beside the home. Positives are the injected wash wallets; every other wallet (honest, makers, and
both hold-outs' bots, odd as they are) is a negative, as in `mnode integrity eval`: the leads are
for finding wash, and an odd but honest wallet ranked high is a false lead. Every wallet that
traded counts: one the forest did not score (too few trades) ranks lowest, so leaving wallets out
cannot raise the figure. The scores come from `mnode integrity rank --json`, the wallets from
`mnode sql`, the leads from the anomalous_wallets alerts the hold-out's scan kept
(`lead_precision`: the share of them that are wash wallets, 1.0 when there are none).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path


def positives(labels: dict) -> set[str]:
    groups = labels["groups"]
    if isinstance(groups, list):  # hold-out A: truth.json
        return {wallet for group in groups for wallet in group["wallets"]}
    return {wallet for group in groups.values() for wallet in group["members"]}  # hold-out B


def roc_auc(scores: list[float], labels: list[int]) -> float:
    """The probability that a random positive outscores a random negative (ties count half)."""
    ranked = sorted(zip(scores, labels, strict=True))
    rank_sum = 0.0
    position = 0
    while position < len(ranked):
        end = position
        while end < len(ranked) and ranked[end][0] == ranked[position][0]:
            end += 1
        mean_rank = (position + 1 + end) / 2
        rank_sum += mean_rank * sum(label for _, label in ranked[position:end])
        position = end
    hits = sum(labels)
    misses = len(labels) - hits
    return (rank_sum - hits * (hits + 1) / 2) / (hits * misses)


def mnode(*args: str) -> str:
    executable = shutil.which("mnode") or str(Path(sys.executable).with_name("mnode"))
    return subprocess.run(
        [executable, *args], check=True, capture_output=True, text=True
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--labels", required=True, type=Path)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    wanted = positives(json.loads(options.labels.read_text()))
    ranked = json.loads(mnode("integrity", "rank", "--home", options.home, "--limit", "10000000",
                              "--json"))  # fmt: skip
    scores = {record["wallet"]: record["score"] for record in ranked}
    rows = json.loads(
        mnode("sql", "--home", options.home, "SELECT DISTINCT wallet FROM wallet_trades", "--json")
    )
    traded = sorted(row["wallet"] for row in rows)
    labels = [1 if wallet in wanted else 0 for wallet in traded]
    leads = {
        row["wallet"]
        for row in json.loads(
            mnode("sql", "--home", options.home, "--json",
                  "SELECT wallets[1] AS wallet FROM alerts WHERE detector = 'anomalous_wallets'")
        )
    }  # fmt: skip
    report = {
        "anomaly_auc": round(roc_auc([scores.get(w, 0.0) for w in traded], labels), 4),
        "lead_precision": round(len(leads & wanted) / len(leads), 4) if leads else 1.0,
        "leads": len(leads),
        "wallets": len(traded),
        "scored": len(scores),
        "positives": sum(labels),
    }
    print(json.dumps(report) if options.json else
          f"anomaly ROC AUC {report['anomaly_auc']} over {report['wallets']} wallets "
          f"({report['scored']} scored, {report['positives']} positives); lead precision "
          f"{report['lead_precision']} of {report['leads']} leads")  # fmt: skip


if __name__ == "__main__":
    main()

"""Recorded answers of a demo node to each of the dashboard's sources, for the snapshot tests.

`python tests/dashboard_answers.py` runs the demo for a minute and writes
tests/data/dashboard_answers.json (the metrics history trimmed to two minutes). The snapshots
render exactly these answers, so they change only when the dashboard's rendering does.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import msgspec

from marketnode.node.client import AdminClient, Subscriber, address_of_home
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.node.home.layout import Home
from marketnode.node.tools.demo import RING_MARKET, run_demo
from marketnode.tui.panels.integrity import ALERTS_QUERY
from marketnode.tui.panels.markets import DAY_STATS_QUERY
from marketnode.tui.sources import BOOK_DEPTH, EVIDENCE_TRADES_QUERY

ANSWERS = Path(__file__).parent / "data" / "dashboard_answers.json"
SECONDS_KEPT = 120


def record(home: Home) -> dict:
    time.sleep(70)  # after the first drop (a minute of history to forecast from), before the next
    address = address_of_home(home)
    key = load_key_pair(home.keys_path(home.config()) / f"{OPERATOR}.key_secret")
    subscriber = Subscriber(address, key, [RING_MARKET])
    with AdminClient(address, key, timeout_s=30) as admin:
        metrics = admin.call("metrics")
        metrics["history"] = metrics["history"][-SECONDS_KEPT:]
        alerts = admin.call("sql", query=ALERTS_QUERY)
        ring_alert = next(row[0] for row in alerts["rows"] if row[4] == "trade_cycles")
        answers = {
            "status": admin.call("status"),
            "metrics": metrics,
            "peers": admin.call("peers"),
            "markets": admin.call("markets"),
            "book": admin.call("book", market=RING_MARKET, depth=BOOK_DEPTH),
            "market_stats": admin.call("sql", query=DAY_STATS_QUERY),
            "alerts": alerts,
            "scale": admin.call("scale"),
            "evidence": {
                "alert": ring_alert,
                "result": admin.call("sql", query=EVIDENCE_TRADES_QUERY, params=[ring_alert]),
            },
        }
    trades: list = []
    while len(trades) < 30:
        message = subscriber.receive(5000)
        if message is not None:
            trades.extend(msgspec.to_builtins(message.trades))
    subscriber.close()
    answers["tape"] = {"market": RING_MARKET, "time": time.time(), "trades": trades[:30]}
    return answers


if __name__ == "__main__":
    kept: dict = {}

    def watch(home: Home) -> None:
        kept.update(record(home))

    with tempfile.TemporaryDirectory() as folder:
        run_demo(Path(folder) / "home", 60, 2000, watch=watch)
    ANSWERS.write_text(json.dumps(kept, indent=1) + "\n")
    print(f"{ANSWERS}: {ANSWERS.stat().st_size:,} bytes")

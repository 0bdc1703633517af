"""The integrity scan across a cluster's nodes (`mnode cluster scan`), in the cluster's folder:

    scan/followers/NODE.duckdb   each node's journal as its analytics store would have it
    scan/trades/*.parquet        every node's trades, a file per node and export
    scan/requotes/*.parquet      every node's accepted cancels and replaces
    scan/nodes.json              each node's number in the cluster-wide trade ids
    scan/alerts.json             the alerts found so far, each once

Each scan exports what every node committed since the last one (node_export), reads the union
of all the files in memory and runs the cross-market trade cycles over it (cross_market). The
scan lives beside the analytics store rather than in `node.cluster`, which may not read a
journal or run the detectors; the CLI hands it the nodes' homes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from marketnode.plugins.alerts import Alert

from ..home.layout import Home
from .cross_market import detect_cross_market, union_store
from .integrity import alert_record
from .node_export import NodeExport, export_node

SCAN_FOLDER = "scan"


@dataclass
class ScanReport:
    exports: list[NodeExport]
    trades: int
    """Trades in the union (every node's, the whole history exported)."""
    alerts: list[dict] = field(default_factory=list)
    """Every alert the union shows now."""
    new: list[str] = field(default_factory=list)
    """The ids of the alerts not kept before this scan."""

    def as_record(self) -> dict:
        return {"exports": [asdict(e) for e in self.exports], "trades": self.trades,
                "alerts": self.alerts, "new": self.new}  # fmt: skip


def scan_cluster(folder: Path, homes: Mapping[str, Home]) -> ScanReport:
    """Export every node's new trades into `folder`/scan, scan the union, keep new alerts."""
    scan = folder / SCAN_FOLDER
    exports = [
        export_node(name, home, scan / "followers" / f"{name}.duckdb", scan)
        for name, home in sorted(homes.items())
    ]
    numbers = node_numbers(scan / "nodes.json", list(homes))
    connection = union_store(scan, numbers)
    try:
        trades = connection.execute("SELECT count(*) FROM trades").fetchone()[0]
        alerts = detect_cross_market(connection)
    finally:
        connection.close()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for alert in alerts:
        alert.time = now
    records = [alert_record(alert) for alert in sorted(alerts, key=_order)]
    new = keep_alerts(scan / "alerts.json", records)
    return ScanReport(exports, trades, records, new)


def node_numbers(path: Path, names: list[str]) -> dict[str, int]:
    """Each node's number, kept in `path`: a node keeps the number it was first given, so the
    trade ids (and the alert ids made from them) stay the same from scan to scan."""
    numbers: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    for name in sorted(names):
        if name not in numbers:
            numbers[name] = max(numbers.values(), default=0) + 1
    _write_whole(path, numbers)
    return numbers


def keep_alerts(path: Path, records: list[dict]) -> list[str]:
    """Add the alerts not in `path` yet (by id) and return their ids."""
    kept: list[dict] = json.loads(path.read_text()) if path.exists() else []
    known = {alert["id"] for alert in kept}
    new = [record for record in records if record["id"] not in known]
    if new:
        _write_whole(path, kept + new)
    return [record["id"] for record in new]


def _order(alert: Alert) -> tuple:
    return alert.market, min(alert.trades, default=0)


def _write_whole(path: Path, content: object) -> None:
    """`content` as JSON in `path`, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content, indent=1))
    os.replace(partial, path)

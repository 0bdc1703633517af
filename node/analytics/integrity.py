"""Integrity scans: every detector plugin over the analytics store, alerts kept in it.

Detectors are plugins of the `marketnode.integrity` entry point group (plugins/host.py); a
detector that raises is logged and left out, the others' alerts are kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import duckdb
import msgspec

from marketnode.plugins.alerts import Alert
from marketnode.plugins.host import INTEGRITY, PluginHost, plugin_host
from marketnode.plugins.settings import settings_in_effect

from ..home.config import IntegrityConfig


def detector_settings(
    config: IntegrityConfig, source: str = "config.toml"
) -> dict[str, dict[str, Any]]:
    """Every installed detector's settings: its declared defaults, overridden by its
    `[integrity.NAME]` table (ConfigError, one line, for a mistake in one)."""
    return settings_in_effect(INTEGRITY, config.detectors, source)


def scan(
    connection: duckdb.DuckDBPyConnection, settings: dict[str, dict[str, Any]]
) -> list[Alert]:
    """Run every detector with `settings` (detector_settings); alerts sorted by market,
    detector and first trade. A scan interrupted because its process stops raises
    duckdb.InterruptException."""
    alerts = [alert for _, found in scan_each(connection, settings) for alert in found]
    return sorted(alerts, key=lambda a: (a.market, a.detector, min(a.trades, default=0)))


LANES = ("findings", "scores")
"""The detectors that find wash (quick, incremental) and those that only score markets and
wallets (declared `trylast`: the anomaly forest trains for seconds over every wallet). A running
node scans each lane in a thread of its own, so a finding never waits for a training."""


def lane_host(lane: str | None) -> PluginHost:
    """The integrity plugins of `lane` (None: all of them) in a host of their own, registered
    from the process's host, so that a scan of one lane calls only its detectors."""
    host = plugin_host(INTEGRITY)
    if lane is None:
        return host
    scores = lane == "scores"
    subset = PluginHost(INTEGRITY)
    for implementation in host.hook.detect_integrity.get_hookimpls():
        if implementation.trylast == scores:
            subset.register(implementation.plugin, name=implementation.plugin_name)
    return subset


def prepare_lane(lane: str) -> None:
    """Let the detectors of `lane` load their slow libraries (`prepare_integrity`)."""
    lane_host(lane).call_each("prepare_integrity")


def scan_each(
    connection: duckdb.DuckDBPyConnection,
    settings: dict[str, dict[str, Any]],
    lane: str | None = None,
) -> Iterator[tuple[str, list[Alert]]]:
    """(plugin name, its alerts) of each detector of `lane` (LANES; None: every detector) as it
    finishes, so that a caller can keep and publish what the quick detectors found while the
    slow ones run (the detectors that only score markets and wallets run last: `trylast`).
    Every alert of one scan carries the scan's start time."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for name, found in lane_host(lane).answers(
        "detect_integrity",
        let_through=(duckdb.InterruptException,),
        connection=connection,
        settings=settings,
    ):
        for alert in found:
            alert.time = alert.time or now
        yield name, found


def store_alerts(connection: duckdb.DuckDBPyConnection, alerts: list[Alert]) -> list[Alert]:
    """Keep the alerts not stored yet (same detector, market and trades: same id), each once;
    return those."""
    known = {row[0] for row in connection.execute("SELECT id FROM alerts").fetchall()}
    new = list({alert.id: alert for alert in alerts if alert.id not in known}.values())
    plugins = plugin_host(INTEGRITY)
    for alert in new:
        connection.execute(
            "INSERT INTO alerts VALUES (?, CAST(? AS TIMESTAMPTZ), ?, ?, ?, ?, ?, ?, "
            "CAST(? AS DECIMAL(38, 12)), NULL)",
            [
                alert.id, alert.time, alert.detector, alert.severity, alert.market,
                alert.wallets, alert.trades, json.dumps(alert.evidence), alert.wash_volume,
            ],
        )  # fmt: skip
        plugins.call_each("act_on_alert", alert=alert)
    return new


LABELS = ("wash", "benign")


def acknowledge(connection: duckdb.DuckDBPyConnection, alert_id: object, label: object) -> dict:
    """A reviewer's verdict on an alert, kept for evaluating the detectors."""
    if label not in LABELS:
        return {"ok": False, "error": f"label must be one of {', '.join(LABELS)}"}
    found = connection.execute("SELECT count(*) FROM alerts WHERE id = ?", [alert_id]).fetchone()
    if not found[0]:
        return {"ok": False, "error": f"no alert {alert_id!r}"}
    connection.execute("UPDATE alerts SET label = ? WHERE id = ?", [label, alert_id])
    return {"ok": True, "result": {"id": alert_id, "label": label}}


def alert_record(alert: Alert) -> dict:
    return msgspec.to_builtins(alert)

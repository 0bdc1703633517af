"""Integrity scans: every detector plugin over the analytics store, alerts kept in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import msgspec

from marketnode.plugins import plugin_manager
from marketnode.plugins.alerts import Alert

from ..home.config import IntegrityConfig
from ..home.plugin_settings import merge_settings


def detector_settings(
    config: IntegrityConfig, source: str = "config.toml"
) -> dict[str, dict[str, Any]]:
    """Every installed detector's settings: its declared defaults, overridden by its
    `[integrity.NAME]` table (ConfigError, one line, for a mistake in one)."""
    declared: dict[str, dict[str, Any]] = {}
    for found in plugin_manager().hook.integrity_settings():
        declared.update(found or {})
    return merge_settings(declared, config.detectors, "integrity", source, "detector")


def scan(
    connection: duckdb.DuckDBPyConnection, settings: dict[str, dict[str, Any]]
) -> list[Alert]:
    """Run every detector with `settings` (detector_settings); alerts sorted by market,
    detector and first trade."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    alerts: list[Alert] = []
    for found in plugin_manager().hook.detect_integrity(connection=connection, settings=settings):
        alerts.extend(found or [])
    for alert in alerts:
        alert.time = alert.time or now
    return sorted(alerts, key=lambda a: (a.market, a.detector, min(a.trades, default=0)))


def store_alerts(connection: duckdb.DuckDBPyConnection, alerts: list[Alert]) -> list[Alert]:
    """Keep the alerts not stored yet (same detector, market and trades: same id); return
    those."""
    known = {row[0] for row in connection.execute("SELECT id FROM alerts").fetchall()}
    new = [alert for alert in alerts if alert.id not in known]
    manager = plugin_manager()
    for alert in new:
        connection.execute(
            "INSERT INTO alerts VALUES (?, CAST(? AS TIMESTAMPTZ), ?, ?, ?, ?, ?, ?, "
            "CAST(? AS DECIMAL(38, 12)), NULL)",
            [
                alert.id, alert.time, alert.detector, alert.severity, alert.market,
                alert.wallets, alert.trades, json.dumps(alert.evidence), alert.wash_volume,
            ],
        )  # fmt: skip
        manager.hook.act_on_alert(alert=alert)
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

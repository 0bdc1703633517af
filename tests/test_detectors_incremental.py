"""Incremental scans: detectors that keep running totals between scans find what a scan over the
whole history finds, however the history was cut into scans.

Each generated market (washgen, three seeds) is replayed through a real journal into a DuckDB
store, its commit times spread over a day (three seconds a seq), so that the one-hour and one-day
windows each hold many buckets. One store then receives the history in pieces with a scan after
each; another receives it at once and is scanned once. Their findings must be the same.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import msgspec
import pytest

from marketnode.node.analytics.duckdb_store import AnalyticsStore
from marketnode.node.analytics.follower import JournalFollower
from marketnode.node.analytics.integrity import detector_settings, scan, store_alerts
from marketnode.node.core.commands import PeerCommand
from marketnode.node.home.config import IntegrityConfig
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store
from marketnode.node.tools.washgen import MARKET, generate_labelled_market
from marketnode.plugins.market_statistics import ADD_SIZES, SCHEMA, first_digit, is_round

SEEDS = (1, 2, 3)
STEPS = 6000
PIECES = 5
SECONDS_PER_SEQ = 3
SETTINGS = detector_settings(IntegrityConfig(detectors={"anomalous_wallets": {"retrain_s": 0}}))
"""The anomaly forest (no running totals: trained on the whole population) at every scan."""
SPREAD_TIMES = (
    "UPDATE {table} SET time = TIMESTAMPTZ '2026-11-01 00:00:00+00' "
    f"+ to_seconds(seq * {SECONDS_PER_SEQ})"
)


def replayed_market(folder: Path, seed: int) -> Path:
    """A store holding a labelled market's events, times spread out; its path."""
    market = generate_labelled_market(seed, STEPS)
    commands = [msgspec.convert(command, PeerCommand) for command in market.commands]
    store = Store(folder / "data", map_size=64 << 20, sync="none")
    analytics = AnalyticsStore(folder / "source.duckdb")
    try:
        durable = DurableEngine(store)
        durable.configure([MARKET])
        for start in range(0, len(commands), 1000):
            durable.submit(commands[start : start + 1000])
        JournalFollower(store, analytics).sync()
        for table in ("trades", "events"):
            analytics.connection.execute(SPREAD_TIMES.format(table=table))
    finally:
        analytics.close()
        store.close()
    return folder / "source.duckdb"


def copy_seqs(analytics: AnalyticsStore, source: Path, after: int, upto: int) -> None:
    """The source's trades and events with a seq in (after, upto], appended as the follower
    appends them (one transaction)."""
    connection = analytics.connection
    connection.execute(f"ATTACH IF NOT EXISTS '{source}' AS source (READ_ONLY)")
    connection.execute("BEGIN TRANSACTION")
    for table in ("events", "trades"):
        connection.execute(
            f"INSERT INTO {table} SELECT * FROM source.{table} WHERE seq > ? AND seq <= ?",
            [after, upto],
        )
    connection.execute("COMMIT")


TOTALS = ("totals_marks", "window_pairs", "window_wallets", "market_sizes")
"""The running totals the detectors keep between scans."""


def rows_of(analytics: AnalyticsStore, table: str) -> list[tuple]:
    return analytics.connection.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def findings(alerts: list) -> list[tuple]:
    return [
        (a.id, a.detector, a.severity, a.wallets, a.trades, a.evidence, a.wash_volume)
        for a in alerts
    ]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_scans_in_pieces_find_what_one_scan_over_the_whole_history_finds(tmp_path, seed):
    source = replayed_market(tmp_path, seed)
    whole = AnalyticsStore(tmp_path / "whole.duckdb")
    pieces = AnalyticsStore(tmp_path / "pieces.duckdb")
    try:
        last = whole.connection.execute(
            f"ATTACH '{source}' AS source (READ_ONLY); SELECT max(seq) FROM source.events"
        ).fetchone()[0]
        copy_seqs(whole, source, 0, last)
        expected = scan(whole.connection, SETTINGS)
        kept_whole = {alert.id for alert in store_alerts(whole.connection, expected)}

        kept_in_pieces: set[str] = set()
        cuts = [last * n // PIECES for n in range(PIECES + 1)]
        for after, upto in itertools.pairwise(cuts):
            copy_seqs(pieces, source, after, upto)
            found = scan(pieces.connection, SETTINGS)
            kept_in_pieces |= {alert.id for alert in store_alerts(pieces.connection, found)}
        for totals in TOTALS:
            assert rows_of(pieces, totals) == rows_of(whole, totals), totals
        assert findings(found) == findings(expected)
        assert kept_whole <= kept_in_pieces  # what earlier scans kept stays kept
        assert findings(scan(pieces.connection, SETTINGS)) == findings(expected)  # nothing new
        detectors = {alert.detector for alert in expected}
        assert {"wash_clusters", "trade_cycles", "round_trips"} <= detectors
        buckets = {
            alert.evidence["window_start"]
            for alert in expected
            if alert.evidence.get("window_s") == 3600
        }
        assert len(buckets) > 1  # the hour windows were exercised, not one bucket
    finally:
        whole.close()
        pieces.close()


def test_the_running_size_totals_read_digits_and_round_sizes_as_the_detector_defines_them(
    tmp_path,
):
    from decimal import Decimal

    sizes = ["0.042", "7", "19.5", "300", "10", "250", "10.5", "0.1", "1000", "0.000001", "9"]
    analytics = AnalyticsStore(tmp_path / "analytics.duckdb")
    try:
        connection = analytics.connection
        for seq, size in enumerate(sizes, start=1):
            connection.execute(
                "INSERT INTO trades VALUES (?, now(), ?, 1, ?, ?, 'm', 'a', 't', 'b', 'buy', "
                "'b', 'a')",
                [seq, f"M{seq}", size, size],
            )
        connection.execute(SCHEMA)
        connection.execute(ADD_SIZES, {"since": 0, "until": len(sizes)})
        rows = connection.execute(
            "SELECT first_digit, round FROM market_sizes ORDER BY CAST(market[2:] AS INT)"
        ).fetchall()
    finally:
        analytics.close()
    assert rows == [(first_digit(Decimal(s)), is_round(Decimal(s))) for s in sizes]

"""The analytics store: a home's DuckDB file, its tables and views, and the ingest position.

Every event of the journal lands here, for SQL and market integrity. The journal position the
store has reached is written in the same DuckDB transaction as the rows it brings, so after a
crash or a restart ingestion continues from there: no event is missed and none is written twice.
Each event carries the time its batch was committed by the node. What fills the tables is the
journal follower (follower.py); how a batch becomes rows is batch.py.

A file DuckDB cannot open (not a database, a damaged block, locked) is an AnalyticsStoreError of
one line; a damaged block met by a query is told from a mistake in the query by `is_damage`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from marketnode.plugins.partners import KNOWN_MAKERS_TABLE

from ..store.lmdb_store import StoreError
from .batch import Batch
from .books import SCHEMA as BOOKS
from .settlement import SCHEMA as SETTLEMENT

SCHEMA = KNOWN_MAKERS_TABLE + """
CREATE TABLE IF NOT EXISTS ingest (id INTEGER, journal_position BIGINT NOT NULL, seq BIGINT);
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT, time TIMESTAMPTZ, kind VARCHAR, op VARCHAR, market VARCHAR, order_id VARCHAR,
    owner VARCHAR, side VARCHAR, reason VARCHAR, price DECIMAL(38, 12), qty DECIMAL(38, 12),
    remaining DECIMAL(38, 12)
);
CREATE TABLE IF NOT EXISTS trades (
    seq BIGINT, time TIMESTAMPTZ, market VARCHAR, price DECIMAL(38, 12), qty DECIMAL(38, 12),
    notional DECIMAL(38, 12), maker_id VARCHAR, maker_owner VARCHAR, taker_id VARCHAR,
    taker_owner VARCHAR, aggressor VARCHAR, buyer VARCHAR, seller VARCHAR
);
CREATE TABLE IF NOT EXISTS links (a VARCHAR, b VARCHAR, reason VARCHAR, time TIMESTAMPTZ);
-- the node's own metrics, a row per minute, metric and market ('' for the node as a whole)
CREATE TABLE IF NOT EXISTS metrics (
    time TIMESTAMPTZ, metric VARCHAR, market VARCHAR, mean DOUBLE, max DOUBLE, samples INTEGER
);
CREATE TABLE IF NOT EXISTS alerts (
    id VARCHAR, time TIMESTAMPTZ, detector VARCHAR, severity VARCHAR, market VARCHAR,
    wallets VARCHAR[], trades BIGINT[], evidence VARCHAR, wash_volume DECIMAL(38, 12),
    label VARCHAR
);
-- candles: SELECT * FROM ohlcv(INTERVAL 1 MINUTE)
CREATE OR REPLACE MACRO ohlcv(width) AS TABLE
    SELECT market, time_bucket(width, time) AS bucket, arg_min(price, seq) AS open,
           max(price) AS high, min(price) AS low, arg_max(price, seq) AS close,
           sum(qty) AS volume, sum(notional) AS notional, count(*) AS trades
    FROM trades GROUP BY ALL ORDER BY market, bucket;
-- each trade once from each side's point of view
CREATE OR REPLACE VIEW wallet_trades AS
    SELECT seq, time, market, buyer AS wallet, 'buy' AS side, seller AS counterparty, price,
           qty, notional FROM trades
    UNION ALL
    SELECT seq, time, market, seller, 'sell', buyer, price, qty, notional FROM trades;
CREATE OR REPLACE VIEW market_days AS
    SELECT market, day, trades, volume, notional, wallets
    FROM (SELECT market, CAST(time AS DATE) AS day, count(*) AS trades, sum(qty) AS volume,
                 sum(notional) AS notional FROM trades GROUP BY ALL)
    JOIN (SELECT market, CAST(time AS DATE) AS day, count(DISTINCT wallet) AS wallets
          FROM wallet_trades GROUP BY ALL) USING (market, day)
    ORDER BY market, day;
CREATE OR REPLACE VIEW top_wallets AS
    SELECT wallet, count(*) AS trades, sum(notional) AS notional,
           count(DISTINCT counterparty) AS counterparties
    FROM wallet_trades GROUP BY wallet ORDER BY notional DESC;
-- trades named by an alert as wash (not by the scoring detectors, whose alerts list every trade
-- they scored, and not by an alert a reviewer labelled benign), and each market's wash share
CREATE OR REPLACE VIEW flagged_trades AS
    SELECT DISTINCT unnest(trades) AS seq FROM alerts
    WHERE detector NOT IN ('market_statistics', 'anomalous_wallets')
      AND coalesce(label, '') <> 'benign';
CREATE OR REPLACE VIEW market_wash AS
    SELECT t.market, sum(t.notional) AS notional,
           coalesce(sum(t.notional) FILTER (WHERE f.seq IS NOT NULL), 0) AS wash_notional,
           round(coalesce(sum(t.notional) FILTER (WHERE f.seq IS NOT NULL), 0)
                 / sum(t.notional), 4) AS wash_share
    FROM trades t LEFT JOIN flagged_trades f USING (seq)
    GROUP BY t.market ORDER BY t.market;
-- the seller -> buyer graph
CREATE OR REPLACE VIEW counterparties AS
    SELECT market, seller, buyer, count(*) AS trades, sum(qty) AS qty, sum(notional) AS notional
    FROM trades GROUP BY ALL ORDER BY notional DESC;
"""
SCHEMA += BOOKS + SETTLEMENT  # (their views read the tables above)


class AnalyticsStoreError(StoreError):
    """The analytics file cannot be used; the message is one line for the operator (a
    StoreError, so every command that refuses an unusable store refuses this one alike)."""


def is_damage(error: duckdb.Error) -> bool:
    """A fault of the file (a damaged block, an I/O error), not of the SQL asked for: DuckDB
    raises its base class, or one of these, for a checksum that does not match."""
    return type(error) is duckdb.Error or isinstance(
        error, duckdb.IOException | duckdb.InternalException | duckdb.SerializationException
    )


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class AnalyticsStore:
    """The DuckDB file of a home. One process writes it (the node's analytics process, or the
    CLI when the node is stopped); `read_only` connections may be many."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        try:
            self.connection = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as error:
            raise AnalyticsStoreError(f"{path}: cannot open it: {first_line(error)}") from None
        try:
            if not read_only:
                self.connection.execute(SCHEMA)
                if not self.connection.execute("SELECT count(*) FROM ingest").fetchone()[0]:
                    self.connection.execute("INSERT INTO ingest VALUES (1, 0, 0)")
        except duckdb.Error as error:
            self.connection.close()
            raise AnalyticsStoreError(f"{path}: {first_line(error)}") from None

    def position(self) -> int:
        """Journal commands whose events are stored."""
        row = self.connection.execute("SELECT journal_position FROM ingest").fetchone()
        return row[0] if row else 0

    def append(self, batch: Batch) -> None:
        """A batch's events and trades, and the journal position it brings the store to, in
        one transaction."""
        connection = self.connection
        connection.execute("BEGIN TRANSACTION")
        try:
            batch.insert(connection)
            connection.execute(
                "UPDATE ingest SET journal_position = ?, seq = ?", [batch.position, batch.seq]
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.connection.close()


@dataclass(frozen=True)
class IngestSummary:
    """What the analytics store says it has ingested, and what its events table holds."""

    position: int
    """Journal commands whose events are stored."""
    seq: int
    """The seq of the last event the store was told it ingested."""
    events: int
    last_event_seq: int


def ingest_summary(path: Path) -> IngestSummary:
    """Read the file read-only (a stopped node's); AnalyticsStoreError if it cannot be read."""
    store = AnalyticsStore(path, read_only=True)
    try:
        position, seq = store.connection.execute(
            "SELECT journal_position, seq FROM ingest"
        ).fetchone() or (0, 0)
        events, last = store.connection.execute(
            "SELECT count(*), coalesce(max(seq), 0) FROM events"
        ).fetchone()
    except duckdb.Error as error:
        raise AnalyticsStoreError(f"{path}: {first_line(error)}") from None
    finally:
        store.close()
    return IngestSummary(position, seq, events, last)


def ingest_problems(summary: IngestSummary, journal_length: int, seq_at: int | None) -> list[str]:
    """How the store's events disagree with the journal: `seq_at` is the journal's seq after
    the store's position (None: the position is past the journal's end). Every event has its own
    seq, from 1 up, so by then the store holds exactly `seq_at` events, the last with that seq."""
    if seq_at is None or summary.position > journal_length:
        return [
            f"analytics store is at journal position {summary.position}, past the journal's "
            f"end ({journal_length}): it was fed from another journal"
        ]
    problems = []
    if summary.seq != seq_at:
        problems.append(
            f"analytics store says seq {summary.seq} at journal position {summary.position}, "
            f"the journal gives seq {seq_at}"
        )
    if (summary.events, summary.last_event_seq) != (seq_at, seq_at):
        problems.append(
            f"analytics store holds {summary.events} events up to seq {summary.last_event_seq}; "
            f"the journal's first {summary.position} commands make {seq_at} events"
        )
    return problems

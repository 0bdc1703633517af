"""The analytics store: every event of the journal, in DuckDB, for SQL and market integrity.

It is fed off the hot path: a follower reads the LMDB journal (the source of truth), replays it
through an engine of its own to regenerate the events, and appends them in Arrow batches. The
journal position it has reached is written in the same DuckDB transaction as the rows, so after
a crash or a restart it continues from there: no event is missed and none is written twice.
Each event carries the time its batch was committed by the node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .decimals import format_scaled
from .engine import Engine
from .events import Accepted, Cancelled, Rejected, Trade
from .store import Store

ANALYTICS_FILE = "analytics.duckdb"
ROWS_PER_WRITE = 50_000
"""Events appended per DuckDB transaction while catching up."""

SCHEMA = """
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
-- the seller -> buyer graph
CREATE OR REPLACE VIEW counterparties AS
    SELECT market, seller, buyer, count(*) AS trades, sum(qty) AS qty, sum(notional) AS notional
    FROM trades GROUP BY ALL ORDER BY notional DESC;
"""

EVENT_COLUMNS = (
    "seq", "time_ns", "kind", "op", "market", "order_id", "owner", "side", "reason", "price",
    "qty", "remaining",
)  # fmt: skip
TRADE_COLUMNS = (
    "seq", "time_ns", "market", "price", "qty", "notional", "maker_id", "maker_owner",
    "taker_id", "taker_owner", "aggressor", "buyer", "seller",
)  # fmt: skip


class AnalyticsStore:
    """The DuckDB file of a home. One process writes it (the node, or the CLI when the node is
    stopped); `read_only` connections may be many."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.connection = duckdb.connect(str(path), read_only=read_only)
        if not read_only:
            self.connection.execute(SCHEMA)
            if not self.connection.execute("SELECT count(*) FROM ingest").fetchone()[0]:
                self.connection.execute("INSERT INTO ingest VALUES (1, 0, 0)")

    def position(self) -> int:
        """Journal commands whose events are stored."""
        row = self.connection.execute("SELECT journal_position FROM ingest").fetchone()
        return row[0] if row else 0

    def append(
        self, events: dict[str, list], trades: dict[str, list], position: int, seq: int
    ) -> None:
        """Rows and the position they bring the store to, in one transaction."""
        connection = self.connection
        connection.execute("BEGIN TRANSACTION")
        try:
            if events["seq"]:
                connection.register("new_events", pa.table(events))
                connection.execute(
                    "INSERT INTO events SELECT seq, make_timestamp(time_ns // 1000), kind, op, "
                    "market, order_id, owner, side, reason, CAST(price AS DECIMAL(38, 12)), "
                    "CAST(qty AS DECIMAL(38, 12)), CAST(remaining AS DECIMAL(38, 12)) "
                    "FROM new_events"
                )
                connection.unregister("new_events")
            if trades["seq"]:
                connection.register("new_trades", pa.table(trades))
                connection.execute(
                    "INSERT INTO trades SELECT seq, make_timestamp(time_ns // 1000), market, "
                    "CAST(price AS DECIMAL(38, 12)), CAST(qty AS DECIMAL(38, 12)), "
                    "CAST(notional AS DECIMAL(38, 12)), maker_id, maker_owner, taker_id, "
                    "taker_owner, aggressor, buyer, seller FROM new_trades"
                )
                connection.unregister("new_trades")
            connection.execute("UPDATE ingest SET journal_position = ?, seq = ?", [position, seq])
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.connection.close()


def export_parquet(connection: duckdb.DuckDBPyConnection, directory: Path) -> list[str]:
    """Trades and events as Parquet under `directory`, partitioned by market and date (hive
    layout: trades/market=PUNK-ETH/date=2026-11-28/...). Returns the tables written."""
    directory.mkdir(parents=True, exist_ok=True)
    tables = []
    for table in ("trades", "events"):
        target = str(directory / table).replace("'", "''")
        connection.execute(
            f"COPY (SELECT *, CAST(time AS DATE) AS date FROM {table}) TO '{target}' "
            "(FORMAT PARQUET, PARTITION_BY (market, date), OVERWRITE_OR_IGNORE)"
        )
        tables.append(table)
    return tables


class JournalFollower:
    """Replays the journal into its own engine and appends the events the store lacks."""

    def __init__(self, store: Store, analytics: AnalyticsStore) -> None:
        self.store = store
        self.analytics = analytics
        self.engine = Engine()
        self.replayed = 0
        """Journal commands applied to this follower's engine."""

    def sync(self) -> int:
        """Bring the analytics store up to the journal's last commit; the events appended."""
        stored = self.analytics.position()
        written = 0
        events: list[tuple] = []
        trades: list[tuple] = []
        for position, time_ns, out in self._replay():
            if position >= stored:
                books = self.engine.books  # a markets command makes a new dict
                for event in out:
                    events.append(_event_row(event, time_ns, books, trades))
            if len(events) >= ROWS_PER_WRITE:
                written += len(events)
                self._append(events, trades, position + 1)
                events, trades = [], []
        if self.replayed > stored or events:
            written += len(events)
            self._append(events, trades, self.replayed)
        return written

    def _append(self, events: list[tuple], trades: list[tuple], position: int) -> None:
        self.analytics.append(
            _transpose(EVENT_COLUMNS, events),
            _transpose(TRADE_COLUMNS, trades),
            position,
            self.engine.seq,
        )

    def _replay(self) -> Iterator[tuple[int, int, list]]:
        """(command number, its commit's time, its events) for commands not yet replayed."""
        commits = iter(self.store.commits(start=self.replayed))
        boundary = next(commits, None)
        out: list = []
        for index, command in self.store.journal(start=self.replayed):
            while boundary is not None and index >= boundary[0]:
                boundary = next(commits, None)
            if boundary is None:
                return  # journaled after the commits we read: the next sync takes it
            out.clear()
            self.engine.process(command, out)
            self.replayed = index + 1
            yield index, boundary[3], out


def _transpose(names: tuple[str, ...], rows: list[tuple]) -> dict[str, list]:
    """Rows as the named columns Arrow takes (empty columns when there are no rows)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return {name: list(column) for name, column in zip(names, columns, strict=True)}


def _event_row(event: Any, time_ns: int, books: dict, trades: list[tuple]) -> tuple:
    """An `events` row (in EVENT_COLUMNS order); a trade also adds its `trades` row."""
    kind = type(event)
    tag = kind.__struct_config__.tag
    if kind is Accepted:
        return (
            event.seq, time_ns, tag, event.op, event.market, str(event.id), event.owner,
            None, None, None, None, None,
        )  # fmt: skip
    if kind is Rejected:
        return (
            event.seq, time_ns, tag, _text(event.op), _text(event.market), _text(event.id),
            _text(event.owner), None, event.reason, None, None, None,
        )  # fmt: skip
    market = books[event.market].market
    tick, lot = market.tick, market.lot
    qty = lot.text_of(event.qty)
    if kind is Trade:
        price = tick.text_of(event.price)
        taker_buys = event.aggressor == "buy"
        buyer = event.taker_owner if taker_buys else event.maker_owner
        seller = event.maker_owner if taker_buys else event.taker_owner
        notional = format_scaled(
            event.price * tick.mantissa * event.qty * lot.mantissa, tick.exponent + lot.exponent
        )
        trades.append(
            (
                event.seq,
                time_ns,
                event.market,
                price,
                qty,
                notional,
                str(event.maker_id),
                event.maker_owner,
                str(event.taker_id),
                event.taker_owner,
                event.aggressor,
                buyer,
                seller,
            )
        )
        return (
            event.seq, time_ns, tag, None, event.market, None, None, event.aggressor, None,
            price, qty, None,
        )  # fmt: skip
    if kind is Cancelled:
        return (
            event.seq, time_ns, tag, None, event.market, str(event.id), event.owner, None,
            event.reason, None, qty, lot.text_of(event.remaining),
        )  # fmt: skip
    # rested, replaced
    return (
        event.seq, time_ns, tag, None, event.market, str(event.id), event.owner, event.side,
        None, tick.text_of(event.price), qty, None,
    )  # fmt: skip


def _text(value: Any) -> str | None:
    return None if value is None else str(value)

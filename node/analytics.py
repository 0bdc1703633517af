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
from .events import Accepted, Cancelled, Rejected, Replaced, Rested, Trade
from .results import wire_event
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
        events, trades = _columns(EVENT_COLUMNS), _columns(TRADE_COLUMNS)
        for position, time_ns, out in self._replay():
            if position >= stored:
                for event in out:
                    _add_row(events, trades, event, time_ns, self.engine)
            if len(events["seq"]) >= ROWS_PER_WRITE:
                written += len(events["seq"])
                self.analytics.append(events, trades, position + 1, self.engine.seq)
                events, trades = _columns(EVENT_COLUMNS), _columns(TRADE_COLUMNS)
        if self.replayed > stored or events["seq"]:
            written += len(events["seq"])
            self.analytics.append(events, trades, self.replayed, self.engine.seq)
        return written

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


def _columns(names: tuple[str, ...]) -> dict[str, list]:
    return {name: [] for name in names}


def _add_row(events: dict, trades: dict, event: Any, time_ns: int, engine: Engine) -> None:
    kind = type(event)
    record = wire_event(event, engine.books)
    row = dict.fromkeys(EVENT_COLUMNS)
    row.update(
        seq=event.seq, time_ns=time_ns, kind=kind.__struct_config__.tag, market=record.market
    )
    if kind is Accepted or kind is Rejected:
        row.update(op=_text(event.op), order_id=_text(event.id), owner=_text(event.owner))
        if kind is Rejected:
            row["reason"] = event.reason
            row["market"] = _text(event.market)
    elif kind is Trade:
        row.update(price=record.price, qty=record.qty, side=record.aggressor)
        taker_buys = event.aggressor == "buy"
        buyer, seller = (
            (event.taker_owner, event.maker_owner)
            if taker_buys
            else (event.maker_owner, event.taker_owner)
        )
        market = engine.books[event.market].market
        notional = format_scaled(
            event.price * market.tick.mantissa * event.qty * market.lot.mantissa,
            market.tick.exponent + market.lot.exponent,
        )
        for name, value in (
            ("seq", event.seq), ("time_ns", time_ns), ("market", record.market),
            ("price", record.price), ("qty", record.qty), ("notional", notional),
            ("maker_id", str(event.maker_id)), ("maker_owner", event.maker_owner),
            ("taker_id", str(event.taker_id)), ("taker_owner", event.taker_owner),
            ("aggressor", event.aggressor), ("buyer", buyer), ("seller", seller),
        ):  # fmt: skip
            trades[name].append(value)
    elif kind is Rested or kind is Replaced:
        row.update(
            order_id=str(event.id), owner=event.owner, side=event.side, price=record.price,
            qty=record.qty,
        )  # fmt: skip
    elif kind is Cancelled:
        row.update(
            order_id=str(event.id), owner=event.owner, reason=event.reason, qty=record.qty,
            remaining=record.remaining,
        )  # fmt: skip
    for name in EVENT_COLUMNS:
        events[name].append(row[name])


def _text(value: Any) -> str | None:
    return None if value is None else str(value)

"""The analytics store: every event of the journal, in DuckDB, for SQL and market integrity.

It is fed off the hot path: a follower reads the LMDB journal (the source of truth), replays it
through an engine of its own to regenerate the events, and appends them in Arrow batches. The
journal position it has reached is written in the same DuckDB transaction as the rows, so after
a crash or a restart it continues from there: no event is missed and none is written twice.
Each event carries the time its batch was committed by the node.
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .commands import ConfigureMarkets
from .decimals import format_scaled
from .engine import Engine
from .events import Accepted, Cancelled, Rejected, Trade
from .store import Store

ANALYTICS_FILE = "analytics.duckdb"
GIL_SWITCH_S = 0.001
ROWS_PER_WRITE = 100_000
"""Events appended per DuckDB transaction while catching up: each commit costs a WAL write, so
fewer and larger transactions ingest faster (measured: 10,000 gave 165k events/s, 100,000 gave
over 220k); a batch's rows take some tens of MB while they wait."""

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

EVENT_COLUMNS = (
    "seq", "time_ns", "kind", "op", "market", "order_id", "owner", "side", "reason", "price",
    "qty", "remaining",
)  # fmt: skip
TRADE_COLUMNS = (
    "seq", "time_ns", "market", "price", "qty", "notional", "maker_id", "maker_owner",
    "taker_id", "taker_owner", "aggressor", "buyer", "seller",
)  # fmt: skip
INTEGER_COLUMNS = ("seq", "time_ns")
"""Everything else arrives as text: decimals exactly as the engine formats them."""


def _arrow_schema(names: tuple[str, ...]) -> pa.Schema:
    return pa.schema(
        [(name, pa.int64() if name in INTEGER_COLUMNS else pa.string()) for name in names]
    )


EVENT_SCHEMA = _arrow_schema(EVENT_COLUMNS)
TRADE_SCHEMA = _arrow_schema(TRADE_COLUMNS)


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

    def append(self, events: list[tuple], trades: list[tuple], position: int, seq: int) -> None:
        """Rows (in EVENT_COLUMNS / TRADE_COLUMNS order) and the position they bring the store
        to, in one transaction."""
        connection = self.connection
        connection.execute("BEGIN TRANSACTION")
        try:
            if events:
                connection.register("new_events", _arrow_table(EVENT_SCHEMA, events))
                connection.execute(
                    "INSERT INTO events SELECT seq, make_timestamp(time_ns // 1000), kind, op, "
                    "market, order_id, owner, side, reason, CAST(price AS DECIMAL(38, 12)), "
                    "CAST(qty AS DECIMAL(38, 12)), CAST(remaining AS DECIMAL(38, 12)) "
                    "FROM new_events"
                )
                connection.unregister("new_events")
            if trades:
                connection.register("new_trades", _arrow_table(TRADE_SCHEMA, trades))
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
        """Bring the analytics store up to the journal's last commit; the events appended.

        Replaying and building rows (Python) overlaps with DuckDB's inserts, which run in a
        writer thread and release the GIL; batches are written in order, each with the
        position it reaches, so a crash anywhere leaves a consistent store. The cyclic garbage
        collector is paused meanwhile: millions of short-lived row tuples hold no cycles, and
        its scans of them cost more than the rows themselves. And the interpreter hands the GIL
        over every millisecond instead of every five: DuckDB's scan of an Arrow table takes the
        GIL briefly, again and again, and at the default interval it mostly waits for this
        thread (measured: 190k-200k events/s at 5 ms, 220k-230k at 1 ms).
        """
        stored = self.analytics.position()
        writer = _BatchWriter(self.analytics)
        collecting = gc.isenabled()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        gc.disable()
        try:
            events: list[tuple] = []
            trades: list[tuple] = []
            for position, time_ns, out in self._replay(stored):
                if position > stored:
                    books = self.engine.books  # a markets command makes a new dict
                    for event in out:
                        events.append(_event_row(event, time_ns, books, trades))
                if len(events) >= ROWS_PER_WRITE:
                    writer.put(events, trades, position, self.engine.seq)
                    events, trades = [], []
            if self.replayed > stored or events:
                writer.put(events, trades, self.replayed, self.engine.seq)
        finally:
            written = writer.close()
            sys.setswitchinterval(switch_interval)
            if collecting:
                gc.enable()
        return written

    def _replay(self, stored: int) -> Iterator[tuple[int, int, list]]:
        """(journal position reached, commit time, events) for each run of commands not yet
        replayed, oldest first. A run lies within one commit, on one side of `stored`, and a
        markets command runs alone (it swaps the books that events are read against)."""
        for end, _, _, time_ns in self.store.commits(start=self.replayed):
            commands = [command for _, command in self.store.journal(self.replayed, end)]
            for run in _runs(commands, self.replayed, stored):
                out: list = []
                self.engine.process_batch(run, out)
                self.replayed += len(run)
                yield self.replayed, time_ns, out


def _runs(commands: list, first: int, stored: int) -> Iterator[list]:
    """`commands` (numbered from `first`) cut before `stored` and around markets commands."""
    start = 0
    for offset, command in enumerate(commands):
        if type(command) is ConfigureMarkets or first + offset == stored:
            if offset > start:
                yield commands[start:offset]
            start = offset
        if type(command) is ConfigureMarkets:
            yield commands[offset : offset + 1]
            start = offset + 1
    if start < len(commands):
        yield commands[start:]


class _BatchWriter:
    """Appends row batches to the analytics store from a thread of its own, in order; an error
    there stops the writing and is raised to the follower at its next batch or at close."""

    def __init__(self, analytics: AnalyticsStore) -> None:
        self.analytics = analytics
        self.batches: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.written = 0
        self.thread = threading.Thread(target=self._run, name="analytics-writer", daemon=True)
        self.thread.start()

    def put(self, events: list[tuple], trades: list[tuple], position: int, seq: int) -> None:
        self._raise()
        self.batches.put((events, trades, position, seq))

    def close(self) -> int:
        """Wait for every batch put; the events written."""
        self.batches.put(None)
        self.thread.join()
        self._raise()
        return self.written

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (batch := self.batches.get()) is not None:
            if self.error is not None:
                continue  # drain: the follower learns of the error at its next put
            events, trades, position, seq = batch
            try:
                self.analytics.append(events, trades, position, seq)
                self.written += len(events)
            except BaseException as error:  # handed to the follower's thread
                self.error = error


def _arrow_table(schema: pa.Schema, rows: list[tuple]) -> pa.Table:
    """Row tuples as an Arrow table of `schema`: Arrow reads the tuples as structs in C++, twice
    as fast as handing it one Python list per column."""
    return pa.Table.from_struct_array(pa.array(rows, type=pa.struct(list(schema))))


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

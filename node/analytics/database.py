"""The analytics store: every event of the journal, in DuckDB, for SQL and market integrity.

It is fed off the hot path: a follower reads the LMDB journal (the source of truth), replays it
through an engine of its own to regenerate the events, and appends them in batches, as
newline-delimited JSON that DuckDB reads itself (EVENTS_FROM_JSON). The journal position it has
reached is written in the same DuckDB transaction as the rows, so after a crash or a restart it
continues from there: no event is missed and none is written twice. Each event carries the time
its batch was committed by the node.
"""

from __future__ import annotations

import gc
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import msgspec

from ..core.commands import ConfigureMarkets
from ..core.decimals import format_scaled
from ..core.engine import Engine
from ..core.events import Trade
from ..store.lmdb_store import Store

ANALYTICS_FILE = "analytics.duckdb"
_encode_lines = msgspec.json.Encoder().encode_lines
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None
"""Where a batch's JSON waits for DuckDB to read it: memory where the OS offers it (Linux's
tmpfs), so it never competes with the node's synced writes for the disk; else the temp dir."""
SCRATCH_PREFIX = "mnode-ingest-"


def remove_stale_scratch() -> None:
    """Batch folders left by a follower that was killed mid-write (their process is gone)."""
    for folder in Path(SCRATCH or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = folder.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
ROWS_PER_WRITE = 100_000
"""Events appended per DuckDB transaction while catching up. Each commit costs a WAL write, so
larger transactions ingest a backlog faster (measured: 238k-241k events/s at 100,000, 260k-275k
at 200,000), but beside a loaded node the larger ones let the lag run up (a 3.3 s peak at
200,000 against 0.8 s at 100,000, bench/analytics_keepup.py). A batch's JSON takes about 17 MB
while it waits."""

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

TRADE_FIELDS = (
    "{seq: 'BIGINT', time_ns: 'BIGINT', market: 'VARCHAR', price: 'VARCHAR', qty: 'VARCHAR', "
    "notional: 'VARCHAR', maker_id: 'VARCHAR', maker_owner: 'VARCHAR', taker_id: 'VARCHAR', "
    "taker_owner: 'VARCHAR', aggressor: 'VARCHAR', buyer: 'VARCHAR', seller: 'VARCHAR'}"
)
"""A `trades` row as JSON (`_trade_row`): decimals as exact text, made here in Python."""
TRADES_FROM_JSON = """
INSERT INTO trades
SELECT seq, make_timestamp(time_ns // 1000), market, CAST(price AS DECIMAL(38, 12)),
       CAST(qty AS DECIMAL(38, 12)), CAST(notional AS DECIMAL(38, 12)), maker_id, maker_owner,
       taker_id, taker_owner, aggressor, buyer, seller
FROM read_json('{path}', format = 'newline_delimited', columns = {fields})
"""
EVENT_FIELDS = (
    "{event: 'VARCHAR', seq: 'BIGINT', op: 'VARCHAR', market: 'VARCHAR', id: 'VARCHAR', "
    "owner: 'VARCHAR', side: 'VARCHAR', reason: 'VARCHAR', price: 'HUGEINT', qty: 'HUGEINT', "
    "remaining: 'HUGEINT', aggressor: 'VARCHAR'}"
)
"""What `events` rows are made of in each event's JSON (engine units; other fields ignored)."""
EVENTS_FROM_JSON = """
INSERT INTO events
SELECT e.seq, make_timestamp(c.time_ns // 1000), e.event, e.op, e.market,
       CASE WHEN e.event = 'trade' THEN NULL ELSE e.id END, e.owner,
       CASE WHEN e.event = 'trade' THEN e.aggressor ELSE e.side END, e.reason,
       CAST(CAST(e.price AS DECIMAL(38, 0)) * m.tick AS DECIMAL(38, 12)),
       CAST(CAST(e.qty AS DECIMAL(38, 0)) * m.lot AS DECIMAL(38, 12)),
       CAST(CAST(e.remaining AS DECIMAL(38, 0)) * m.lot AS DECIMAL(38, 12))
FROM read_json('{path}', format = 'newline_delimited', columns = {fields}) e
JOIN (VALUES {commits}) c(first_seq, last_seq, time_ns)
  ON e.seq BETWEEN c.first_seq AND c.last_seq
LEFT JOIN (SELECT symbol, CAST(tick AS DECIMAL(38, 12)) AS tick,
                  CAST(lot AS DECIMAL(38, 12)) AS lot
           FROM (VALUES {markets}) AS m(symbol, tick, lot)) m
  ON m.symbol = e.market
"""
"""Events arrive as the engine's own JSON (msgspec writes it in C) and DuckDB reads, converts
and inserts them without Python: ticks and lots become decimals by the market's units, each
event gets its commit's time by seq. The commits and markets are literal rows in the statement:
a registered Arrow table would be scanned through Python, and a scan that needs the GIL waits
for the thread replaying the journal."""


class Batch:
    """Events of one or more commits, ready for one transaction."""

    def __init__(self, books: dict) -> None:
        self.books = books
        """The markets the events are read against (a markets command ends a batch)."""
        self.chunks: list[bytes] = []
        self.commits: list[tuple[int, int, int]] = []
        """(seqs of a commit run's first and last events, the commit's time in ns)"""
        self.trades: list[dict] = []
        self.events = 0
        self.position = 0
        self.seq = 0

    def add(self, out: list, time_ns: int) -> None:
        self.chunks.append(_encode_lines(out))
        self.commits.append((out[0].seq, out[-1].seq, time_ns))
        self.events += len(out)
        books = self.books
        for event in out:
            if type(event) is Trade:
                self.trades.append(_trade_row(event, time_ns, books))

    def sql_values(self) -> dict[str, str]:
        """The commits and the markets' units as SQL VALUES rows (EVENTS_FROM_JSON)."""
        specs = [book.market.spec for book in self.books.values()] or []
        markets = ", ".join(
            f"({_quote(spec.symbol)}, {_quote(spec.tick_size)}, {_quote(spec.lot_size)})"
            for spec in specs
        )
        commits = ", ".join(f"({first}, {last}, {time}" + ")" for first, last, time in self.commits)
        return {"commits": commits, "markets": markets or "(NULL, NULL, NULL)"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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

    def append(self, batch: Batch) -> None:
        """A batch's events and trades, and the journal position it brings the store to, in
        one transaction."""
        connection = self.connection
        folder = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=SCRATCH)
        try:
            events_file = Path(folder) / "events.ndjson"
            events_file.write_bytes(b"".join(batch.chunks))
            connection.execute("BEGIN TRANSACTION")
            try:
                if batch.events:
                    path = str(events_file).replace("'", "''")
                    statement = EVENTS_FROM_JSON.format(
                        path=path, fields=EVENT_FIELDS, **batch.sql_values()
                    )
                    connection.execute(statement)
                if batch.trades:
                    trades_file = Path(folder) / "trades.ndjson"
                    trades_file.write_bytes(_encode_lines(batch.trades))
                    path = str(trades_file).replace("'", "''")
                    connection.execute(TRADES_FROM_JSON.format(path=path, fields=TRADE_FIELDS))
                connection.execute(
                    "UPDATE ingest SET journal_position = ?, seq = ?", [batch.position, batch.seq]
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)

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
        remove_stale_scratch()  # once per follower: a sync runs several times a second

    def sync(self, most_commands: int | None = None) -> int:
        """Bring the analytics store up to the journal's last commit, or `most_commands` (at a
        commit boundary) nearer to it; the events appended.

        This thread replays the journal and hands each batch's events over as the engine's own
        JSON (msgspec writes it in C); a writer thread has DuckDB read, convert and insert them
        (EVENTS_FROM_JSON), which needs no GIL, so the two overlap. Trades, a tenth of the
        events, are made rows here. Batches are written in order, each with the position it
        reaches, so a crash anywhere leaves a consistent store. The cyclic garbage collector is
        paused meanwhile: the short-lived event objects hold no cycles.
        """
        stored = self.analytics.position()
        writer = _BatchWriter(self.analytics)
        collecting = gc.isenabled()
        gc.disable()
        try:
            batch = Batch(self.engine.books)
            start = self.replayed
            for position, time_ns, out in self._replay(stored):
                books = self.engine.books  # a markets command makes a new dict
                if books is not batch.books:  # events of a batch share one set of units
                    if batch.events:
                        writer.put(self._close(batch, position - 1))
                    batch = Batch(books)
                if position > stored and out:
                    batch.add(out, time_ns)
                if batch.events >= ROWS_PER_WRITE:
                    writer.put(self._close(batch, position))
                    batch = Batch(books)
                if most_commands is not None and position - start >= most_commands:
                    break
            if self.replayed > stored or batch.events:
                writer.put(self._close(batch, self.replayed))
        finally:
            written = writer.close()
            if collecting:
                gc.enable()
        return written

    def _close(self, batch: Batch, position: int) -> Batch:
        batch.position = position
        batch.seq = self.engine.seq
        return batch

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
    """Appends batches to the analytics store from a thread of its own, in order; an error
    there stops the writing and is raised to the follower at its next batch or at close."""

    def __init__(self, analytics: AnalyticsStore) -> None:
        self.analytics = analytics
        self.batches: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.written = 0
        self.thread = threading.Thread(target=self._run, name="analytics-writer", daemon=True)
        self.thread.start()

    def put(self, batch: Batch) -> None:
        self._raise()
        self.batches.put(batch)

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
            try:
                self.analytics.append(batch)
                self.written += batch.events
            except BaseException as error:  # handed to the follower's thread
                self.error = error


def _trade_row(event: Trade, time_ns: int, books: dict) -> dict:
    """A `trades` row (TRADE_FIELDS): decimal text, buyer and seller, the exact notional."""
    market = books[event.market].market
    tick, lot = market.tick, market.lot
    taker_buys = event.aggressor == "buy"
    return {
        "seq": event.seq,
        "time_ns": time_ns,
        "market": event.market,
        "price": tick.text_of(event.price),
        "qty": lot.text_of(event.qty),
        "notional": format_scaled(
            event.price * tick.mantissa * event.qty * lot.mantissa, tick.exponent + lot.exponent
        ),
        "maker_id": str(event.maker_id),
        "maker_owner": event.maker_owner,
        "taker_id": str(event.taker_id),
        "taker_owner": event.taker_owner,
        "aggressor": event.aggressor,
        "buyer": event.taker_owner if taker_buys else event.maker_owner,
        "seller": event.maker_owner if taker_buys else event.taker_owner,
    }

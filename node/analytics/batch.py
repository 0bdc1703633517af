"""A batch of journaled events on its way into the analytics store, and the SQL that reads it.

Events arrive as the engine's own JSON (msgspec writes it in C) in a scratch file, and DuckDB
reads, converts and inserts them without Python (EVENTS_FROM_JSON), so the thread replaying the
journal and the one writing overlap. Trades, a tenth of the events, are made rows here in Python
(their buyer, seller and exact notional). The scratch files live in memory where the OS offers it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import msgspec

from ..core.decimals import format_scaled
from ..core.events import Trade
from ..home.processes import process_alive
from .settlement import CHAIN_TRADE_FIELDS, CHAIN_TRADES_FROM_JSON

_encode_lines = msgspec.json.Encoder().encode_lines
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None
"""Where a batch's JSON waits for DuckDB to read it: memory where the OS offers it (Linux's
tmpfs), so it never competes with the node's synced writes for the disk; else the temp dir."""
SCRATCH_PREFIX = "mnode-ingest-"


def process_scratch_folder() -> Path:
    """This process's own scratch folder (mode 0700), holding its batches' folders: the one
    folder of the scratch area its DuckDB may read, so user SQL cannot read what others keep
    there."""
    folder = Path(SCRATCH or tempfile.gettempdir()) / f"{SCRATCH_PREFIX}{os.getpid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def remove_stale_scratch() -> None:
    """Batch folders left by a follower that was killed mid-write (their process is gone)."""
    for folder in Path(SCRATCH or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = folder.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


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
FROM read_json({path}, format = 'newline_delimited', columns = {fields})
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
FROM read_json({path}, format = 'newline_delimited', columns = {fields}) e
JOIN (VALUES {commits}) c(first_seq, last_seq, time_ns)
  ON e.seq BETWEEN c.first_seq AND c.last_seq
LEFT JOIN (SELECT symbol, CAST(tick AS DECIMAL(38, 12)) AS tick,
                  CAST(lot AS DECIMAL(38, 12)) AS lot
           FROM (VALUES {markets}) AS m(symbol, tick, lot)) m
  ON m.symbol = e.market
"""
"""Ticks and lots become decimals by the market's units, each event gets its commit's time by
seq. The commits and markets are literal rows in the statement: a registered Arrow table would
be scanned through Python, and a scan that needs the GIL waits for the thread replaying the
journal."""


class Batch:
    """Events of one or more commits, ready for one transaction."""

    def __init__(self, books: dict) -> None:
        self.books = books
        """The markets the events are read against (a markets command ends a batch)."""
        self.chunks: list[bytes] = []
        self.commits: list[tuple[int, int, int]] = []
        """(seqs of a commit run's first and last events, the commit's time in ns)"""
        self.trades: list[dict] = []
        self.chain_trades: list[dict] = []
        """Trades between two signed orders (settlement.py), as `chain_trades` rows."""
        self.events = 0
        self.position = 0
        """The journal position the store reaches with this batch."""
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
        specs = [book.market.spec for book in self.books.values()]
        markets = ", ".join(
            f"({_quote(spec.symbol)}, {_quote(spec.tick_size)}, {_quote(spec.lot_size)})"
            for spec in specs
        )
        commits = ", ".join(f"({first}, {last}, {time})" for first, last, time in self.commits)
        return {"commits": commits, "markets": markets or "(NULL, NULL, NULL)"}

    def insert(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Insert the events and trades, in the caller's transaction, through scratch files of
        this process (a killed one's are removed by `remove_stale_scratch`)."""
        folder = tempfile.mkdtemp(dir=process_scratch_folder())
        try:
            if self.events:
                _load(connection, folder, "events", b"".join(self.chunks), EVENTS_FROM_JSON,
                      fields=EVENT_FIELDS, **self.sql_values())  # fmt: skip
            if self.trades:
                _load(connection, folder, "trades", _encode_lines(self.trades), TRADES_FROM_JSON,
                      fields=TRADE_FIELDS)  # fmt: skip
            if self.chain_trades:
                _load(connection, folder, "chain_trades", _encode_lines(self.chain_trades),
                      CHAIN_TRADES_FROM_JSON, fields=CHAIN_TRADE_FIELDS)  # fmt: skip
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _load(
    connection: duckdb.DuckDBPyConnection, folder: str, name: str, lines: bytes, statement: str,
    **values: str,
) -> None:
    """`lines` (newline-delimited JSON) into a scratch file of `folder`, then `statement` (its
    `{path}` that file) run on it."""
    scratch = Path(folder) / f"{name}.ndjson"
    scratch.write_bytes(lines)
    connection.execute(statement.format(path=_quote(str(scratch)), **values))


def _quote(text: str) -> str:
    """`text` as a single-quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


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

"""The relayer's progress with each trade, copied into the analytics store.

The relayer keeps each trade's settlement state (pending, submitted in a transaction, confirmed
at a block, failed with a reason) in its own SQLite file in the home, settlement/state.sqlite
(node/chain/settlement_store.py; the node's relayer process, or the demo's chain child, writes
it), and never journals it. The analytics process copies it from there into
`settlement_progress` every `COPY_EVERY_S`, so that `settlement_states` can say where every
trade to settle stands, for SQL.

The file is read read-only (SQLite's WAL lets it be read while the relayer writes) and
incrementally: the rows after the last seq copied, and the rows the copy holds as not final
(pending or submitted) read again (those that moved on written), at most `ROWS_PER_COPY` of each
a round, so a large file is caught up with over several rounds and requests are answered
between them. A file that is missing, locked, or still being created (no `trades` table yet) is
tried again at the next round, with what happened recorded in `settlement_progress_source`; the
rows copied before stay.
A different file (another inode, or one whose last trade is before the last one copied: a
relayer started afresh) is copied again from the start.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

STATE_FILE = ("settlement", "state.sqlite")
"""Where the relayer keeps its state in the home (node/chain/settlement_store.py `state_path`)."""
OPEN_STATES = ("pending", "submitted")
"""States a trade leaves later (a confirmed or failed trade is final)."""
COPIED = "copied"
"""The outcome of a round that read the file."""
COPY_EVERY_S = 2.0
ROWS_PER_COPY = 10_000
"""New rows, and open rows read again, at most per round. Over a file of 200,000 pending trades
(2026-12-02, the 2-core VM at load average 11-13, one DuckDB thread) the 20 rounds catching up
took 0.18 s each (median; at most 0.27 s), and a round reading 10,000 open ones again 0.07 s:
short pauses in answering requests. Only the open rows that moved on are written."""
QUIET_S = 1.0
"""A file last written longer ago than this is not read again until its (mtime, size) or its
WAL's change: a write after that reading gets a later mtime, however coarse the clock of the
file system (a file written just before might be written again within the same tick)."""
BUSY_WAIT_S = 0.2
"""How long a read waits for a lock the relayer holds before trying at the next round (in WAL
mode a reader is blocked only while the file is being recovered or checkpointed whole)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS settlement_progress (
    seq BIGINT, state VARCHAR, batch BIGINT, tx_hash VARCHAR, block BIGINT, reason VARCHAR,
    settled_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS settlement_progress_source (
    path VARCHAR, outcome VARCHAR, checked_at TIMESTAMPTZ, copied_at TIMESTAMPTZ,
    file_id BIGINT
);
"""
COLUMNS = "seq, state, batch, tx_hash, block, reason, settled_at"
KEPT = "seq, state, batch, tx_hash, block, reason"
"""What tells whether a trade moved on (`settled_at` is set as it becomes final)."""
INSERT_ROWS = """
INSERT INTO settlement_progress
SELECT seq, state, batch, tx_hash, block, reason, to_timestamp(settled_at)
FROM (SELECT unnest(?::BIGINT[]) AS seq, unnest(?::VARCHAR[]) AS state,
             unnest(?::BIGINT[]) AS batch, unnest(?::VARCHAR[]) AS tx_hash,
             unnest(?::BIGINT[]) AS block, unnest(?::VARCHAR[]) AS reason,
             unnest(?::DOUBLE[]) AS settled_at)
"""


@dataclass(frozen=True)
class Round:
    """What one round read from the relayer's file."""

    outcome: str
    """`copied`, or why nothing was read: `absent`, `unreadable: ...`."""
    changed: list[tuple] = field(default_factory=list)
    """Rows the copy holds as open whose state moved on, in `COLUMNS` order."""
    new: list[tuple] = field(default_factory=list)
    """Rows after the last one copied."""
    again: bool = False
    """The file is not the one copied before: the copy starts over with `new`."""
    complete: bool = False
    """Everything there was to read was read (no more than `ROWS_PER_COPY` of either kind)."""


class RelayerProgress:
    """Copies the relayer's trades' states from its file into `settlement_progress`."""

    def __init__(self, home_path: Path, connection: duckdb.DuckDBPyConnection) -> None:
        self.path = home_path.joinpath(*STATE_FILE)
        self.connection = connection
        self.due = 0.0
        """When the next round is due (monotonic clock)."""
        self.read_version: tuple | None = None
        """The file's and its WAL's (inode, mtime, size) when a round read it all, unwritten
        for `QUIET_S` before: while they stay so, there is nothing new to read."""
        self.reopened_from = 0
        """Open rows are read again in turns from after this seq, so that more than
        `ROWS_PER_COPY` of them all get their turn."""
        source = connection.execute("SELECT file_id FROM settlement_progress_source").fetchone()
        self.file_id: int | None = source[0] if source else None
        """The inode of the file copied (None: none copied yet)."""

    def copy_when_due(self) -> None:
        """A round, if `COPY_EVERY_S` has passed since the last one."""
        now = time.monotonic()
        if now >= self.due:
            self.due = now + COPY_EVERY_S
            self.copy()

    def copy(self) -> str:
        """One round: read what changed and write it, with how the reading went, in one
        transaction; the outcome."""
        found = self.read()
        connection = self.connection
        connection.execute("BEGIN TRANSACTION")
        try:
            if found.again:
                connection.execute("DELETE FROM settlement_progress")
            if found.changed:
                connection.execute(
                    "DELETE FROM settlement_progress WHERE seq IN (SELECT unnest(?::BIGINT[]))",
                    [[row[0] for row in found.changed]],
                )
            rows = found.changed + found.new
            if rows:
                columns = zip(*rows, strict=True)
                connection.execute(INSERT_ROWS, [list(column) for column in columns])
            self._record(found)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return found.outcome

    def read(self) -> Round:
        """The file's rows the copy lacks or holds as open, or why they cannot be had now."""
        try:
            version = (_version(self.path), _version(self.path.with_name(self.path.name + "-wal")))
        except FileNotFoundError:
            return Round("absent")
        except OSError as error:
            return Round(f"unreadable: {error.strerror}")
        if version == self.read_version:
            return Round(COPIED, complete=True)
        quiet = time.time_ns() - max(version[0][1], version[1][1]) > QUIET_S * 1e9
        file_id = version[0][0]
        try:
            database = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True,
                                       timeout=BUSY_WAIT_S)  # fmt: skip
        except sqlite3.Error as error:
            return Round(f"unreadable: {error}")
        try:
            with database:  # one read transaction: the rows of one moment of the file
                found = self._changes(database, file_id)
        except sqlite3.Error as error:  # locked, being created, not a database
            return Round(f"unreadable: {error}")
        finally:
            database.close()
        self.read_version = version if found.complete and quiet else None
        return found

    def _changes(self, database: sqlite3.Connection, file_id: int) -> Round:
        database.execute("BEGIN")
        (last_in_file,) = database.execute("SELECT coalesce(max(seq), -1) FROM trades").fetchone()
        (after,) = self.connection.execute(
            "SELECT coalesce(max(seq), -1) FROM settlement_progress"
        ).fetchone()
        again = file_id != self.file_id or last_in_file < after
        self.file_id = file_id
        changed: list[tuple] = []
        if again:
            after, self.reopened_from = -1, 0
        else:
            changed = self._changed(database)
        new = database.execute(
            f"SELECT {COLUMNS} FROM trades WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, ROWS_PER_COPY),
        ).fetchall()
        complete = len(new) < ROWS_PER_COPY and self.reopened_from == 0
        return Round(COPIED, changed, new, again, complete)

    def _changed(self, database: sqlite3.Connection) -> list[tuple]:
        """The file's rows of the next `ROWS_PER_COPY` trades the copy holds as open, those
        whose state, batch, transaction, block or reason moved on."""
        held = {row[0]: row for row in self.connection.execute(
            f"SELECT {KEPT} FROM settlement_progress WHERE list_contains(?, state) AND seq > ?"
            " ORDER BY seq LIMIT ?", [list(OPEN_STATES), self.reopened_from, ROWS_PER_COPY],
        ).fetchall()}  # fmt: skip
        self.reopened_from = max(held) if len(held) == ROWS_PER_COPY else 0
        if not held:
            return []
        rows = database.execute(
            f"SELECT {COLUMNS} FROM trades WHERE seq IN (SELECT value FROM json_each(?))",
            (json.dumps(list(held)),),
        ).fetchall()
        return [row for row in rows if row[: len(held[row[0]])] != held[row[0]]]

    def _record(self, found: Round) -> None:
        """How this round went, in the one row of `settlement_progress_source` (`copied_at`:
        the last round that read the file)."""
        connection = self.connection
        if connection.execute("SELECT count(*) FROM settlement_progress_source").fetchone()[0] == 0:
            connection.execute("INSERT INTO settlement_progress_source (path) VALUES (?)",
                               [str(self.path)])  # fmt: skip
        connection.execute(
            "UPDATE settlement_progress_source SET path = ?, outcome = ?, checked_at = now(),"
            " copied_at = CASE WHEN ? THEN now() ELSE copied_at END, file_id = ?",
            [str(self.path), found.outcome, found.outcome == COPIED, self.file_id],
        )


def _version(path: Path) -> tuple[int, int, int]:
    """(inode, mtime, size) of the file at `path`; a WAL not there is (0, 0, 0)."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        if path.name.endswith("-wal"):
            return (0, 0, 0)
        raise
    return (found.st_ino, found.st_mtime_ns, found.st_size)

"""The relayer's own state, in a SQLite file under the home's `settlement/` folder: how far it
has followed the journal, its next transaction nonce, each trade's settlement state and each
batch with every transaction sent for it.

Everything that must hold together changes in one SQLite transaction: the journal position
with the trades it produced; a batch, its signed transaction, its trades marked submitted and
the nonce moved on, all *before* the transaction is broadcast. A relayer killed at any point
restarts from a consistent file: a batch recorded but never broadcast is simply broadcast
again (the same signed bytes, the same nonce), so no trade is sent twice or forgotten.

Every trade that fails gets a notice for the node in the transaction that fails it; the notice
stays unacknowledged until the node says it acted on it (the relayer sends it again meanwhile,
after a restart of either side). So does each minimum nonce an owner raised on the contract,
recorded in one transaction with the block its logs are read from next (`min_nonce_block`).

The CLI reads it with `readonly=True` while the relayer writes (WAL); the node never opens
it: the relayer sends it its `RelayerStatus` (relayer_service.summary) every second.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

SETTLEMENT_FOLDER = "settlement"
STATE_FILE = "state.sqlite"
NOTICES_SOCKET = "relayer.sock"
"""The node's ipc socket in the home where its relayer sends failed trades."""

PENDING, SUBMITTED, CONFIRMED, FAILED = "pending", "submitted", "confirmed", "failed"
"""A trade's states: waiting for a batch; in a batch sent with `tx_hash`; final at `block`
after the configured confirmations; refused with `reason` (the contract's skip reason)."""
SETTLED_BEFORE = "already_settled"
"""The skip reason of a trade an earlier transaction of ours settled (a batch sent again after a
reorganisation or a restart, whose first transaction did land): the trade is confirmed."""
MINED = "mined"
"""A batch in a block, not yet under enough confirmations (its trades stay `submitted`)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trades (
    seq INTEGER PRIMARY KEY, market TEXT NOT NULL, buyer TEXT NOT NULL, seller TEXT NOT NULL,
    price INTEGER NOT NULL, qty INTEGER NOT NULL, entry TEXT NOT NULL,
    traded_at REAL NOT NULL, deadline REAL NOT NULL, state TEXT NOT NULL,
    batch INTEGER, tx_hash TEXT, block INTEGER, reason TEXT, settled_at REAL,
    buyer_peer TEXT, seller_peer TEXT
);
CREATE INDEX IF NOT EXISTS trades_by_state ON trades (state, seq);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY, nonce INTEGER NOT NULL UNIQUE, state TEXT NOT NULL,
    tx_hash TEXT NOT NULL, trades INTEGER NOT NULL, created_at REAL NOT NULL,
    block INTEGER, block_hash TEXT, gas_used INTEGER, gas_price INTEGER, reason TEXT,
    base_fee INTEGER
);
CREATE TABLE IF NOT EXISTS transactions (
    tx_hash TEXT PRIMARY KEY, batch INTEGER NOT NULL, raw TEXT NOT NULL,
    max_fee INTEGER NOT NULL, tip INTEGER NOT NULL, sent_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    seq INTEGER PRIMARY KEY, at_fault TEXT, resolved INTEGER NOT NULL DEFAULT 0,
    acknowledged_at REAL
);
CREATE INDEX IF NOT EXISTS notices_open ON notices (acknowledged_at, seq);
CREATE TABLE IF NOT EXISTS min_nonces (owner TEXT NOT NULL, min_nonce TEXT NOT NULL,
    block INTEGER NOT NULL, acknowledged_at REAL, PRIMARY KEY (owner, min_nonce));
"""
_ADDED_COLUMNS = {
    "trades": ("buyer_peer TEXT", "seller_peer TEXT"),
    "batches": ("base_fee INTEGER",),
}
"""Columns added since the first schema: a state file made before gets them when opened."""


@dataclass(frozen=True, slots=True)
class PendingTrade:
    """A trade the journal produced, with the contract's batch entry for it (JSON-ready)."""

    seq: int
    market: str
    buyer: str
    seller: str
    price: int
    qty: int
    entry: list[Any]
    traded_at: float
    deadline: float
    buyer_peer: str | None = None
    seller_peer: str | None = None
    """The peers that placed the buy and the sell order (the trade event names them)."""


@dataclass(frozen=True, slots=True)
class Sent:
    """One signed transaction of a batch (the first, or a replacement at the same nonce)."""

    tx_hash: str
    raw: str
    max_fee: int
    tip: int
    sent_at: float


class RelayerStatus(msgspec.Struct, tag="status", tag_field="kind"):
    """relayer -> node on the notices socket, every second: `relayer_service.summary` of this
    store and the chain's head, so the node shows them without opening the file."""

    summary: dict[str, Any]


def state_path(home_path: Path) -> Path:
    return home_path / SETTLEMENT_FOLDER / STATE_FILE


def notices_endpoint(home_path: Path) -> str:
    """Where the node listens for its relayer's notices (beside the analytics socket)."""
    return f"ipc://{home_path.resolve() / NOTICES_SOCKET}"


class SettlementStore:
    """The relayer's SQLite file (the relayer alone writes it)."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            if not path.exists():
                raise FileNotFoundError(f"{path}: no settlement state yet (the relayer never ran)")
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=10.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            self._add_columns()
        self.db.row_factory = sqlite3.Row

    def _add_columns(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            present = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column.split()[0] not in present:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")

    def close(self) -> None:
        self.db.close()

    # -- meta -------------------------------------------------------------------------------

    def meta(self, key: str, default: int | None = None) -> int | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def _set_meta(self, key: str, value: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def set_first_nonce(self, nonce: int) -> None:
        """The account's mined count at the relayer's first start; from then on its own."""
        with self.db:
            self._set_meta("next_nonce", nonce)

    def set_next_nonce_at_least(self, nonce: int) -> None:
        """Move the next nonce past nonces used outside the relayer (never backwards)."""
        with self.db:
            self._set_meta("next_nonce", max(nonce, self.meta("next_nonce", 0)))  # type: ignore[type-var]

    @property
    def position(self) -> int:
        """Journal commands already turned into trades here."""
        return self.meta("position", 0)  # type: ignore[return-value]

    # -- following the journal -------------------------------------------------------------

    def add_trades(self, trades: list[PendingTrade], position: int) -> None:
        """The trades of the journal up to `position`, and the position, in one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT INTO trades (seq, market, buyer, seller, price, qty, entry, traded_at,"
                " deadline, state, buyer_peer, seller_peer)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(t.seq, t.market, t.buyer, t.seller, t.price, t.qty, json.dumps(t.entry),
                  t.traded_at, t.deadline, PENDING, t.buyer_peer, t.seller_peer)
                 for t in trades],
            )  # fmt: skip
            self._set_meta("position", position)

    def pending(self, limit: int) -> list[sqlite3.Row]:
        """The oldest pending trades (journal order), at most `limit`."""
        return self.db.execute(
            "SELECT * FROM trades WHERE state = ? ORDER BY seq LIMIT ?", (PENDING, limit)
        ).fetchall()

    def earliest_deadline(self) -> float | None:
        row = self.db.execute(
            "SELECT min(deadline) FROM trades WHERE state = ?", (PENDING,)
        ).fetchone()
        return row[0]

    # -- batches -----------------------------------------------------------------------------

    def add_batch(self, seqs: list[int], nonce: int, sent: Sent) -> int:
        """A batch at `nonce` with its first transaction, its trades submitted, and the next
        nonce after it: one transaction, committed before anything is broadcast."""
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO batches (nonce, state, tx_hash, trades, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (nonce, SUBMITTED, sent.tx_hash, len(seqs), time.time()),
            )
            batch = cursor.lastrowid
            self._add_sent(batch, sent)  # type: ignore[arg-type]
            self.db.executemany(
                "UPDATE trades SET state = ?, batch = ?, tx_hash = ? WHERE seq = ?",
                [(SUBMITTED, batch, sent.tx_hash, seq) for seq in seqs],
            )
            self._set_meta("next_nonce", nonce + 1)
        return batch  # type: ignore[return-value]

    def replace(self, batch: int, sent: Sent) -> None:
        """A replacement transaction of `batch` (same nonce, higher fees) becomes its current."""
        with self.db:
            self._add_sent(batch, sent)
            self.db.execute("UPDATE batches SET tx_hash = ? WHERE id = ?", (sent.tx_hash, batch))
            self.db.execute(
                "UPDATE trades SET tx_hash = ? WHERE batch = ? AND state = ?",
                (sent.tx_hash, batch, SUBMITTED),
            )

    def _add_sent(self, batch: int, sent: Sent) -> None:
        self.db.execute(
            "INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?)",
            (sent.tx_hash, batch, sent.raw, sent.max_fee, sent.tip, sent.sent_at),
        )

    def open_batches(self) -> list[sqlite3.Row]:
        """Batches not final yet (submitted or mined), oldest nonce first."""
        return self.db.execute(
            "SELECT * FROM batches WHERE state IN (?, ?) ORDER BY nonce", (SUBMITTED, MINED)
        ).fetchall()

    def sent(self, batch: int) -> list[Sent]:
        """Every transaction sent for `batch`, the latest first."""
        rows = self.db.execute(
            "SELECT tx_hash, raw, max_fee, tip, sent_at FROM transactions WHERE batch = ?"
            " ORDER BY sent_at DESC, rowid DESC",
            (batch,),
        ).fetchall()
        return [Sent(*row) for row in rows]

    def mark_mined(self, batch: int, tx_hash: str, block: int, block_hash: str,
                   gas_used: int, gas_price: int, base_fee: int | None) -> None:  # fmt: skip
        """In `block` (whose base fee was `base_fee`), at the effective `gas_price`."""
        with self.db:
            self.db.execute(
                "UPDATE batches SET state = ?, tx_hash = ?, block = ?, block_hash = ?,"
                " gas_used = ?, gas_price = ?, base_fee = ? WHERE id = ?",
                (MINED, tx_hash, block, block_hash, gas_used, gas_price, base_fee, batch),
            )
            self.db.execute("UPDATE trades SET tx_hash = ? WHERE batch = ?", (tx_hash, batch))

    def mark_unmined(self, batch: int) -> None:
        """The batch's block left the chain (a reorganisation): submitted again."""
        with self.db:
            self.db.execute(
                "UPDATE batches SET state = ?, block = NULL, block_hash = NULL WHERE id = ?",
                (SUBMITTED, batch),
            )

    def finish(self, batch: int, settled: list[int], skipped: dict[int, str]) -> None:
        """The batch is final: `settled` trades confirmed at its block, and so are `skipped`
        ones an earlier transaction settled (`SETTLED_BEFORE`, kept as their reason); other
        skipped ones failed with their reasons, each with a notice for the node."""
        now = time.time()
        before = [seq for seq, why in skipped.items() if why == SETTLED_BEFORE]
        with self.db:
            row = self.db.execute("SELECT block FROM batches WHERE id = ?", (batch,)).fetchone()
            self.db.execute(
                "UPDATE batches SET state = ?, reason = NULL WHERE id = ?", (CONFIRMED, batch)
            )
            self.db.executemany(
                "UPDATE trades SET state = ?, block = ?, reason = ?, settled_at = ? WHERE seq = ?",
                [(CONFIRMED, row[0], None, now, seq) for seq in settled]
                + [(CONFIRMED, row[0], SETTLED_BEFORE, now, seq) for seq in before]
                + [(FAILED, row[0], why, now, seq) for seq, why in skipped.items()
                   if why != SETTLED_BEFORE],
            )  # fmt: skip
            self.db.execute(
                "INSERT OR IGNORE INTO notices (seq) SELECT seq FROM trades"
                " WHERE batch = ? AND state = ?",
                (batch, FAILED),
            )

    def requeue(self, batch: int, reason: str) -> None:
        """A batch whose trades must go again (its nonce was taken by another transaction of
        the key, or its transaction reverted as a whole): failed itself, its trades pending
        again for a new batch (the contract's replay bitmap skips any of them that did settle,
        and they end confirmed, `SETTLED_BEFORE`)."""
        with self.db:
            self.db.execute(
                "UPDATE batches SET state = ?, reason = ? WHERE id = ?", (FAILED, reason, batch)
            )
            self.db.execute(
                "UPDATE trades SET state = ?, batch = NULL, tx_hash = NULL"
                " WHERE batch = ? AND state = ?",
                (PENDING, batch, SUBMITTED),
            )

    def fail_pending(self, seqs: list[int], reason: str) -> None:
        """Trades that can never be sent (the chain refuses their batch before it is signed)."""
        with self.db:
            self.db.executemany(
                "UPDATE trades SET state = ?, reason = ?, settled_at = ? WHERE seq = ?",
                [(FAILED, reason, time.time(), seq) for seq in seqs],
            )
            self.db.executemany("INSERT OR IGNORE INTO notices (seq) VALUES (?)",
                                [(seq,) for seq in seqs])  # fmt: skip

    # -- notices for the node -----------------------------------------------------------------

    def unacknowledged(self, limit: int) -> list[sqlite3.Row]:
        """The oldest failed trades the node has not acknowledged, with their notices."""
        return self.db.execute(
            "SELECT t.seq, t.market, t.state, t.reason, t.tx_hash, t.block, t.buyer, t.seller,"
            " t.entry, t.buyer_peer, t.seller_peer, n.at_fault, n.resolved"
            " FROM notices n JOIN trades t USING (seq) WHERE n.acknowledged_at IS NULL"
            " ORDER BY n.seq LIMIT ?",
            (limit,),
        ).fetchall()

    def resolve(self, at_fault: dict[int, str | None]) -> None:
        """For each noticed trade: the side at fault (`buy`, `sell` or None)."""
        with self.db:
            self.db.executemany(
                "UPDATE notices SET at_fault = ?, resolved = 1 WHERE seq = ?",
                [(side, seq) for seq, side in at_fault.items()],
            )

    def acknowledge(self, seqs: list[int]) -> int:
        """The node acted on these trades: their notices are done; how many were open."""
        now = time.time()
        with self.db:
            return self.db.executemany(
                "UPDATE notices SET acknowledged_at = ? WHERE seq = ? AND acknowledged_at IS NULL",
                [(now, seq) for seq in seqs],
            ).rowcount

    def add_min_nonces(self, raised: list[tuple[str, str, int]], next_block: int) -> None:
        """(owner, minimum nonce as decimal text, block) of `MinNonceRaised` logs read up to
        `next_block`, each a notice for the node (a log read twice is one), and `next_block`
        as where reading goes on: one transaction."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO min_nonces (owner, min_nonce, block)"
                                " VALUES (?, ?, ?)", raised)  # fmt: skip
            self._set_meta("min_nonce_block", next_block)

    def unacknowledged_min_nonces(self, limit: int) -> list[sqlite3.Row]:
        return self.db.execute("SELECT owner, min_nonce, block FROM min_nonces WHERE"
                               " acknowledged_at IS NULL ORDER BY block, owner LIMIT ?",
                               (limit,)).fetchall()  # fmt: skip

    def acknowledge_min_nonces(self, keys: list[str]) -> int:
        """The node journaled these (`owner:min_nonce`); how many were open."""
        with self.db:
            return self.db.executemany(
                "UPDATE min_nonces SET acknowledged_at = ? WHERE owner = ? AND min_nonce = ?"
                " AND acknowledged_at IS NULL", [(time.time(), *key.split(":", 1)) for key in keys]
            ).rowcount  # fmt: skip

    # -- reading -------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, count(*) FROM trades GROUP BY state").fetchall()
        return {PENDING: 0, SUBMITTED: 0, CONFIRMED: 0, FAILED: 0} | dict(rows)

    def batches(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest batches, newest first."""
        rows = self.db.execute("SELECT * FROM batches ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(row) | {"sent": len(self.sent(row["id"]))} for row in rows]

    def trade(self, seq: int) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT seq, market, buyer, seller, price, qty, traded_at, deadline, state, batch,"
            " tx_hash, block, reason, settled_at FROM trades WHERE seq = ?",
            (seq,),
        ).fetchone()
        return None if row is None else dict(row)

    def trades(self, state: str | None = None) -> Iterator[dict[str, Any]]:
        query = "SELECT seq, market, buyer, seller, price, qty, state, reason FROM trades"
        rows = self.db.execute(query + (" WHERE state = ?" if state else ""),
                               (state,) if state else ())  # fmt: skip
        for row in rows:
            yield dict(row)

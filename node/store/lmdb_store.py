"""The LMDB book store of a node home: journal, resting orders, per-commit state hashes.

Tables (LMDB named databases):
- `journal`: number of the batch's first command (u64, big-endian) -> msgpack array of the
  batch's commands (one entry per commit; commands are numbered from 0 across entries)
- `orders`: one record per resting order (see statehash.py)
- `nonces`: one record per owner of signed orders: the nonces it has used (statehash.py)
- `commits`: journal length after a commit -> msgpack [seq, state hash, commit time (ns since
  the epoch)]: the time is when the batch became durable, the clock analytics use
- `meta`: the sequence number, journal length, state hash and market list of the last commit;
  the store's `format`; and lists kept beside the books (the halted markets), not journaled

One write transaction per batch (group commit). LMDB's copy-on-write B+tree needs no recovery
after a crash; with `sync = "full"` a commit is on disk when `commit` returns. One process writes
(held by a lock file); readers take no locks and see the last committed batch.

A damaged file is a StoreError (one line), never an LMDB or decoding traceback. LMDB aborts the
whole process (an assertion in C) on some damaged pages: `child_read.read_in_child` runs a
reader in a forked child so that, too, is a StoreError for the caller. The files are the
owner's only (0600 in a 0700 folder): they hold every order of every owner.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import msgspec

from ..core.commands import JournalCommand
from ..core.markets import MarketSpec
from .statehash import CommitPlan

U64 = struct.Struct(">Q")
JOURNAL_READ_CHUNK = 64
"""Journal entries (batches) read per read transaction, so a long replay never pins old pages."""
MAX_DATABASES = 5
STORE_FORMAT = b"2"
"""Layout of the tables below; a store in another layout is refused, not misread."""
FILE_MODE = 0o600
FOLDER_MODE = 0o700
READ_FAULTS = (lmdb.Error, struct.error, msgspec.DecodeError)
"""What reading a damaged store raises: LMDB's page checks, short keys, undecodable values."""

_encode = msgspec.msgpack.Encoder().encode
_decode_batch = msgspec.msgpack.Decoder(list[JournalCommand]).decode
_decode_commit = msgspec.msgpack.Decoder(tuple[int, int, int]).decode
_decode_markets = msgspec.msgpack.Decoder(list[MarketSpec]).decode


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message is one line for the operator."""


@dataclass(frozen=True)
class StoredState:
    """What the last commit left: where the sequence and journal stand, and the books' hash."""

    seq: int
    journal_length: int
    state_hash: int
    markets: list[MarketSpec]
    nonce_records: list[tuple[bytes, bytes]] = field(default_factory=list)
    """The used-nonce records (filled by `snapshot`), which the state hash covers too."""


class Store:
    """An open LMDB environment holding one node's books and journal."""

    def __init__(
        self,
        path: Path,
        *,
        map_size: int = 256 << 20,
        sync: str = "full",
        readonly: bool = False,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """`clock` gives each commit its time in ns: the wall clock for a node; a replay of a
        generated market passes the market's own times, so that the detectors' time windows
        (which read commit times) see the hours and days the market spans."""
        self.path = path
        self.readonly = readonly
        self.clock = clock
        self._lock_file = None
        if readonly:
            if not (path / "data.mdb").exists():
                raise StoreError(f"{path}: no store here yet (nothing has been journaled)")
        else:
            try:
                path.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
                self._lock_file = _take_writer_lock(path / "writer.lock")
            except OSError as error:
                raise StoreError(f"{path}: cannot open the store: {error.strerror}") from None
        try:
            self.env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=MAX_DATABASES,
                readonly=readonly,
                mode=FILE_MODE,
                sync=sync != "none",
                metasync=sync == "full",
            )
        except lmdb.Error as error:
            self._release_lock()
            why = one_line(error).removeprefix(f"{path}: ")  # LMDB names the folder too
            raise StoreError(f"{path}: cannot open the store: {why}") from None
        create = not readonly
        try:
            self.journal_db = self.env.open_db(b"journal", create=create)
            self.orders_db = self.env.open_db(b"orders", create=create)
            self.commits_db = self.env.open_db(b"commits", create=create)
            self.meta_db = self.env.open_db(b"meta", create=create)
            try:  # a table newer than the format: absent from older stores opened to read
                self.nonces_db = self.env.open_db(b"nonces", create=create)
            except lmdb.NotFoundError:
                self.nonces_db = None
            self._check_format()
        except (*READ_FAULTS, StoreError) as error:
            self.close()
            raise StoreError(f"{path}: {one_line(error)}") from None

    def _check_format(self) -> None:
        """Refuse a store written in another layout; mark a new one with ours."""
        with self.env.begin(db=self.meta_db, write=not self.readonly) as txn:
            stored = txn.get(b"format")
            if stored is None and txn.get(b"journal_length") is None and not self.readonly:
                txn.put(b"format", STORE_FORMAT)
            elif stored != STORE_FORMAT and (stored is not None or txn.get(b"journal_length")):
                found = stored.decode() if stored else "an older one"
                raise StoreError(
                    f"store layout {found}, this marketnode reads {STORE_FORMAT.decode()}: "
                    "replay the commands into a new home"
                )

    # -- reading ------------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Make a damaged page, key or value one StoreError line."""
        try:
            yield
        except READ_FAULTS as error:
            raise StoreError(
                f"{self.path}: the store is damaged and cannot be read ({one_line(error)})"
            ) from None

    def _read(self, db: Any = None) -> lmdb.Transaction:
        """A read transaction. When another process (the node, for a reader such as the
        analytics follower) has grown the map past this environment's, LMDB refuses it with
        MDB_MAP_RESIZED until this process adopts the new size (`set_mapsize(0)`)."""
        try:
            return self.env.begin(db=db)
        except lmdb.MapResizedError:
            self.env.set_mapsize(0)
            return self.env.begin(db=db)

    def state(self) -> StoredState:
        with self._reading(), self._read() as txn:
            return self._state(txn)

    def snapshot(self) -> tuple[StoredState, list[tuple[bytes, bytes]]]:
        """The last commit's state and its order records, from one consistent read."""
        with self._reading(), self._read() as txn:
            records = list(txn.cursor(db=self.orders_db).iternext(keys=True, values=True))
            state = self._state(txn)
            if self.nonces_db is not None:
                cursor = txn.cursor(db=self.nonces_db)
                state.nonce_records.extend(cursor.iternext(keys=True, values=True))
            return state, records

    def _state(self, txn: lmdb.Transaction) -> StoredState:
        def number(key: bytes) -> int:
            raw = txn.get(key, db=self.meta_db)
            return U64.unpack(raw)[0] if raw else 0

        markets = txn.get(b"markets", db=self.meta_db)
        return StoredState(
            seq=number(b"seq"),
            journal_length=number(b"journal_length"),
            state_hash=number(b"state_hash"),
            markets=_decode_markets(markets) if markets else [],
        )

    def journal(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, object]]:
        """(command number, command) for the journaled commands from `start` up to `stop`."""
        position = start
        while stop is None or position < stop:
            progressed = False
            with self._reading():
                entries = self._journal_entries(position)
            for first, value in entries:
                for index, command in enumerate(_decode_batch(value), start=first):
                    if index < position:
                        continue
                    if stop is not None and index >= stop:
                        return
                    yield index, command
                    position = index + 1
                    progressed = True
            if not progressed:
                return

    def _journal_entries(self, position: int) -> list[tuple[int, bytes]]:
        """Up to JOURNAL_READ_CHUNK entries from the one holding command `position`."""
        with self._read(self.journal_db) as txn:
            cursor = txn.cursor()
            # the entry holding command `position` starts at or before it
            if cursor.set_range(U64.pack(position)):
                if U64.unpack(cursor.key())[0] > position and not cursor.prev():
                    cursor.first()
            elif not cursor.last():
                return []
            entries = []
            for key, value in cursor:
                entries.append((U64.unpack(key)[0], value))
                if len(entries) >= JOURNAL_READ_CHUNK:
                    break
            return entries

    def commits(self, start: int = 0) -> list[tuple[int, int, int, int]]:
        """(journal length, seq, state hash, commit time in ns) after every commit whose journal
        length is above `start`, oldest first."""
        with self._reading(), self._read(self.commits_db) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(U64.pack(start + 1)):
                return []
            return [
                (U64.unpack(key)[0], *_decode_commit(value))
                for key, value in cursor.iternext(keys=True, values=True)
            ]

    def last_commit(self) -> tuple[int, int, int, int] | None:
        """(journal length, seq, state hash, commit time in ns) of the newest commit record."""
        with self._reading(), self._read(self.commits_db) as txn:
            cursor = txn.cursor()
            if not cursor.last():
                return None
            return (U64.unpack(cursor.key())[0], *_decode_commit(cursor.value()))

    def journal_tail(self, count: int) -> list[tuple[int, list]]:
        """The newest `count` journal entries, oldest first: (first command number, commands)."""
        with self._reading(), self._read(self.journal_db) as txn:
            cursor = txn.cursor()
            entries = []
            found = cursor.last()
            while found and len(entries) < count:
                entries.append((U64.unpack(cursor.key())[0], _decode_batch(cursor.value())))
                found = cursor.prev()
        return entries[::-1]

    def get_meta_list(self, key: bytes) -> list[str]:
        """A list of names kept beside the books (node state that is not journaled)."""
        with self._reading():
            with self._read(self.meta_db) as txn:
                raw = txn.get(key)
            return msgspec.msgpack.decode(raw, type=list[str]) if raw else []

    # -- writing ------------------------------------------------------------------------------

    def commit(
        self,
        commands: list[object],
        journal_start: int,
        plan: CommitPlan,
        seq: int,
        markets: list[MarketSpec] | None = None,
        lists: dict[bytes, list[str]] | None = None,
        encode_journal: Callable[[list[object]], bytes] | None = None,
    ) -> None:
        """Write one batch in one transaction; on a full map, grow it and write again.
        `lists`: lists kept beside the books (`put_meta_list`) written in the same transaction,
        such as the record that the node acted on a notice whose commands these are;
        `encode_journal`: what writes the batch's journal entry (the compiled core's writer,
        which writes msgspec's bytes faster; None: msgspec's encoder)."""
        journal_length = journal_start + len(commands)
        entry = (encode_journal or _encode)(commands) if commands else None
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    self._write(txn, entry, journal_start, journal_length, plan, seq, markets)
                    for key, names in (lists or {}).items():
                        txn.put(key, _encode(names), db=self.meta_db)
                return
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def _write(self, txn, entry, journal_start, journal_length, plan, seq, markets) -> None:
        if entry is not None:
            txn.put(U64.pack(journal_start), entry, db=self.journal_db, append=True)
        puts = []
        for key, value in plan.writes.items():
            if value is None:
                txn.delete(key, db=self.orders_db)
            else:
                puts.append((key, value))
        if puts:
            txn.cursor(db=self.orders_db).putmulti(puts)
        for key, value in plan.nonce_writes.items():
            txn.put(key, value, db=self.nonces_db)
        commit = (seq, plan.state_hash, self.clock())
        txn.put(U64.pack(journal_length), _encode(commit), db=self.commits_db)
        txn.put(b"seq", U64.pack(seq), db=self.meta_db)
        txn.put(b"journal_length", U64.pack(journal_length), db=self.meta_db)
        txn.put(b"state_hash", U64.pack(plan.state_hash), db=self.meta_db)
        if markets is not None:
            txn.put(b"markets", _encode(markets), db=self.meta_db)

    def put_orders(self, records: list[tuple[bytes, bytes]]) -> None:
        """Write order records again as they are (durable.py: older records given their
        nonce, which leaves the state hash as it is)."""
        if records:
            with self.env.begin(write=True, db=self.orders_db) as txn:
                txn.cursor().putmulti(records)

    def put_meta_list(self, key: bytes, names: list[str]) -> None:
        """Keep a list of names beside the books; StoreError when it cannot be written (a full
        disk): the caller answers that, and the node goes on."""
        try:
            with self.env.begin(write=True, db=self.meta_db) as txn:
                txn.put(key, _encode(names))
        except lmdb.Error as error:
            raise StoreError(f"{self.path}: cannot write {key.decode()}: {error}") from None

    def close(self) -> None:
        self.env.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _take_writer_lock(path: Path):
    """Hold an exclusive lock for the life of this process's store; refuse a second writer."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    handle = open(descriptor, "r+")  # noqa: SIM115 - held open as the lock itself
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise StoreError(
            f"{path.parent}: another process (pid {holder}) is writing to this store"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle

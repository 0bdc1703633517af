"""The engine made durable: each batch of commands is journaled and its book changes written in
one synced LMDB transaction before any of its events is released.

A commit that fails (the disk or the LMDB map full, an I/O error) leaves the engine as the last
successful commit left it, reloaded from the store the way start-up loads it, so nothing of the
failed batch survives in memory either.

Resting signed orders keep their nonce (a raised minimum nonce cancels those below it). A store
written before they did holds signed orders without it: loading it finds each such order's
nonce in the journal (the `new` that placed it, or the move that brought it) once, and writes
the records again with it; the state hash leaves the nonce out (statehash.py), so it is the
same number before and after.
"""

from __future__ import annotations

from collections.abc import Sequence

import lmdb

from ..core.book import Order
from ..core.commands import ConfigureMarkets, ImportMarket, NewOrder
from ..core.compiled import journal_encoder, record_planner
from ..core.engine import Engine
from ..core.markets import MarketSpec
from .lmdb_store import Store, StoreError
from .statehash import (
    BookHash,
    format_hash,
    nonce_writes,
    nonces_from_record,
    order_from_record,
    order_key,
    order_value,
)


class CommitFailed(StoreError):
    """A batch could not be written (disk or map full, I/O error); the engine is back at the
    last commit. The message is one line for the operator."""


class DurableEngine:
    """An Engine whose every batch is committed to a Store before its events are returned."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._load()

    def _load(self) -> None:
        """The engine, its book hash and journal position as the store's last commit left them."""
        store = self.store
        state, records = store.snapshot()
        self.engine = Engine(state.markets)
        self.engine.restore(state.seq, (order_from_record(key, value) for key, value in records))
        for key, value in state.nonce_records:
            self.engine.nonces.restore(*nonces_from_record(key, value))
        self.book_hash = BookHash([*records, *state.nonce_records], record_planner(self.engine))
        self._encode_journal = journal_encoder(self.engine)
        if self.book_hash.value != state.state_hash:
            raise StoreError(
                f"{store.path}: the stored books do not match their state hash "
                f"({format_hash(self.book_hash.value)} != {format_hash(state.state_hash)}); "
                "run `mnode verify` to see where"
            )
        self.journal_length = state.journal_length
        self._pending: list[object] = []
        self._handlers = self.engine.handlers
        self._find_nonces()

    def _find_nonces(self) -> None:
        """Give the resting signed orders of an older store their nonces from the journal,
        and write their records again with them (see the module's docstring)."""
        wanted = {order.order_hash: order for order in self.engine.resting_orders()
                  if order.expiry and order.nonce is None}  # fmt: skip
        if not wanted or self.store.readonly:
            return
        for _, command in self.store.journal(0, self.journal_length):
            if type(command) is NewOrder and command.order_hash in wanted:
                wanted[command.order_hash].nonce = int(command.nonce)  # type: ignore[arg-type]
            elif type(command) is ImportMarket:
                for moved in command.orders:
                    if moved.order_hash in wanted and moved.nonce is not None:
                        wanted[moved.order_hash].nonce = int(moved.nonce)
        found = [order for order in wanted.values() if order.nonce is not None]
        try:
            self.store.put_orders([(order_key(order), order_value(order)) for order in found])
        except lmdb.Error:  # a full disk: the nonces are known now, and found again next start
            return

    def configure(self, specs: Sequence[MarketSpec]) -> bool:
        """Make `specs` the market list if it differs, journaled like a command; True if changed.

        Raises MarketChangeRefused (nothing written) if resting orders forbid the change.
        """
        specs = list(specs)
        if specs == self.engine.market_specs():
            return False
        self.submit([ConfigureMarkets(specs)], markets_changed=True)
        return True

    def submit(self, commands: Sequence[object], *, markets_changed: bool = False) -> list:
        """Process, journal and commit one batch; return its events once they are durable."""
        out: list = []
        self.engine.process_batch(commands, out)
        self._pending.extend(commands)
        self.commit(markets_changed=markets_changed)
        return out

    def process(self, command: object, out: list) -> None:
        """Apply one command now and journal it with the next `commit` (for callers that need
        each command's events apart, like the node's gateway)."""
        self._handlers[type(command)](command, out)
        self._pending.append(command)

    @property
    def uncommitted_commands(self) -> list[object]:
        """The commands processed since the last commit, which it journals: `process` appends
        to it, and so does the compiled core's intake (node/server/taking.py), which applies
        a message's commands in one call."""
        return self._pending

    @property
    def uncommitted(self) -> bool:
        """Has anything been processed since the last commit?"""
        return bool(self._pending)

    def commit(
        self, *, markets_changed: bool = False, lists: dict[bytes, list[str]] | None = None
    ) -> set[Order]:
        """Write everything processed since the last commit in one synced transaction; return
        the orders it changed (the node publishes their price levels). `lists`: lists kept
        beside the books to write in that transaction (Store.commit).

        Raises CommitFailed, with the engine reloaded from the last commit, when the store
        cannot take the write."""
        engine = self.engine
        changed = engine.take_changes()
        plan = self.book_hash.plan(
            changed, nonce_writes(engine.nonces, engine.nonces.take_changes())
        )
        commands, self._pending = self._pending, []
        try:
            self.store.commit(
                commands,
                self.journal_length,
                plan,
                engine.seq,
                markets=engine.market_specs() if markets_changed else None,
                lists=lists,
                encode_journal=self._encode_journal,
            )
        except lmdb.Error as error:
            self._load()
            raise CommitFailed(f"{self.store.path}: cannot commit: {error}") from None
        self.book_hash.apply(plan)
        self.journal_length += len(commands)
        return changed

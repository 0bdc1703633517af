"""The engine made durable: each batch of commands is journaled and its book changes written in
one synced LMDB transaction before any of its events is released.
"""

from __future__ import annotations

from collections.abc import Sequence

from .commands import ConfigureMarkets
from .engine import Engine
from .markets import MarketSpec
from .statehash import BookHash, format_hash, order_from_record
from .store import Store, StoreError, encode_command


class DurableEngine:
    """An Engine whose every batch is committed to a Store before its events are returned."""

    def __init__(self, store: Store) -> None:
        state, records = store.snapshot()
        self.store = store
        self.engine = Engine(state.markets)
        self.engine.restore(state.seq, (order_from_record(key, value) for key, value in records))
        self.book_hash = BookHash(records)
        if self.book_hash.value != state.state_hash:
            raise StoreError(
                f"{store.path}: the stored books do not match their state hash "
                f"({format_hash(self.book_hash.value)} != {format_hash(state.state_hash)}); "
                "run `mnode verify` to see where"
            )
        self.journal_length = state.journal_length

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
        engine = self.engine
        entries = [encode_command(command) for command in commands]
        out: list = []
        engine.process_batch(commands, out)
        plan = self.book_hash.plan(engine.take_changes())
        self.store.commit(
            entries,
            self.journal_length,
            plan,
            engine.seq,
            markets=engine.market_specs() if markets_changed else None,
        )
        self.book_hash.apply(plan)
        self.journal_length += len(entries)
        return out

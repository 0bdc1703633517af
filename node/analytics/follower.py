"""The journal follower: fills the analytics store from the LMDB journal, off the hot path.

The journal is the source of truth and holds commands, not events: the follower replays it
through an engine of its own to regenerate the events exactly (the engine is deterministic) and
hands them to the batch writer. It starts from the position the store has reached, so a crash or
a restart neither misses an event nor writes one twice. After each sync it records what its
engine shows beside the events: each market's top of book, and the liquidity instances' books
(books.py); and which trades settle on chain, with the events, and which failed (settlement.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

from ..core.commands import ConfigureMarkets
from ..core.engine import Engine
from ..store.lmdb_store import Store
from .batch import Batch, remove_stale_scratch
from .books import after_sync
from .duckdb_store import AnalyticsStore
from .settlement import NodeFailures, SignedTrades
from .writer import BatchWriter

ROWS_PER_WRITE = 100_000
"""Events appended per DuckDB transaction while catching up. Each commit costs a WAL write, so
larger transactions ingest a backlog faster (measured: 238k-241k events/s at 100,000, 260k-275k
at 200,000), but beside a loaded node the larger ones let the lag run up (a 3.3 s peak at
200,000 against 0.8 s at 100,000, bench/analytics_keepup.py). A batch's JSON takes about 17 MB
while it waits."""


class JournalFollower:
    """Replays the journal into its own engine and appends the events the store lacks."""

    def __init__(self, store: Store, analytics: AnalyticsStore) -> None:
        self.store = store
        self.analytics = analytics
        self.engine = Engine()
        self.replayed = 0
        """Journal commands applied to this follower's engine."""
        self.caught_up = False
        """Did the last sync reach the journal's last commit (not stop at its bound)?"""
        self.signed = SignedTrades()
        self.failures = NodeFailures()
        remove_stale_scratch()  # once per follower: a sync runs several times a second

    def sync(self, most_commands: int | None = None) -> int:
        """Bring the analytics store up to the journal's last commit, or `most_commands` (at a
        commit boundary) nearer to it; the events appended.

        This thread replays the journal and hands each batch's events over as the engine's own
        JSON; the writer's thread has DuckDB read, convert and insert them, which needs no GIL,
        so the two overlap. The cyclic garbage collector is paused meanwhile: the short-lived
        event objects hold no cycles.
        """
        stored = self.analytics.position()
        start = self.replayed
        writer = BatchWriter(self.analytics)
        collecting = gc.isenabled()
        gc.disable()
        try:
            batch = Batch(self.engine.books)
            self.caught_up = True
            for position, time_ns, out, chain_trades in self._replay(stored):
                books = self.engine.books  # a markets command makes a new dict
                if books is not batch.books:  # events of a batch share one set of units
                    if batch.events:
                        writer.put(self._close(batch, position - 1))
                    batch = Batch(books)
                if position > stored and out:
                    batch.add(out, time_ns)
                    batch.chain_trades.extend(chain_trades)
                if batch.events >= ROWS_PER_WRITE:
                    writer.put(self._close(batch, position))
                    batch = Batch(books)
                if most_commands is not None and position - start >= most_commands:
                    self.caught_up = False
                    break
            if self.replayed > stored or batch.events:
                writer.put(self._close(batch, self.replayed))
        finally:
            written = writer.close()
            if collecting:
                gc.enable()
        if self.replayed > start and self.replayed >= stored:  # the engine is where the store is
            after_sync(self.analytics.connection, self.engine.books, self.engine.seq)
        self.failures.refresh(self.store, self.analytics.connection)
        return written

    def _close(self, batch: Batch, position: int) -> Batch:
        batch.position = position
        batch.seq = self.engine.seq
        return batch

    def _replay(self, stored: int) -> Iterator[tuple[int, int, list, list[dict]]]:
        """(journal position reached, commit time, events, the trades among them between two
        signed orders) for each run of commands not yet replayed, oldest first. A run lies
        within one commit, on one side of `stored`, and a markets command runs alone (it swaps
        the books that events are read against)."""
        for end, _, _, time_ns in self.store.commits(start=self.replayed):
            commands = [command for _, command in self.store.journal(self.replayed, end)]
            for run in _runs(commands, self.replayed, stored):
                out: list = []
                self.engine.process_batch(run, out)
                self.replayed += len(run)
                yield self.replayed, time_ns, out, self.signed.observe(run, out)


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

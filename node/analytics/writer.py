"""The batch writer: appends batches to the analytics store from a thread of its own.

DuckDB reads and inserts a batch without holding the interpreter lock, so while one batch is
written the follower's thread replays the journal for the next. Batches are written in order,
each with the journal position it reaches, so a crash anywhere leaves a consistent store.
"""

from __future__ import annotations

import queue
import threading

from .batch import Batch
from .duckdb_store import AnalyticsStore

BATCHES_WAITING = 2
"""Batches queued for the writer before the follower waits (each holds its events' JSON)."""


class BatchWriter:
    """Writes the batches put to it, in order; an error there stops the writing and is raised
    to the follower at its next batch or at close."""

    def __init__(self, analytics: AnalyticsStore) -> None:
        self.analytics = analytics
        self.batches: queue.Queue[Batch | None] = queue.Queue(maxsize=BATCHES_WAITING)
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

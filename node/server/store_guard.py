"""What the node does when its store cannot commit (the disk or the LMDB map full, an I/O
error): it stays up, acknowledges nothing it could not store, refuses new work and keeps
answering reads until a retried commit goes through.

The failed batch's engine state is already rolled back by `DurableEngine.commit`; here the
batch's commands are answered `store_unavailable` instead of their events, and the guard
remembers the outage: the gateway refuses every command with `store_unavailable` meanwhile,
and the loop retries an (empty) commit every `[store] retry_commit_s` seconds. One log line
when the outage starts, one when it ends.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ..core.events import Rejected
from ..core.reasons import Reason
from ..ops.metrics import LoopMetrics
from ..store.durable import CommitFailed, DurableEngine
from .answers import Pending
from .gateway import Gateway

log = logging.getLogger("marketnode.node")

RETRY_ROOM_BYTES = 1 << 20
"""Free space a retry first checks for, by writing it beside the store: a commit small enough
to fit in LMDB's free pages could succeed on a disk still full, and the next batch fail."""


class StoreGuard:
    """Whether the store takes commits, and when to try again after it did not."""

    def __init__(
        self, durable: DurableEngine, gateway: Gateway, metrics: LoopMetrics, retry_s: float
    ) -> None:
        self.durable = durable
        self.gateway = gateway
        self.metrics = metrics
        self.retry_s = retry_s
        self.unavailable_since: float | None = None
        """When (epoch s) the first failed commit of the current outage happened; None: fine."""
        self._next_retry = 0.0

    @property
    def available(self) -> bool:
        return self.unavailable_since is None

    def commit_batch(self, pending: list[Pending]) -> set:
        """Commit what the batch processed, returning the orders it changed (a batch of reads
        and gateway rejects journals nothing, so it syncs nothing); if the store cannot take
        it, answer its commands `store_unavailable` instead."""
        if not self.durable.uncommitted:
            return set()
        committing = time.perf_counter_ns()
        try:
            changed = self.durable.commit()
        except CommitFailed as error:
            self.failed(error)
            refuse_unstored(pending)
            return set()
        self.metrics.commit_us.record((time.perf_counter_ns() - committing) // 1000)
        return changed

    def failed(self, error: CommitFailed) -> None:
        """A commit failed (the engine is back at the last commit, in a new Engine the gateway
        must read): refuse new work, log it if the outage is new, schedule the retry."""
        self.gateway.engine = self.durable.engine
        self.gateway.store_available = False
        if self.unavailable_since is None:
            self.unavailable_since = time.time()
            log.error("store unavailable, refusing new work until a commit succeeds: %s", error)
        self._next_retry = time.monotonic() + self.retry_s

    def retry(self) -> bool:
        """During an outage, once per `retry_s`: try a commit; True when the store is back."""
        if self.unavailable_since is None or time.monotonic() < self._next_retry:
            return False
        self._next_retry = time.monotonic() + self.retry_s
        if not _room_for(self.durable.store.path, RETRY_ROOM_BYTES):
            return False
        try:
            self.durable.commit()
        except CommitFailed:
            return False
        down_s = time.time() - self.unavailable_since
        self.unavailable_since = None
        self.gateway.store_available = True
        log.info("store available again after %.1f s: taking new work", down_s)
        return True


def _room_for(folder: Path, size: int) -> bool:
    """Can `size` bytes be written (and synced) in `folder`? Written, then removed."""
    probe = folder / ".space-probe"
    try:
        with open(probe, "wb") as handle:
            handle.write(bytes(size))
            handle.flush()
            os.fsync(handle.fileno())
        return True
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)


def refuse_unstored(pending: list[Pending]) -> None:
    """Replace the answers of a batch whose commit failed: every command of a submit is
    `store_unavailable` (a malformed one keeps its `malformed`), since none was stored."""
    for message in pending:
        if message.commands is None:
            continue
        message.events = [
            command
            if type(command) is Rejected
            else Rejected(
                None,
                type(command).__struct_config__.tag,
                command.market,
                command.id,
                command.owner,
                Reason.STORE_UNAVAILABLE,
            )
            for command in message.commands
        ]

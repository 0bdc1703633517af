"""The thread of a watcher beside the matching thread (the intake watch, connection admission):
it looks at something every so often and never touches the loop's structures while it runs.

Kept in one place because what it must do when a look fails is the same for each: a watcher
that died of a bug would leave the node unguarded without a word, so the failure is logged
with its traceback and the next look comes anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("marketnode.node")


class TickingThread:
    """A daemon thread calling `tick()` every `interval_s()` seconds (asked again after each
    tick, so a watcher may stretch or shorten its pace) until `close()`."""

    def __init__(self, name: str, tick: Callable[[], None], interval_s: Callable[[], float]):
        self.name = name
        self._tick = tick
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop and wait for the thread (idempotent; nothing to do if it never started)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s()):
            try:
                self._tick()
            except Exception:  # a bug here must not leave the node unguarded: say it, go on
                log.exception("the %s thread failed a tick (continuing)", self.name)

"""A log line that a flood of the same event (refused keys, disconnections) writes at most once
a period, with the count of the ones it stands for, so a storm of connections cannot fill the
log or spend the node's time writing it."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    """Logs the first event of a period at once; the others of that period are counted and
    told by the next line (the next event after the period, or `flush`). Safe from any
    thread."""

    def __init__(self, logger: logging.Logger, level: int, period_s: float = 1.0) -> None:
        self.logger = logger
        self.level = level
        self.period_s = period_s
        self._lock = threading.Lock()
        self._next = 0.0
        self._held = 0
        self._last = ""

    def note(self, text: str) -> None:
        """One event, described by `text` (already formatted)."""
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._held += 1
                self._last = text
                return
            held, self._held = self._held, 0
            self._next = now + self.period_s
        self.logger.log(self.level, "%s%s", text, _more(held))

    def flush(self) -> None:
        """Tell the events held back since the last line, if the period is over."""
        with self._lock:
            if not self._held or time.monotonic() < self._next:
                return
            held, self._held = self._held, 0
            last = self._last
            self._next = time.monotonic() + self.period_s
        self.logger.log(self.level, "%s (the last of %d like it)", last, held)


def _more(held: int) -> str:
    return f" (and {held} more like it before)" if held else ""

"""How the dashboard asks: each source of the source table (tui/sources.py) in a thread worker
of its own, which asks the node, posts the answer as the source's own message and re-arms
itself with `set_timer`. A source no panel shown needs is only looked at again once a refresh;
when a panel is shown, the sources it needs that the panel before it did not are asked at once,
so it shows what the node says now (a market just chosen, say) rather than a refresh later.
"""

from __future__ import annotations

import logging
from functools import partial

from textual.app import App
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widgets import TabbedContent

from .sources import SOURCES, NodeReader, Source

log = logging.getLogger(__name__)
SOONEST_S = 0.05


class PollingApp(App):
    """An app that keeps asking the node for every source of the table."""

    reader: NodeReader
    refresh_s: float
    paused: bool

    def __init__(self) -> None:
        super().__init__()
        self._waiting: dict[str, Timer] = {}
        """Each source between two rounds, by name: the timer of its next look."""
        self._panel_shown = ""

    @property
    def active_panel(self) -> str:
        """The panel shown ("" while the app starts or closes and the panels are not there)."""
        try:
            return self.query_one(TabbedContent).active
        except NoMatches:
            return ""

    def start_polling(self) -> None:
        self._panel_shown = self.active_panel
        for source in SOURCES:
            self._start(source)

    def panel_shown(self, panel: str) -> None:
        """Ask now for what `panel` needs and the panel shown before did not."""
        before, self._panel_shown = self._panel_shown, panel
        if self.paused:
            return
        for source in SOURCES:
            if source.wanted(panel) and not source.wanted(before):
                timer = self._waiting.pop(source.name, None)
                if timer is not None:  # else a round is under way, and answers soon
                    timer.stop()
                    self._start(source)

    def _start(self, source: Source) -> None:
        self.run_worker(
            partial(self._fetch, source),
            name=source.name,
            group=f"source-{source.name}",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def _fetch(self, source: Source) -> None:
        """In the worker's thread: ask, post the answer, and have the next round scheduled."""
        message = source.fetch(self.reader)
        if message is not None:
            self.post_message(message)
        if not self.reader.closing:
            try:
                self.call_from_thread(self._rearm, source)
            except RuntimeError:  # the app closed meanwhile
                log.debug("%s not re-armed: the dashboard closed", source.name)

    def _rearm(self, source: Source, every: float | None = None) -> None:
        every = source.every if every is None else every
        delay = max(SOONEST_S, self.refresh_s * every)
        self._waiting[source.name] = self.set_timer(delay, partial(self._due, source))

    def _due(self, source: Source) -> None:
        """Ask now, unless paused or no panel shown needs the source; then look again within
        one refresh."""
        self._waiting.pop(source.name, None)
        if self.reader.closing:
            return
        if self.paused or not source.wanted(self.active_panel):
            self._rearm(source, every=1)
        else:
            self._start(source)

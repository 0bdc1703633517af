"""What the dashboard's workers post to it; the handlers of these only render."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class Fetched(Message):
    """A source's answer from the node."""

    def __init__(self, source: str, data: Any) -> None:
        super().__init__()
        self.source = source
        self.data = data


class SourceFailed(Message):
    """A source's request came to nothing, and why."""

    def __init__(self, source: str, why: str) -> None:
        super().__init__()
        self.source = source
        self.why = why


class Unreachable(SourceFailed):
    """The node did not answer a source's request: it is down, restarting or unreachable."""


class Refused(SourceFailed):
    """The node answered, with an error (analytics off, say): the node is there."""


class ActionDone(Message):
    """An operator action (`--admin`) carried out, or refused."""

    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text = text
        self.ok = ok

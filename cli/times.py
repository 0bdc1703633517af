"""The times `--since` and `--until` take, read in one place so every command accepts the same
forms and refuses a bad one with the same line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from .common import EXIT_USAGE, fail

ACCEPTED_TIMES = (
    "ISO 8601 (2026-11-28, 2026-11-28T09:30:00Z, 2026-11-28T10:30:00+01:00; no zone is UTC), "
    "an age (45s, 30m, 1h, 2d, 1w ago), now, today or yesterday (from midnight UTC)"
)
_AGE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

SinceOption = Annotated[
    str | None,
    typer.Option("--since", help=f"Only from this time: {ACCEPTED_TIMES}.", show_default=False),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="Only before this time (the same forms).", show_default=False),
]


def parse_time(text: str, option: str, now: datetime | None = None) -> datetime:
    """The instant `text` names (aware, UTC); ValueError naming `option` and what is accepted.

    `now` is the instant ages and days count from (the current time if not given)."""
    now = now or datetime.now(UTC)
    word = text.strip().lower()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    days = {"now": now, "today": midnight, "yesterday": midnight - timedelta(days=1)}
    if word in days:
        return days[word]
    age = _AGE.fullmatch(word)
    if age:
        return now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not a time; use {ACCEPTED_TIMES}") from None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def time_clauses(since: str | None, until: str | None) -> tuple[list[str], list[str]]:
    """SQL conditions on a `time` column for --since and --until, and their parameters (ISO
    8601 text, which the node's analytics process takes as readily as DuckDB); a bad value is
    one line and exit 2."""
    clauses, parameters = [], []
    for option, text, condition in (("--since", since, ">="), ("--until", until, "<")):
        if text is None:
            continue
        try:
            instant = parse_time(text, option)
        except ValueError as error:
            fail(str(error), EXIT_USAGE)
        clauses.append(f"time {condition} CAST(? AS TIMESTAMPTZ)")
        parameters.append(instant.isoformat())
    return clauses, parameters

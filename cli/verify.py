"""`mnode verify`: replay the journal from the start and compare with the stored books, and check
the analytics store against the journal."""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import typer

from marketnode.node.analytics.duckdb_store import (
    AnalyticsStoreError,
    IngestSummary,
    ingest_problems,
    ingest_summary,
)
from marketnode.node.store.child_read import read_in_child
from marketnode.node.store.verify import verify_store

from .common import (
    EXIT_CHECK_FAILED,
    HomeOption,
    JsonOption,
    operator_errors,
    print_json,
    require_home,
)

DUCKDB_LOCKED = "Could not set lock"
"""DuckDB's words when another process (a running node's analytics process) holds the file."""


def verify_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """Replay the journal into a fresh engine and compare it with the store; check the analytics
    store's events against the journal.

    Exit 0 if the state hashes, books and analytics match, 1 (listing where they diverge) if
    not, 4 if the store cannot be read at all (damaged: the line says where).
    """
    node_home = require_home(home)
    with operator_errors():
        config = node_home.config()
        summary, analytics_note = _analytics_summary(node_home.path / config.analytics.file)
        positions = (summary.position,) if summary else ()
        verify = partial(verify_store, seq_at=positions)
        report = read_in_child(node_home.store_path(config), verify)
    analytics_problems: list[str] = []
    if summary is not None:
        seq_at = report.seq_at.get(summary.position)
        analytics_problems = ingest_problems(summary, report.journal_entries, seq_at)
        analytics_note = (
            f"{summary.events} events up to journal position {summary.position} of "
            f"{report.journal_entries}, as the journal makes them"
        )
    elif analytics_note.startswith("damaged"):
        analytics_problems = [f"analytics store {analytics_note}"]
    problems = report.problems + analytics_problems
    if json:
        record = dataclasses.asdict(report)
        record.pop("seq_at")
        record["problems"] = problems
        analytics = {"checked": summary is not None, "note": analytics_note}
        if summary is not None:
            analytics.update(dataclasses.asdict(summary), ok=not analytics_problems)
        print_json({"ok": not problems, **record, "analytics": analytics})
    elif not problems:
        typer.echo(
            f"ok: {report.journal_entries} journal entries in {report.commits} commits replayed; "
            f"{report.resting_orders} resting orders; seq {report.seq}; "
            f"state hash {report.state_hash}\n"
            f"analytics: {analytics_note}"
        )
    else:
        for problem in problems:
            typer.echo(f"diverges: {problem}")
    if problems:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _analytics_summary(path: Path) -> tuple[IngestSummary | None, str]:
    """The analytics store's ingest summary, or why it is not checked ("damaged: …" when the
    file cannot be read for another reason than a running node holding it)."""
    if not path.exists():
        return None, "not checked (no analytics store yet)"
    try:
        return ingest_summary(path), ""
    except AnalyticsStoreError as error:
        if DUCKDB_LOCKED in str(error):
            return None, "not checked (a running node's analytics process holds the file)"
        return None, f"damaged: {error}"

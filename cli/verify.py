"""`mnode verify`: replay the journal from the start and compare with the stored books."""

from __future__ import annotations

import dataclasses

import typer

from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.verify import verify_store

from .common import (
    EXIT_CHECK_FAILED,
    HomeOption,
    JsonOption,
    operator_errors,
    print_json,
    require_home,
)


def verify_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """Replay the journal into a fresh engine and compare it with the store.

    Exit 0 if the state hashes and books match, 1 (listing where they diverge) if not.
    """
    node_home = require_home(home)
    with operator_errors():
        config = node_home.config()
        store = Store(node_home.store_path(config), readonly=True)
        try:
            report = verify_store(store)
        finally:
            store.close()
    if json:
        print_json({"ok": report.ok, **dataclasses.asdict(report)})
    elif report.ok:
        typer.echo(
            f"ok: {report.journal_entries} journal entries in {report.commits} commits replayed; "
            f"{report.resting_orders} resting orders; seq {report.seq}; "
            f"state hash {report.state_hash}"
        )
    else:
        for problem in report.problems:
            typer.echo(f"diverges: {problem}")
    if not report.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)

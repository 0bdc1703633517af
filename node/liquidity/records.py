"""The files of a home's liquidity folder: each instance's record (liquidity/NAME.json) and the
process's report (liquidity/state.json).

An instance's record is written by two hands: the liquidity process keeps its `ledger` there
after each change and sets `halted` when its kill switch is thrown; the operator (`mnode
liquidity resume|stop|start`) clears `halted` and sets or clears `stopped`. Each writes only
its own fields, reading the rest from the file under an exclusive lock (liquidity/NAME.lock),
so that neither undoes the other: a stop written while the process saves a fill is kept. The
process reads the operator's fields once a second (`STATE_EVERY_S` in service.py).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import Instance
from .ledger import Ledger

FOLDER = "liquidity"
STATE_FILE = "state.json"


def state_path(home: Path) -> Path:
    return home / FOLDER / STATE_FILE


def ledger_path(home: Path, name: str) -> Path:
    return home / FOLDER / f"{name}.json"


def write_json(path: Path, record: Any) -> None:
    """Replace `path` whole (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(record, indent=1))
    os.replace(scratch, path)


@contextmanager
def record_locked(home: Path, name: str) -> Iterator[None]:
    """Hold instance `name`'s lock (released when the block ends, or the holder dies)."""
    path = home / FOLDER / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def saved_record(home: Path, instance: Instance) -> dict[str, Any] | None:
    """What was kept for this instance (its ledger, why it halted, who stopped it), if it was
    of the same market and owner (else the instance starts again from its configured
    holdings)."""
    try:
        record = json.loads(ledger_path(home, instance.name).read_text())
    except (OSError, ValueError):
        return None
    if (record.get("market"), record.get("owner")) != (instance.market, instance.owner):
        return None
    return record


def saved_ledger(home: Path, instance: Instance) -> Ledger | None:
    """The instance's kept ledger; None when none is (an instance stopped before it ran has a
    record without one)."""
    record = saved_record(home, instance)
    if record is None or "ledger" not in record:
        return None
    fields = {field.name for field in dataclasses.fields(Ledger)}
    return Ledger(**{key: value for key, value in record["ledger"].items() if key in fields})


def update_record(
    home: Path, instance: Instance, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Apply `change` to the instance's record under its lock and write it back; the record
    written. A record of another market or owner is started afresh."""
    with record_locked(home, instance.name):
        record = saved_record(home, instance) or {
            "market": instance.market, "owner": instance.owner, "halted": None,
        }  # fmt: skip
        change(record)
        write_json(ledger_path(home, instance.name), record)
    return record


def save_ledger(home: Path, instance: Instance, ledger: Ledger, halt: str | None = None) -> None:
    """The process's part of the record: its ledger, and `halt` when its kill switch has just
    been thrown (None leaves the record's halt as it is: the operator's resume is never
    undone by a save)."""

    def change(record: dict[str, Any]) -> None:
        record["ledger"] = dataclasses.asdict(ledger)
        if halt is not None:
            record["halted"] = halt

    update_record(home, instance, change)

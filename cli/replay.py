"""`mnode replay`: feed a file of JSON commands through the durable engine of a home."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import msgspec
import typer

from marketnode.node.core.commands import MalformedCommand, decode_json_command
from marketnode.node.core.events import Rejected
from marketnode.node.core.reasons import Reason
from marketnode.node.protocol.wire_events import event_record, wire_event
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.statehash import format_hash

from .common import (
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    HomeOption,
    fail,
    operator_errors,
    require_home,
)

_encode = msgspec.json.Encoder().encode


def replay_command(
    file: Annotated[
        Path,
        typer.Argument(help="Newline-delimited JSON commands ('-' for stdin).", show_default=False),
    ],
    home: HomeOption = None,
) -> None:
    """Run each command of FILE through the home's engine and print one JSON event per line.

    Commands are journaled into the home's store in batches (store.batch_size); a batch's events
    are printed only after the batch is committed. A line that is not a valid command gets a
    `malformed` reject (with `line` and `detail`) and the replay goes on. Blank lines are skipped.
    Interrupted (Ctrl-C, exit 130) or with its output closed (exit 1), it stops at a commit.
    """
    node_home = require_home(home)
    with operator_errors():
        config = node_home.config()
        lines = _open_input(file)
        store = Store(
            node_home.store_path(config),
            map_size=config.store.map_size,
            sync=config.store.sync,
        )
        try:
            durable = DurableEngine(store)
            durable.configure(config.markets)
            tally = _Replay(durable, config.store.batch_size).run(lines)
        except KeyboardInterrupt:
            fail(_stopped("interrupted", store), EXIT_INTERRUPTED)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            fail(_stopped("output closed", store), EXIT_CHECK_FAILED)
        finally:
            store.close()
            lines.close()
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(tally.items())) or "no events"
    typer.echo(
        f"replayed into {node_home.path}: {summary}; seq {durable.engine.seq}, "
        f"state hash {format_hash(durable.book_hash.value)}",
        err=True,
    )


def _stopped(why: str, store: Store) -> str:
    return (
        f"{why}: everything up to seq {store.state().seq} is committed; the batch in "
        "progress was not, and none of its events were printed"
    )


def _open_input(file: Path) -> IO[bytes]:
    if str(file) == "-":
        return sys.stdin.buffer
    try:
        return file.open("rb")
    except OSError as error:
        fail(f"{file}: cannot read: {error.strerror}", EXIT_USAGE)


class _CommitGuard:
    """Ctrl-C at a commit boundary only: while a batch is committed and its events printed the
    interrupt waits, so the output never ends in half a line; elsewhere it acts at once."""

    def __init__(self) -> None:
        self.busy = False
        self.pending = False

    def __call__(self, _signum: int, _frame: object) -> None:
        if self.busy:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def __enter__(self) -> None:
        self.busy = True

    def __exit__(self, *exc: object) -> None:
        self.busy = False
        if self.pending:
            raise KeyboardInterrupt


class _Replay:
    """Decode lines into batches; commit each batch, then print its events."""

    def __init__(self, durable: DurableEngine, batch_size: int) -> None:
        self.durable = durable
        self.batch_size = batch_size
        self.tally: Counter[str] = Counter()
        self.output = sys.stdout.buffer
        self.books = durable.engine.books
        self.batch: list = []
        self.guard = _CommitGuard()

    def run(self, lines: Iterator[bytes]) -> Counter[str]:
        previous = signal.signal(signal.SIGINT, self.guard)
        try:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    self.take(number, line)
            self.flush()
        finally:
            signal.signal(signal.SIGINT, previous)
        return self.tally

    def take(self, number: int, line: bytes) -> None:
        try:
            self.batch.append(decode_json_command(line))
        except MalformedCommand as error:
            self.flush()
            echo = error.echo
            reject = Rejected(
                None, echo.get("op"), echo.get("market"), echo.get("id"), echo.get("owner"),
                Reason.MALFORMED, error.detail,
            )  # fmt: skip
            record = event_record(reject, self.books)
            record["line"] = number
            with self.guard:
                self.tally["rejected"] += 1
                self.output.write(_encode(record) + b"\n")
            return
        if len(self.batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        with self.guard:
            if self.batch:
                for event in self.durable.submit(self.batch):
                    self.tally[type(event).__struct_config__.tag] += 1
                    self.output.write(_encode(wire_event(event, self.books)) + b"\n")
                self.batch.clear()
            self.output.flush()

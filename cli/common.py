"""What every command shares: the home option, exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import msgspec
import typer

from marketnode.node.core.engine import MarketChangeRefused
from marketnode.node.core.markets import ConfigError
from marketnode.node.home.layout import HOME_ENV, Home
from marketnode.node.home.processes import process_alive
from marketnode.node.store.lmdb_store import StoreError

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
"""A check ran and found a problem (`mnode verify` divergence), or the output was closed."""
EXIT_USAGE = 2
"""Bad command-line usage or input: unknown option, missing file, unknown market."""
EXIT_CONFIG = 3
"""The home or its config.toml is missing or invalid, or a market change is refused."""
EXIT_STORE = 4
"""The store cannot be used: another process writes it, it cannot be opened, it is damaged or it
fails the start's check (the analytics store too)."""
EXIT_NOT_RUNNING = 5
"""The node is not running, or did not answer in time."""
EXIT_REJECTED = 6
"""The node answered, and rejected the command (the reason is printed)."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (SIGINT), at a commit."""

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar=HOME_ENV,
        help=f"Node home folder (or set {HOME_ENV}).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr and a non-zero exit: how every user mistake ends."""
    typer.echo(f"mnode: {message}", err=True)
    raise typer.Exit(code)


def require_home(path: Path | None) -> Home:
    if path is None:
        fail(f"no node home given: pass --home DIR or set {HOME_ENV}", EXIT_USAGE)
    return Home(path)


def why_no_node_runs(node_home: Home) -> str | None:
    """Why no node can be running on the home, told from node.json and its pid at once, without
    waiting on a socket; None when one may be (then only its answer tells). A node writes
    node.json when it starts and removes it when it stops: one left behind names a dead pid."""
    try:
        pid = int(json.loads(node_home.runtime_path.read_text())["pid"])
    except FileNotFoundError:
        return f"no node is running on {node_home.path} (no node.json; `mnode start` runs one)"
    except (OSError, ValueError, KeyError, TypeError):
        return None  # being written, or unreadable: let the node's answer decide
    if process_alive(pid):
        return None
    return (
        f"no node is running on {node_home.path} (node.json names pid {pid}, which has exited; "
        "`mnode start` runs one)"
    )


def require_running_node(node_home: Home) -> None:
    """One line and exit 5 at once when no node can be running on the home."""
    reason = why_no_node_runs(node_home)
    if reason is not None:
        fail(reason, EXIT_NOT_RUNNING)


@contextmanager
def operator_errors() -> Iterator[None]:
    """Turn the node's own error types into one-line messages with their exit codes."""
    try:
        yield
    except (ConfigError, MarketChangeRefused) as error:
        fail(str(error), EXIT_CONFIG)
    except StoreError as error:  # the analytics store's errors are StoreErrors too
        fail(str(error), EXIT_STORE)


_json = msgspec.json.Encoder()


def print_json(value: Any) -> None:
    sys.stdout.buffer.write(_json.encode(value) + b"\n")
    sys.stdout.flush()

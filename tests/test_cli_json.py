"""Every command that reads takes `--json`: walked over the whole command tree, so a new
reading command without it fails here. The commands that change the node or its home (and the
interactive dashboard) are listed; their outcome is one line on stderr."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.core import TyperGroup

from marketnode.cli.main import COMMANDS

CHANGING = {
    "init", "replay", "start", "stop", "dashboard",
    "peers add", "peers revoke", "peers disable", "peers enable",
    "markets halt", "markets resume",
    "analytics sync", "export parquet", "integrity link", "alerts ack", "liquidity resume",
}  # fmt: skip
"""`replay` prints its events as JSON lines whatever is asked."""


def command_paths() -> Iterator[tuple[str, object]]:
    """(path, command) of every runnable command: a group that runs without a subcommand
    (`mnode alerts`, `mnode scale`) is one too."""
    for entry in COMMANDS:
        command = entry.load()
        if not isinstance(command, TyperGroup):
            yield entry.name, command
            continue
        if command.invoke_without_command:
            yield entry.name, command
        for name, sub in command.commands.items():
            yield f"{entry.name} {name}", sub


COMMAND_PATHS = dict(command_paths())


def test_the_changing_commands_named_exist():
    assert set(COMMAND_PATHS) >= CHANGING


@pytest.mark.parametrize("path", sorted(set(COMMAND_PATHS) - CHANGING))
def test_a_reading_command_takes_json(path):
    options = {option for param in COMMAND_PATHS[path].params for option in param.opts}
    assert "--json" in options

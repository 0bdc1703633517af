"""`mnode` starts without importing its commands: `--version` and `--help` load none of the
heavy libraries the commands use, each command's module is imported when it runs, and the
help lines of the command table are the commands' own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from marketnode.cli.main import COMMANDS

HEAVY = ("duckdb", "textual", "zmq", "sklearn", "lmdb")

LOADED_AFTER = """
import sys
from marketnode.cli.main import app
try:
    app({arguments!r}, prog_name="mnode")
except SystemExit:
    pass
print(" ".join(sorted({heavy!r} & set(sys.modules))), file=sys.stderr)
"""
"""Runs `mnode ARGUMENTS` in a fresh interpreter; its last stderr line names the heavy
modules imported by then."""


def heavy_modules_after(*arguments: str) -> tuple[str, list[str]]:
    """stdout of `mnode ARGUMENTS` run in a fresh interpreter, and the heavy modules loaded."""
    code = LOADED_AFTER.format(arguments=list(arguments), heavy=set(HEAVY))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout, result.stderr.splitlines()[-1].split()


def test_importing_the_cli_loads_none_of_the_heavy_libraries():
    result = subprocess.run(
        [sys.executable, "-c", "import sys, marketnode.cli.main; print(' '.join(sys.modules))"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    assert not loaded & set(HEAVY)


@pytest.mark.parametrize("arguments", [["--version"], ["--help"], []])
def test_version_and_help_load_none_of_the_heavy_libraries(arguments):
    shown, loaded = heavy_modules_after(*arguments)
    assert loaded == []
    assert shown.strip()


def test_the_help_lists_every_command_with_its_help_line():
    shown, _ = heavy_modules_after("--help")
    words = " ".join(shown.replace("│", " ").split())
    for entry in COMMANDS:
        assert f"{entry.name} {' '.join(entry.help.split()[:3])}" in words


def test_a_command_loads_its_module_when_it_runs():
    shown, loaded = heavy_modules_after("sql", "--help")
    assert "duckdb" in loaded
    assert "read-only SQL query" in shown


@pytest.mark.parametrize("entry", COMMANDS, ids=[entry.name for entry in COMMANDS])
def test_the_tables_help_line_is_the_commands_own(entry):
    command = entry.load()
    own = (command.help or "").split("\n\n")[0]
    assert " ".join(own.split()) == " ".join(entry.help.split())
    assert command.name == entry.name

"""`mnode`'s help and shell completion: help wrapped at words to the terminal (never broken
before the line is full), flags without a `<bool>` metavar, and Typer's completion enabled
without loading every command's module."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from itertools import pairwise

import pytest
from typer.testing import CliRunner

from marketnode.cli.main import COMMANDS, app
from tests.test_cli_json import COMMAND_PATHS

runner = CliRunner()
GROUPS = [entry.name for entry in COMMANDS if entry.attribute.endswith("app")]
"""The command groups (`peers`, `alerts`, ...): their table entry is a typer.Typer."""
SENTENCE_ENDS = (".", ":", "!", "?", "]")
"""Where a line may end short: a sentence's end, or Typer's `[required]`, `[default: ...]`."""


def help_of(*path: str, columns: int = 80) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def early_breaks(shown: str) -> list[str]:
    """Lines broken mid-sentence before they were full: the next line of the same text (a
    panel's cell, or the description above the panels) starts with a word that would have
    fitted, so the break came from the source's line ends, not from wrapping."""
    broken = []
    lines = shown.splitlines()
    for line, following in pairwise(lines):
        in_panel = line.startswith("│") and following.startswith("│")
        if in_panel:
            line, following, width = line[1:-1], following[1:-1], len(line) - 3
            if len(following) - len(following.lstrip()) <= 1:
                continue  # a new row of the panel
        elif line.startswith(" ") and following.startswith(" "):
            width = 79
        else:
            continue
        words = following.split()
        if not words or not line.strip() or line.rstrip().endswith(SENTENCE_ENDS):
            continue  # a paragraph's or a sentence's end
        if len(line.rstrip()) + 1 + len(words[0]) <= width:
            broken.append(f"{line.strip()!r} / {words[0]!r}")
    return broken


@pytest.mark.parametrize("path", [[], *([group] for group in GROUPS)], ids=lambda p: " ".join(p))
def test_help_is_wrapped_at_words_and_only_when_full(path):
    shown = help_of(*path)
    assert all(len(line) <= 80 for line in shown.splitlines())
    assert early_breaks(shown) == []


@pytest.mark.parametrize("path", sorted(COMMAND_PATHS))
def test_no_flag_shows_a_bool_metavar_nor_breaks_early(path):
    shown = help_of(*path.split())
    assert "<bool>" not in shown
    assert early_breaks(shown) == []
    assert re.search(r"--help\s+Show this message", shown)


def test_the_top_level_help_offers_completion():
    shown = help_of()
    assert "--install-completion" in shown and "--show-completion" in shown


def test_show_completion_prints_the_bash_script():
    result = runner.invoke(app, ["--show-completion", "bash"], prog_name="mnode")
    assert result.exit_code == 0, result.output
    assert "_MNODE_COMPLETE=complete_bash" in result.stdout


def _complete(words: str) -> tuple[list[str], list[str]]:
    """Bash's completions of `words` through `mnode`'s completion protocol, and the heavy
    modules loaded meanwhile (the listing must not import every command)."""
    code = (
        "import sys\n"
        "from marketnode.cli.main import app\n"
        "try:\n    app(prog_name='mnode')\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted({'duckdb', 'textual', 'sklearn'} & set(sys.modules))),"
        " file=sys.stderr)\n"
    )
    env = {**os.environ, "_MNODE_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120, check=True)  # fmt: skip
    return result.stdout.split(), result.stderr.splitlines()[-1].split()


def test_completion_lists_commands_without_loading_them():
    offered, loaded = _complete("mnode pe")
    assert offered == ["peers"]
    assert loaded == []
    offered, _ = _complete("mnode peers ")
    assert {"add", "list", "revoke", "disable", "enable"} <= set(offered)

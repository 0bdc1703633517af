"""`mnode init`: create a node home."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from marketnode.node.home.layout import Home

from .common import EXIT_USAGE, HomeOption, fail, operator_errors


def init_command(
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="Folder to make a node home (default: --home / MNODE_HOME).", show_default=False
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Create a node home: config.toml (the documented defaults), data folder, CURVE keys.

    The server's and the operator's key pairs go to DIR/keys/ (secret files mode 0600).
    """
    target = directory or home
    if target is None:
        fail("no folder given: mnode init DIR (or --home DIR, or MNODE_HOME)", EXIT_USAGE)
    with operator_errors():
        created = Home.create(target)
    typer.echo(f"created node home {created.path} (edit {created.config_path})", err=True)

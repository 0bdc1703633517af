"""`mnode dashboard`: the running node, live, in the terminal."""

from __future__ import annotations

from typing import Annotated

import typer

from marketnode.node.client import address_of_home
from marketnode.node.keys import OPERATOR, load_key_pair

from .common import HomeOption, operator_errors, require_home


def dashboard_command(
    home: HomeOption = None,
    refresh: Annotated[
        float, typer.Option("--refresh", min=0.25, help="Seconds between refreshes.")
    ] = 1.0,
) -> None:
    """Throughput, markets, the book, integrity alerts, scaling advice and resources of the
    node running on the home (keys 1-6 switch panels, ? lists the keys, q quits)."""
    from marketnode.tui.app import Dashboard

    node_home = require_home(home)
    with operator_errors():
        config = node_home.config()
        key = None
        if config.security.curve:
            key = load_key_pair(node_home.keys_path(config) / f"{OPERATOR}.key_secret")
        address_of_home(node_home, config)  # a mistake in the home shows now, in one line
    Dashboard(lambda: address_of_home(node_home), key, refresh_s=refresh).run()

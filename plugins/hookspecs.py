"""The hooks a marketnode plugin may implement.

Plugins, built-in ones included, are modules listed under the `marketnode.plugins` entry point
group; each implements some of these hooks with `@hookimpl`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import duckdb

    from .alerts import Alert

hookspec = pluggy.HookspecMarker("marketnode")
hookimpl = pluggy.HookimplMarker("marketnode")


@hookspec
def detect_integrity(
    connection: duckdb.DuckDBPyConnection, settings: dict[str, Any]
) -> list[Alert] | None:
    """Look at the analytics store (tables trades, events, links and their views) and return
    the alerts this detector raises. `settings` is the plugin's table of `[integrity]`."""


@hookspec
def act_on_alert(alert: Alert) -> None:
    """Do something about a new alert (disable a peer, halt a market, page someone). Nothing
    acts by default."""

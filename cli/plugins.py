"""`mnode plugins`: every installed detector, scaling policy and liquidity strategy, where it
comes from, the hooks it implements and its settings as they are in effect for a home."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from marketnode.node.home.config import NodeConfig
from marketnode.plugins.host import (
    GROUPS,
    INTEGRITY,
    LIQUIDITY,
    SCALING,
    PluginGroup,
    plugin_host,
)
from marketnode.plugins.settings import settings_in_effect

from .common import HomeOption, JsonOption, operator_errors, print_json, require_home

app = typer.Typer(
    help="Installed plugins (detectors, scaling policies, liquidity strategies): origin, hooks, "
    "settings.",
    invoke_without_command=True,
)

TABLES: dict[str, Callable[[NodeConfig], dict[str, dict[str, Any]]]] = {
    INTEGRITY.name: lambda config: config.integrity.detectors,
    SCALING.name: lambda config: config.scaling.policies,
    LIQUIDITY.name: lambda config: {},
}
"""Each group's `[GROUP.NAME]` tables in a home's config. A `[liquidity.NAME]` table is an
instance of a strategy with settings of its own (`mnode liquidity list` shows them), so a
strategy's settings here are its defaults."""


@app.callback()
def plugins_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """Each loaded plugin by group: built in or from which distribution and version, the hooks
    it implements, and its settings: the home's `[integrity.NAME]` and `[scaling.NAME]` tables
    over the plugin's defaults (without a home, the defaults); a liquidity strategy's defaults,
    which each `[liquidity.NAME]` instance overrides (`mnode liquidity list`)."""
    with operator_errors():
        config, source = NodeConfig(), "defaults"
        if home is not None:
            node_home = require_home(home)
            config, source = node_home.config(), str(node_home.config_path)
        records = [record for group in GROUPS for record in _records(group, config, source)]
    if json:
        print_json(records)
        return
    for record in records:
        typer.echo(f"{record['group']:<10} {record['name']:<18} {_origin(record)}")
        typer.echo(f"    hooks     {', '.join(record['hooks'])}")
        for table, settings in record["settings"].items():
            values = ", ".join(f"{key} = {value!r}" for key, value in settings.items())
            typer.echo(f"    {_table_label(record['group'], table)} {values or '(no settings)'}")


def _records(group: PluginGroup, config: NodeConfig, source: str) -> list[dict[str, Any]]:
    """The group's plugins as `--json` prints them; ConfigError for a mistake in the home's
    tables or a plugin that cannot be loaded."""
    host = plugin_host(group)
    in_effect = settings_in_effect(group, TABLES[group.name](config), source, host)
    declared = host.declared_settings()
    return [
        {
            "group": info.group,
            "name": info.name,
            "built_in": info.built_in,
            "module": info.module,
            "distribution": info.distribution,
            "version": info.version,
            "hooks": info.hooks,
            "settings": {table: in_effect[table] for table in declared.get(info.name, {})},
        }
        for info in host.describe()
    ]


def _table_label(group: str, table: str) -> str:
    if group == LIQUIDITY.name:
        return f'strategy = "{table}" defaults:'
    return f"[{group}.{table}]"


def _origin(record: dict[str, Any]) -> str:
    if record["built_in"]:
        return f"built-in ({record['module']})"
    if record["distribution"] is None:
        return f"registered at run time ({record['module']})"
    return f"{record['distribution']} {record['version']} ({record['module']})"

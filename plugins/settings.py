"""Plugin settings in effect: what a group's plugins declare (table name -> defaults) under the
operator's config.toml tables (`[integrity.NAME]`, `[scaling.NAME]`), checked so that every
mistake is one line."""

from __future__ import annotations

from typing import Any

from marketnode.node.core.markets import ConfigError

from .host import PluginGroup, PluginHost, plugin_host


def settings_in_effect(
    group: PluginGroup,
    tables: dict[str, dict[str, Any]],
    source: str = "config.toml",
    host: PluginHost | None = None,
) -> dict[str, dict[str, Any]]:
    """Every declared table's defaults overridden by the operator's `tables` (those of the
    group's config.toml section, read from `source`); ConfigError, one line, for a mistake."""
    return merge_settings(
        declared_tables(host or plugin_host(group)), tables, group.name, source, group.noun
    )


def declared_tables(host: PluginHost) -> dict[str, dict[str, Any]]:
    """Every table the host's plugins declare, with its defaults. Two plugins declaring one
    name is a ConfigError: the operator's table could not say which it configures."""
    declared: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    for plugin, tables in host.declared_settings().items():
        for name, defaults in tables.items():
            if name in owners:
                raise ConfigError(
                    f"plugins {owners[name]} and {plugin} both declare the {host.group.noun} "
                    f"{name!r} (entry point group {host.group.entry_points})"
                )
            owners[name] = plugin
            declared[name] = defaults
    return declared


def merge_settings(
    declared: dict[str, dict[str, Any]],
    tables: dict[str, dict[str, Any]],
    section: str,
    source: str,
    noun: str,
) -> dict[str, dict[str, Any]]:
    """Each declared plugin's defaults overridden by its `[SECTION.NAME]` table. Raise
    ConfigError for a table no installed plugin declared, an unknown key, or a value of
    another type than its default."""
    for name, table in tables.items():
        where = f"{source}: [{section}.{name}]"
        if name not in declared:
            raise ConfigError(
                f"{where}: no installed {noun} has this name "
                f"(installed: {', '.join(sorted(declared))})"
            )
        for key, value in table.items():
            if key not in declared[name]:
                known = ", ".join(declared[name]) or "none"
                raise ConfigError(f"{where}: {key}: unknown key (known keys: {known})")
            if not _same_kind(value, declared[name][key]):
                raise ConfigError(
                    f"{where}: {key}: must be like {declared[name][key]!r}, got {value!r}"
                )
    return {name: {**defaults, **tables.get(name, {})} for name, defaults in declared.items()}


def _same_kind(value: Any, default: Any) -> bool:
    """TOML's types, with a whole number accepted where a number with a point is."""
    if isinstance(default, float):
        return type(value) in (int, float)
    if isinstance(default, list):
        return isinstance(value, list) and all(
            _same_kind(item, default[0]) for item in value if default
        )
    return type(value) is type(default)

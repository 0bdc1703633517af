"""Plugin settings: what plugins declare (name -> defaults) under the operator's config.toml
tables (`[SECTION.NAME]`), checked so that every mistake is one line."""

from __future__ import annotations

from typing import Any

from ..core.markets import ConfigError


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

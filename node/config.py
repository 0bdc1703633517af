"""Node configuration: config.toml read, checked and given defaults.

A file holding only `[[markets]]` tables is a complete configuration; every other key has a
default, documented in the repository's config.toml. Every mistake is one line naming the file,
the table and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .markets import ConfigError, MarketSpec, parse_markets

SYNC_MODES = ("full", "no_metasync", "none")
"""LMDB durability: `full` syncs data and metadata on every commit; `no_metasync` skips the
metadata sync (a system crash may undo the last commit); `none` leaves flushing to the OS (a
power loss may lose the last commits, never corrupt the store)."""

_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|TiB)?")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


@dataclass(frozen=True)
class StoreConfig:
    """The LMDB book store of a node home."""

    path: str = "data"
    map_size: int = 256 << 20
    sync: str = "full"
    batch_size: int = 1000


@dataclass(frozen=True)
class NodeConfig:
    markets: list[MarketSpec] = field(default_factory=list)
    store: StoreConfig = field(default_factory=StoreConfig)


def default_config_text() -> str:
    """The documented default configuration (the repository's config.toml)."""
    return resources.files(__package__).joinpath("default_config.toml").read_text("utf-8")


def default_markets() -> list[MarketSpec]:
    """The markets of the default configuration (the benchmark and sample flows trade them)."""
    return parse_config(default_config_text(), "config.toml").markets


def load_config(path: Path) -> NodeConfig:
    """Read and check `path`; raise ConfigError with one line on any mistake."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str) -> NodeConfig:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    known = {"markets", "store"}
    for key in document:
        if key not in known:
            raise ConfigError(f"{source}: {key}: unknown key (known: {', '.join(sorted(known))})")
    return NodeConfig(
        markets=parse_markets(document.get("markets"), source),
        store=_parse_store(document.get("store", {}), f"{source}: [store]"),
    )


def _parse_store(table: Any, where: str) -> StoreConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    defaults = StoreConfig()
    for key in table:
        if key not in StoreConfig.__dataclass_fields__:
            known = ", ".join(StoreConfig.__dataclass_fields__)
            raise ConfigError(f"{where}: {key}: unknown key (known keys: {known})")
    path = table.get("path", defaults.path)
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}: path: must be a non-empty string")
    sync = table.get("sync", defaults.sync)
    if sync not in SYNC_MODES:
        raise ConfigError(f"{where}: sync: must be one of {', '.join(SYNC_MODES)}, got {sync!r}")
    batch_size = table.get("batch_size", defaults.batch_size)
    if type(batch_size) is not int or not 1 <= batch_size <= 100_000:
        raise ConfigError(f"{where}: batch_size: must be a whole number from 1 to 100000")
    map_size = parse_size(table.get("map_size", defaults.map_size), f"{where}: map_size")
    if map_size < 1 << 20:
        raise ConfigError(f"{where}: map_size: must be at least 1MiB")
    return StoreConfig(path=path, map_size=map_size, sync=sync, batch_size=batch_size)


def parse_size(value: Any, where: str) -> int:
    """Bytes from an integer or a string such as "256MiB"."""
    if type(value) is int and value > 0:
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match:
            return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    raise ConfigError(
        f'{where}: must be a size such as "256MiB" or a number of bytes, got {value!r}'
    )

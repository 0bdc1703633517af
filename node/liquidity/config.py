"""`[liquidity.NAME]` tables: one liquidity instance each, a strategy quoting one market as
one peer and owner.

    [liquidity.punk_pool]
    strategy = "amm"          # a strategy some `marketnode.liquidity` plugin declares
    market = "PUNK-ETH"
    peer = "punk-pool"        # a registered peer: its key is keys/peers/punk-pool.key_secret
    owner = "0x5001"          # one of that peer's owners
    base = "400"              # holdings it starts with (asset units): an AMM's reserves
    quote = "4000"
    fee_bps = 30              # the strategy's own settings, checked against its defaults

The instance keys are checked here; every other key is the strategy's, checked as the
detectors' tables are (plugins/settings.py): unknown key or a value of another type than its
default, one line each.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketnode.plugins.host import LIQUIDITY, PluginHost, plugin_host
from marketnode.plugins.settings import declared_tables, merge_settings

from ..core.decimals import parse_decimal
from ..core.markets import ConfigError

SECTION = "liquidity"
REQUIRED = ("strategy", "market", "peer", "owner")
OPTIONAL: dict[str, Any] = {
    "base": "0",
    "quote": "0",
    "start_price": "0",
    "refresh_s": 1.0,
    "volatility_window_s": 60.0,
    "flow_window_s": 30.0,
    "enabled": True,
}
"""Instance keys with their defaults: holdings at the start (decimal text, asset units), the
price to quote around while the market has no other quotes and no fill yet ("0": none), the
timer between refreshes (a fill refreshes at once), the windows of volatility and flow."""


@dataclass(frozen=True)
class Instance:
    """One configured liquidity instance, its strategy's settings in effect."""

    name: str
    strategy: str
    market: str
    peer: str
    owner: str
    base: str
    quote: str
    start_price: str
    refresh_s: float
    volatility_window_s: float
    flow_window_s: float
    enabled: bool
    settings: dict[str, Any]


def load_instances(config_path: Path, host: PluginHost | None = None) -> list[Instance]:
    """The `[liquidity.NAME]` tables of a home's config.toml; ConfigError, one line, for a
    mistake in one."""
    try:
        document = tomllib.loads(config_path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{config_path}: cannot be read: {error}") from None
    return parse_instances(document.get(SECTION, {}), str(config_path), host)


def parse_instances(
    tables: Any, source: str = "config.toml", host: PluginHost | None = None
) -> list[Instance]:
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: [{SECTION}]: must hold [{SECTION}.NAME] tables")
    declared = declared_tables(host or plugin_host(LIQUIDITY))
    instances = []
    for name, table in tables.items():
        where = f"{source}: [{SECTION}.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        instances.append(_instance(name, table, declared, where, source))
    _check_distinct(instances, source)
    return instances


def _instance(
    name: str, table: dict[str, Any], declared: dict[str, dict[str, Any]], where: str, source: str
) -> Instance:
    for key in REQUIRED:
        if not isinstance(table.get(key), str) or not table[key]:
            raise ConfigError(f"{where}: {key}: missing (a non-empty string)")
    own = {key: table.get(key, default) for key, default in OPTIONAL.items()}
    for key, default in OPTIONAL.items():
        value = own[key]
        if isinstance(default, float) and (type(value) not in (int, float) or value <= 0):
            raise ConfigError(f"{where}: {key}: must be a positive number, got {value!r}")
        if isinstance(default, str) and not _non_negative_decimal(value):
            raise ConfigError(f"{where}: {key}: must be a decimal string like '100', got {value!r}")
        if isinstance(default, bool) and type(value) is not bool:
            raise ConfigError(f"{where}: {key}: must be true or false, got {value!r}")
    strategy = table["strategy"]
    instance_keys = {*REQUIRED, *OPTIONAL}
    rest = {key: value for key, value in table.items() if key not in instance_keys}
    if strategy not in declared:
        raise ConfigError(
            f"{where}: strategy: no installed liquidity strategy is called {strategy!r} "
            f"(installed: {', '.join(sorted(declared))})"
        )
    settings = merge_settings({name: declared[strategy]}, {name: rest}, SECTION, source,
                              LIQUIDITY.noun)[name]  # fmt: skip
    return Instance(
        name, strategy, table["market"], table["peer"], table["owner"].lower(), own["base"],
        own["quote"], own["start_price"], float(own["refresh_s"]),
        float(own["volatility_window_s"]), float(own["flow_window_s"]), own["enabled"], settings,
    )  # fmt: skip


def _non_negative_decimal(value: Any) -> bool:
    parsed = parse_decimal(value) if isinstance(value, str) else None
    return parsed is not None and parsed[0] >= 0


def _check_distinct(instances: list[Instance], source: str) -> None:
    """Two instances of one owner in one market would trade with each other (the node's STP
    would cancel them) and mix their inventories: refused."""
    seen: dict[tuple[str, str], str] = {}
    for instance in instances:
        key = (instance.owner, instance.market)
        if key in seen:
            raise ConfigError(
                f"{source}: [{SECTION}.{instance.name}]: owner {instance.owner} already quotes "
                f"{instance.market} in [{SECTION}.{seen[key]}]; give each instance its own owner"
            )
        seen[key] = instance.name

"""Known market makers in the analytics store: the owners of the node's liquidity instances
and those an operator declares.

A `[liquidity.NAME]` table names the owner its instance quotes as and the market it quotes in
(node/liquidity/config.py); that owner is a market maker there, and the partner detectors do not
read its fills as wash (plugins/partners.py says why, and what is still seen). The rows from
config.toml are made again whenever the analytics process starts and whenever `mnode integrity
scan` or `mnode analytics sync` runs, so an instance added, renamed or removed is known as it
now is; an operator's declarations (`mnode integrity maker`) stay until withdrawn.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import duckdb

from marketnode.plugins.host import LIQUIDITY as LIQUIDITY_PLUGINS
from marketnode.plugins.host import plugin_host
from marketnode.plugins.settings import declared_tables

from ..core.markets import ConfigError

LIQUIDITY, OPERATOR = "liquidity", "operator"
"""Where a known maker comes from: a `[liquidity.NAME]` table, or an operator's declaration."""


def configured_makers(
    instances: dict[str, Any], strategy_defaults: dict[str, dict[str, Any]]
) -> list[tuple[str, str, str, str, str, str, str]]:
    """(instance, owner, market, strategy, base, quote, fee_bps) of each `[liquidity.NAME]`
    table that names an owner and a market; `fee_bps` the table's, else its strategy's default
    (`strategy_defaults`: what the liquidity plugins declare). The owner is lowercased, as the
    liquidity process does; a table with a mistake in another key is still its owner's (the
    liquidity process refuses it in one line, but the trades it made before are that owner's
    quoting)."""
    found = []
    for name, table in sorted(instances.items()):
        if not isinstance(table, dict):
            continue
        owner, market = table.get("owner"), table.get("market")
        if isinstance(owner, str) and owner and isinstance(market, str) and market:
            strategy = str(table.get("strategy", ""))
            base, quote = _amount(table.get("base", "0")), _amount(table.get("quote", "0"))
            default_fee = strategy_defaults.get(strategy, {}).get("fee_bps", 0)
            fee_bps = _amount(table.get("fee_bps", default_fee))
            found.append((name, owner.lower(), market, strategy, base, quote, fee_bps))
    return found


def _amount(value: object) -> str:
    """A holding or a fee as decimal text ("0" for what is not one: the liquidity process's
    own check of the table says so)."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return "0"
    return str(amount) if amount.is_finite() and amount >= 0 else "0"


def record_configured_makers(
    connection: duckdb.DuckDBPyConnection, instances: dict[str, Any]
) -> int:
    """Make the liquidity instances' rows of `known_makers`, and `liquidity_instances` (what
    their books start from: books.py), those of `instances` (config.toml's `[liquidity]`
    tables), in one transaction; how many there are."""
    try:
        defaults = declared_tables(plugin_host(LIQUIDITY_PLUGINS))
    except ConfigError:  # two strategies of one name: the liquidity process says so
        defaults = {}
    rows = configured_makers(instances, defaults)
    connection.execute("BEGIN TRANSACTION")
    try:
        connection.execute("DELETE FROM known_makers WHERE source = ?", [LIQUIDITY])
        connection.execute("DELETE FROM liquidity_instances")
        connection.execute("DELETE FROM liquidity_books")  # booked again from the history
        for instance, owner, market, strategy, base, quote, fee_bps in rows:
            connection.execute(
                "INSERT INTO known_makers VALUES (?, ?, ?, ?, NULL, now())",
                [owner, market, instance, LIQUIDITY],
            )
            connection.execute(
                "INSERT INTO liquidity_instances VALUES (?, ?, ?, ?, CAST(? AS DECIMAL(38, 12)), "
                "CAST(? AS DECIMAL(38, 12)), CAST(? AS DECIMAL(38, 12)))",
                [instance, owner, market, strategy, base, quote, fee_bps],
            )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(rows)


def declare_maker(
    connection: duckdb.DuckDBPyConnection, owner: str, market: str | None, reason: str
) -> None:
    """An operator's declaration: `owner` makes `market` (None: every market)."""
    forget_maker(connection, owner, market)
    connection.execute(
        "INSERT INTO known_makers VALUES (?, ?, NULL, ?, ?, now())",
        [owner, market, OPERATOR, reason],
    )


def forget_maker(connection: duckdb.DuckDBPyConnection, owner: str, market: str | None) -> int:
    """Withdraw an operator's declaration (a liquidity instance's owner stays known while its
    table is in config.toml); how many rows went."""
    found = connection.execute(
        "DELETE FROM known_makers WHERE source = ? AND owner = ? AND market IS NOT DISTINCT FROM ?"
        " RETURNING owner",
        [OPERATOR, owner, market],
    ).fetchall()
    return len(found)


KNOWN_MAKERS = """
SELECT owner, coalesce(market, '*') AS market, source, coalesce(instance, reason, '') AS why,
       strftime(time, '%Y-%m-%dT%H:%M:%SZ') AS since
FROM known_makers ORDER BY owner, market, source
"""
"""Every known maker, for `mnode integrity makers` (market '*': every market)."""

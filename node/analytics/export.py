"""The analytics tables as Parquet files, for tools that read a data lake rather than DuckDB.

Through a running node, exports go below the home's `exports/` folder only (`export_target`):
the analytics process writes nowhere an operator's request did not name inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

EXPORTED_TABLES = ("trades", "events")
EXPORTS_FOLDER = "exports"
"""The home's folder exports through the node go into."""


class ExportError(Exception):
    """An export that cannot be written where it was asked (one line, for the operator)."""


def export_target(requested: str, allowed: Sequence[Path]) -> Path:
    """Where `requested` points (relative paths are taken in the first allowed folder), if
    that is inside one of the `allowed` folders (resolved: `..` and links are followed)."""
    target = (allowed[0] / requested).resolve()
    if not any(target.is_relative_to(folder) for folder in allowed):
        folders = ", ".join(str(folder) for folder in allowed)
        raise ExportError(f"{requested}: exports go below {folders}")
    return target


def export_parquet(connection: duckdb.DuckDBPyConnection, directory: Path) -> list[str]:
    """Trades and events as Parquet under `directory`, partitioned by market and date (hive
    layout: trades/market=PUNK-ETH/date=2026-11-28/...). Returns the tables written; raises
    ExportError when the folder cannot be made."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise ExportError(f"{directory}: exists and is not a folder") from None
    except OSError as error:
        raise ExportError(f"{directory}: cannot create the folder: {error.strerror}") from None
    for table in EXPORTED_TABLES:
        target = str(directory / table).replace("'", "''")
        connection.execute(
            f"COPY (SELECT *, CAST(time AS DATE) AS date FROM {table}) TO '{target}' "
            "(FORMAT PARQUET, PARTITION_BY (market, date), OVERWRITE_OR_IGNORE)"
        )
    return list(EXPORTED_TABLES)

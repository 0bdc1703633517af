"""The analytics tables as Parquet files, for tools that read a data lake rather than DuckDB."""

from __future__ import annotations

from pathlib import Path

import duckdb

EXPORTED_TABLES = ("trades", "events")


def export_parquet(connection: duckdb.DuckDBPyConnection, directory: Path) -> list[str]:
    """Trades and events as Parquet under `directory`, partitioned by market and date (hive
    layout: trades/market=PUNK-ETH/date=2026-11-28/...). Returns the tables written."""
    directory.mkdir(parents=True, exist_ok=True)
    for table in EXPORTED_TABLES:
        target = str(directory / table).replace("'", "''")
        connection.execute(
            f"COPY (SELECT *, CAST(time AS DATE) AS date FROM {table}) TO '{target}' "
            "(FORMAT PARQUET, PARTITION_BY (market, date), OVERWRITE_OR_IGNORE)"
        )
    return list(EXPORTED_TABLES)

"""The names other modules import from the analytics store, from before it was split into
duckdb_store.py (the DuckDB file and schema), batch.py, writer.py, follower.py and export.py.
Import them from those modules; these go once nothing imports them from here.
"""

from __future__ import annotations

from .duckdb_store import SCHEMA, AnalyticsStore
from .export import export_parquet
from .follower import JournalFollower

__all__ = ["SCHEMA", "AnalyticsStore", "JournalFollower", "export_parquet"]

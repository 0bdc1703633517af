"""One node's trades and requotes since the last export, as Parquet, for a scan across nodes.

A wash ring whose legs trade on different nodes is seen by no node's own analytics: each
follows its own journal. The cluster scan brings every node's trades to one place as Parquet
files (the data lake format DuckDB reads in one query) rather than as a stream: the analytics
store already exports Parquet, a file is written whole or not at all, and a scan needs the
windows' whole history anyway, which files kept in the cluster's folder give it without a
stream's retention to size (docs/cluster.md says more).

Each node's journal is followed into a DuckDB file of the scan's own (the follower the node's
analytics process runs, replaying the journal read-only: LMDB lets a reader beside the running
node), so each scan replays only what was committed since the last one, and writes only the
trades and requotes after the last export: `trades/NODE-FIRST.parquet` and
`requotes/NODE-FIRST.parquet`, FIRST the first seq in them. A file is written under a temporary
name and renamed, then the mark moves; an export stopped between the two writes the same file
again, with more in it, so no trade is in two files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ..core.markets import ConfigError
from ..home.layout import Home
from ..store.lmdb_store import Store, StoreError
from .duckdb_store import AnalyticsStore, AnalyticsStoreError
from .follower import JournalFollower

TRADES = """
SELECT $node AS node, t.seq, t.time, t.market, a.asset, t.price, t.qty, t.notional, t.buyer,
       t.seller
FROM trades t JOIN scan_assets a USING (market)
WHERE t.seq > $since AND t.seq <= $until AND t.buyer IS NOT NULL AND t.seller IS NOT NULL
"""
REQUOTES = """
SELECT $node AS node, e.seq, e.time, e.market, a.asset, e.op, e.owner
FROM events e JOIN scan_assets a USING (market)
WHERE e.seq > $since AND e.seq <= $until AND e.kind = 'accepted'
  AND e.op IN ('cancel', 'replace') AND e.owner IS NOT NULL
"""
"""Cancels and replaces accepted: they tell a market maker, who requotes all day, from a wash
wallet, whose orders are meant to fill (the trade-cycle detector leaves requoting wallets out)."""
KINDS = {"trades": TRADES, "requotes": REQUOTES}
MARK = "CREATE TABLE IF NOT EXISTS scan_export (seq BIGINT NOT NULL)"


class ExportFailed(Exception):
    """A node's journal or the scan's copy of it cannot be read (one line, for the operator)."""


@dataclass(frozen=True)
class NodeExport:
    node: str
    since: int
    """The last seq exported before this export."""
    until: int
    """The last seq exported now."""
    trades: int
    requotes: int


def export_node(node: str, home: Home, follower_file: Path, folder: Path) -> NodeExport:
    """Bring `follower_file` up to the node's journal, then write the trades and requotes
    after the last export into `folder`/trades and `folder`/requotes."""
    try:
        config = home.config()
        store = Store(home.store_path(config), readonly=True)
    except (ConfigError, StoreError, OSError) as error:
        raise ExportFailed(f"node {node}: cannot read its journal: {error}") from None
    follower_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        analytics = AnalyticsStore(follower_file)
    except AnalyticsStoreError as error:
        store.close()
        raise ExportFailed(f"node {node}: {error}") from None
    try:
        JournalFollower(store, analytics).sync()
        assets = [(spec.symbol, spec.base) for spec in config.markets]
        return _write_parquet(analytics.connection, node, assets, folder)
    except duckdb.Error as error:
        raise ExportFailed(f"node {node}: {str(error).splitlines()[0]}") from None
    finally:
        analytics.close()
        store.close()


def _write_parquet(
    connection: duckdb.DuckDBPyConnection, node: str, assets: list[tuple[str, str]], folder: Path
) -> NodeExport:
    connection.execute(MARK)
    connection.execute("CREATE OR REPLACE TEMP TABLE scan_assets (market VARCHAR, asset VARCHAR)")
    if assets:
        connection.executemany("INSERT INTO scan_assets VALUES (?, ?)", assets)
    row = connection.execute("SELECT max(seq) FROM scan_export").fetchone()
    since = row[0] or 0
    until = connection.execute(
        "SELECT greatest((SELECT coalesce(max(seq), 0) FROM trades), "
        "(SELECT coalesce(max(seq), 0) FROM events))"
    ).fetchone()[0]
    counts = dict.fromkeys(KINDS, 0)
    if until > since:
        parameters = {"node": node, "since": since, "until": until}
        for kind, query in KINDS.items():
            counts[kind] = _copy(
                connection, query, parameters, folder / kind / f"{node}-{since + 1}"
            )
        connection.execute("DELETE FROM scan_export")
        connection.execute("INSERT INTO scan_export VALUES (?)", [until])
    return NodeExport(node, since, max(since, until), counts["trades"], counts["requotes"])


def _copy(connection: duckdb.DuckDBPyConnection, query: str, parameters: dict, stem: Path) -> int:
    """The rows of `query` into `stem`.parquet, whole or not at all; how many (none: no file)."""
    connection.execute(f"CREATE OR REPLACE TEMP TABLE scan_rows AS {query}", parameters)
    count = connection.execute("SELECT count(*) FROM scan_rows").fetchone()[0]
    if count:
        stem.parent.mkdir(parents=True, exist_ok=True)
        partial = stem.with_suffix(".parquet.partial")
        target = str(partial).replace("'", "''")
        connection.execute(f"COPY scan_rows TO '{target}' (FORMAT PARQUET)")
        os.replace(partial, stem.with_suffix(".parquet"))
    connection.execute("DROP TABLE scan_rows")
    return count

"""`mnode analytics sync`, `mnode sql`, `mnode trades`: the home's DuckDB analytics store."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import duckdb
import typer

from marketnode.node.analytics.duckdb_store import AnalyticsStore, first_line, is_damage
from marketnode.node.analytics.export import ExportError, export_parquet
from marketnode.node.analytics.follower import JournalFollower
from marketnode.node.analytics.makers import record_configured_makers
from marketnode.node.analytics.service import plain
from marketnode.node.client import ClientError
from marketnode.node.home.layout import Home
from marketnode.node.home.permissions import keep_new_files_private
from marketnode.node.store.lmdb_store import Store

from .common import (
    EXIT_STORE,
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    operator_errors,
    print_json,
    require_home,
    why_no_node_runs,
)
from .node import admin_call, admin_result
from .times import SinceOption, UntilOption, time_clauses

app = typer.Typer(help="The analytics store (DuckDB), fed from the journal.", no_args_is_help=True)


@app.command("sync")
def sync_command(home: HomeOption = None) -> None:
    """Append to the analytics store every event of the journal it does not hold yet, and book
    the `[liquidity.NAME]` instances' trades (liquidity_pnl) as config.toml now has them."""
    node_home = require_home(home)
    with operator_errors():
        config = node_home.config()
        store = Store(node_home.store_path(config), readonly=True)
    try:
        analytics = open_analytics(node_home, read_only=False)
        try:
            record_configured_makers(analytics.connection, config.liquidity.instances)
            written = JournalFollower(store, analytics).sync()
            position = analytics.position()
        finally:
            analytics.close()
    finally:
        store.close()
    typer.echo(f"analytics: {written} events appended; journal position {position}", err=True)


def sql_command(
    query: Annotated[str, typer.Argument(help="A SQL query (DuckDB dialect).", show_default=False)],
    home: HomeOption = None,
    json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Run a read-only SQL query on the analytics store: tables events, trades, alerts, links,
    known_makers, chain_trades, settlement_progress; views wallet_trades, market_days,
    top_wallets, counterparties, liquidity_pnl, market_mids, settlement_states;
    ohlcv(INTERVAL '1 minute')."""
    columns, rows = run_query(require_home(home), query, [])
    print_rows(columns, rows, json, as_csv)


def trades_command(
    market: Annotated[str | None, typer.Option("--market", help="Only this market.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only trades of this owner.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N trades.")] = 100,
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Trades, newest first."""
    node_home = require_home(home)
    clauses, parameters = time_clauses(since, until)
    if market is not None:
        require_market(node_home, market)
        clauses.append("market = ?")
        parameters.append(market)
    if owner is not None:
        clauses.append("(maker_owner = ? OR taker_owner = ?)")
        parameters += [owner, owner]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    query = (
        "SELECT seq, strftime(time, '%Y-%m-%dT%H:%M:%S.%fZ') AS time, market, "
        f"{_decimal_text('price')} AS price, {_decimal_text('qty')} AS qty, maker_owner, "
        "taker_owner, "
        f"aggressor FROM trades {where} ORDER BY seq DESC LIMIT {limit}"
    )
    columns, rows = run_query(node_home, query, parameters)
    print_rows(columns, rows, json, False)


def require_market(node_home: Home, market: str) -> None:
    """A market of the home's configuration, or one line and exit 2 naming the markets."""
    with operator_errors():
        known = [spec.symbol for spec in node_home.config().markets]
    if market not in known:
        fail(f"unknown market {market!r} (markets: {', '.join(known) or 'none'})", EXIT_USAGE)


def stats_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """Per market: trades, volume, notional, wallets, last price, first and last trade, and the
    share of notional the integrity alerts name as wash (from the last scan)."""
    query = (
        "SELECT market, count(*) AS trades, "
        f"{_decimal_text('sum(qty)')} AS volume, {_decimal_text('sum(notional)')} AS notional, "
        "any_value(wallets) AS wallets, "
        f"{_decimal_text('arg_max(price, seq)')} AS last_price, "
        "strftime(min(time), '%Y-%m-%dT%H:%M:%SZ') AS first_trade, "
        "strftime(max(time), '%Y-%m-%dT%H:%M:%SZ') AS last_trade, "
        "any_value(w.wash_share) AS wash_share "
        "FROM trades JOIN (SELECT market, count(DISTINCT wallet) AS wallets FROM wallet_trades "
        "GROUP BY market) USING (market) "
        "JOIN (SELECT market, wash_share FROM market_wash) w USING (market) "
        "GROUP BY market ORDER BY market"
    )
    columns, rows = run_query(require_home(home), query, [])
    print_rows(columns, rows, json, False)


export_app = typer.Typer(help="Export the analytics store.", no_args_is_help=True)


@export_app.command("parquet")
def export_parquet_command(
    directory: Annotated[Path, typer.Argument(help="Folder to write into.", show_default=False)],
    home: HomeOption = None,
) -> None:
    """Trades and events as Parquet, partitioned by market and date (hive layout). Through a
    running node DIR is taken below the home's exports/ folder (the node writes nowhere else);
    with the node stopped, DIR is where you say."""
    node_home = require_home(home)
    requested = str(directory if not directory.is_absolute() else directory.resolve())
    answered, result = through_node(node_home, "export", path=requested)
    if answered:
        typer.echo(f"exported {', '.join(result['tables'])} to {result['path']}", err=True)
        return
    target = directory.resolve()
    analytics = open_analytics(node_home, read_only=True)
    try:
        try:
            tables = export_parquet(analytics.connection, target)
        except ExportError as error:
            fail(f"export: {error}", EXIT_USAGE)
        except duckdb.Error as error:
            fail_on_duckdb(analytics.path, "export", error)
    finally:
        analytics.close()
    typer.echo(f"exported {', '.join(tables)} to {target}", err=True)


@app.command("lag")
def lag_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """How far the running node's analytics store is behind its journal."""
    lag = admin_call(require_home(home), "analytics")
    if json:
        print_json(lag)
    else:
        typer.echo(
            f"analytics at journal position {lag['position']} of {lag['journal_length']}: "
            f"{lag['lag_commands']} commands, {lag['lag_s']} s behind"
        )


def through_node(node_home: Home, cmd: str, **arguments: object) -> tuple[bool, Any]:
    """Ask the running node (its analytics process holds the file): (True, result), or
    (False, None) when no node answers, so the caller opens the file itself. A refusal is one
    line and exit 2."""
    if why_no_node_runs(node_home) is not None:
        return False, None
    try:
        return True, admin_result(node_home, cmd, **arguments)
    except ClientError as error:
        if not error.unreachable:
            fail(str(error), EXIT_USAGE)
        return False, None


def run_query(node_home: Home, query: str, parameters: list) -> tuple[list[str], list]:
    """Columns and rows of a read-only query: through the running node (whose analytics process
    holds the file), or on the file itself when no node answers."""
    answered, result = through_node(node_home, "sql", query=query, params=parameters)
    if answered:
        return result["columns"], [tuple(row) for row in result["rows"]]
    analytics = open_analytics(node_home, read_only=True)
    try:
        try:
            cursor = analytics.connection.execute(query, parameters)
            return [column[0] for column in cursor.description or []], cursor.fetchall()
        except duckdb.Error as error:
            fail_on_duckdb(analytics.path, "sql", error)
    finally:
        analytics.close()


def fail_on_duckdb(path: Path, what: str, error: duckdb.Error) -> NoReturn:
    """A damaged analytics file is exit 4 and says so; a mistake in the request is exit 2."""
    if is_damage(error):
        fail(f"{path}: the analytics store is damaged ({first_line(error)})", EXIT_STORE)
    fail(f"{what}: {first_line(error)}", EXIT_USAGE)


def _decimal_text(column: str) -> str:
    """SQL for a DECIMAL column as canonical text: no trailing zeros, no trailing point."""
    return f"rtrim(rtrim(CAST({column} AS VARCHAR), '0'), '.')"


def open_analytics(node_home: Home, read_only: bool) -> AnalyticsStore:
    with operator_errors():
        path = node_home.path / node_home.config().analytics.file
    if read_only and not path.exists():
        fail(f"{path}: no analytics store yet; run `mnode analytics sync`", EXIT_STORE)
    if not read_only:  # DuckDB makes the file and its write-ahead log as the umask says
        keep_new_files_private()
    with operator_errors():
        return AnalyticsStore(path, read_only=read_only)


def print_rows(columns: list[str], rows: list[tuple], json: bool, as_csv: bool) -> None:
    if json:
        print_json([dict(zip(columns, (plain(v) for v in row), strict=True)) for row in rows])
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([_cell(value) for value in row] for row in rows)
    else:
        typer.echo("\t".join(columns))
        for row in rows:
            typer.echo("\t".join(_cell(value) for value in row))


def _cell(value: Any) -> str:
    """A value as a column of text: nothing for NULL, a list's items joined with commas."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_cell(item) for item in value)
    return str(value)

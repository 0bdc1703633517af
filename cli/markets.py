"""`mnode markets`: the running node's markets; halt and resume trading in one."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from .cluster import ClusterOption, cluster_failed, local_cluster
from .common import HomeOption, JsonOption, print_json, require_home
from .node import admin_call

app = typer.Typer(help="List, halt and resume the running node's markets.", no_args_is_help=True)

Market = Annotated[str, typer.Argument(help="Market symbol.", show_default=False)]


@app.command("list")
def list_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """Each market with its best prices, resting orders and whether it is halted."""
    rows = admin_call(require_home(home), "markets")
    if json:
        print_json(rows)
        return
    for row in rows:
        state = "HALTED" if row["halted"] else "trading"
        typer.echo(
            f"{row['market']:<14} {state:<8} bid {row['best_bid'] or '-':>12}  "
            f"ask {row['best_ask'] or '-':>12}  {row['resting_orders']} resting"
        )


@app.command("halt")
def halt_command(market: Market, home: HomeOption = None) -> None:
    """Stop taking commands for MARKET (they are rejected market_halted); resting orders stay."""
    result = admin_call(require_home(home), "halt", market=market)
    typer.echo(f"halted: {', '.join(result['halted'])}", err=True)


@app.command("resume")
def resume_command(market: Market, home: HomeOption = None) -> None:
    """Take commands for MARKET again."""
    result = admin_call(require_home(home), "resume", market=market)
    typer.echo(f"halted: {', '.join(result['halted']) or 'none'}", err=True)


@app.command("move")
def move_command(
    market: Market,
    to: Annotated[
        str, typer.Option("--to", help="The node to serve MARKET from now on.", show_default=False)
    ],
    cluster: ClusterOption = Path("cluster"),
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each node's answer.", min=0.1)
    ] = 10.0,
    json: JsonOption = False,
) -> None:
    """Move MARKET to node TO: halted on the node serving it, its book exported there and
    imported on TO (both journaled, the book's hash checked), trading resumed on TO, the
    directory changed by a compare-and-set. If TO cannot take it, the market trades where it
    was; a move that stopped half way, or whose node did not answer in time (exit 5), is
    finished (or undone) by asking for it again."""
    from marketnode.node.client import ClientError
    from marketnode.node.cluster.directory import DirectoryError
    from marketnode.node.cluster.local import ClusterError
    from marketnode.node.cluster.moving import move_market

    try:
        report = move_market(local_cluster(cluster), market, to, timeout)
    except (ClusterError, DirectoryError, ClientError) as error:
        cluster_failed(error)
    if json:
        print_json(asdict(report))
        return
    typer.echo(
        f"moved {report.market} from {report.source} to {report.destination}: "
        f"{report.orders} resting orders, book hash {report.hash}, directory version "
        f"{report.version}",
        err=True,
    )

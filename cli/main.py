"""`mnode`: the operator's command line for a marketnode home."""

from __future__ import annotations

from typing import Annotated

import typer

from marketnode.node import __version__

from . import (
    analytics,
    bench,
    book,
    dashboard,
    demo,
    init,
    integrity,
    load,
    markets,
    metrics,
    node,
    order,
    peers,
    replay,
    scale,
    verify,
    watch,
)

app = typer.Typer(
    name="mnode",
    help="Run and inspect a marketnode: a self-hosted matching node for digital-asset markets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mnode {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Exit codes: 0 ok, 1 a check failed, 2 usage or input error, 3 configuration error,
    4 store unavailable, 5 node not running, 6 command rejected, 130 interrupted."""


app.command("init")(init.init_command)
app.command("replay")(replay.replay_command)
app.command("book")(book.book_command)
app.command("verify")(verify.verify_command)
app.command("start")(node.start_command)
app.command("stop")(node.stop_command)
app.command("status")(node.status_command)
app.command("metrics")(metrics.metrics_command)
app.add_typer(peers.app, name="peers")
app.add_typer(markets.app, name="markets")
app.command("load")(load.load_command)
app.command("watch")(watch.watch_command)
app.add_typer(order.app, name="order")
app.add_typer(analytics.app, name="analytics")
app.command("sql")(analytics.sql_command)
app.command("trades")(analytics.trades_command)
app.command("stats")(analytics.stats_command)
app.add_typer(analytics.export_app, name="export")
app.add_typer(integrity.app, name="integrity")
app.add_typer(integrity.alerts_app, name="alerts")
app.add_typer(bench.app, name="bench")
app.add_typer(scale.app, name="scale")
app.command("demo")(demo.demo_command)
app.command("dashboard")(dashboard.dashboard_command)

"""`mnode`: the operator's command line for a marketnode home.

The commands are listed in `COMMANDS` by name, module and one-line help, and a command's
module is imported only when that command runs or its own --help is asked: the modules pull in
DuckDB, ZeroMQ, Textual and the node, which `mnode --version` and `mnode --help` do without.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from marketnode.node import __version__


@dataclass(frozen=True)
class CommandEntry:
    """One command of `mnode`: `attribute` of `marketnode.cli.<module>` is the command's
    function, or the `typer.Typer` of a command group; `help` is its line in `mnode --help`
    (tests/test_cli_startup.py checks it against the command's own help)."""

    name: str
    module: str
    attribute: str
    help: str

    def summary(self) -> TyperCommand:
        """A stand-in that only names the command and its help, for the listing."""
        return TyperCommand(self.name, help=self.help)

    def load(self) -> TyperCommand | TyperGroup:
        """The command itself, its module imported now."""
        target = getattr(importlib.import_module(f"marketnode.cli.{self.module}"), self.attribute)
        holder = typer.Typer(rich_markup_mode=MARKUP_MODE)
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=self.name)
        else:
            holder.command(self.name)(target)
        command = typer.main.get_group(holder).commands[self.name]
        hide_flag_types(command)
        return command


MARKUP_MODE = "markdown"
"""How help text is read: as Markdown, so a docstring's lines wrapped in the source are one
paragraph, wrapped again at words to the terminal (Typer's "rich" mode keeps each line end and
breaks sentences in the middle at 80 columns)."""


def hide_flag_types(command: TyperCommand | TyperGroup) -> None:
    """Show no type beside a flag (Typer writes `<bool>` as if it took a value), for the
    command, its --help and, for a group, each of its commands."""
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            hide_flag_types(sub)


COMMANDS = (
    CommandEntry("init", "init", "init_command", "Create a node home: config.toml (the "
                 "documented defaults), data folder, CURVE keys."),
    CommandEntry("replay", "replay", "replay_command", "Run each command of FILE through the "
                 "home's engine and print one JSON event per line."),
    CommandEntry("book", "book", "book_command", "Print SYMBOL's book, best price first. Safe "
                 "while another process writes the store."),
    CommandEntry("verify", "verify", "verify_command", "Replay the journal into a fresh engine "
                 "and compare it with the store; check the analytics store's events against the "
                 "journal."),
    CommandEntry("start", "node", "start_command", "Run the node in the foreground until "
                 "Ctrl-C, SIGTERM or `mnode stop`."),
    CommandEntry("stop", "node", "stop_command", "Ask the running node to finish its batch, "
                 "commit and exit; wait until it has."),
    CommandEntry("status", "node", "status_command", "The running node's identity, endpoints, "
                 "sequence, books and peers."),
    CommandEntry("metrics", "metrics", "metrics_command", "The node's latest per-second sample "
                 "(rates, latency, resources) and its counters; with --json, also the last "
                 "hour's samples."),
    CommandEntry("load", "load", "load_command", "Offer a realistic order flow to the running "
                 "node and report what came back."),
    CommandEntry("watch", "watch", "watch_command", "Follow a market's trades and top of book "
                 "as they happen."),
    CommandEntry("sql", "analytics", "sql_command", "Run a read-only SQL query on the analytics "
                 "store: tables events, trades, alerts, links, known_makers, chain_trades, "
                 "settlement_progress; views wallet_trades, market_days, top_wallets, "
                 "counterparties, liquidity_pnl, market_mids, settlement_states; "
                 "ohlcv(INTERVAL '1 minute')."),
    CommandEntry("trades", "analytics", "trades_command", "Trades, newest first."),
    CommandEntry("stats", "analytics", "stats_command", "Per market: trades, volume, notional, "
                 "wallets, last price, first and last trade, and the share of notional the "
                 "integrity alerts name as wash (from the last scan)."),
    CommandEntry("demo", "demo", "demo_command", "Start a node in a home of its own, trade on it "
                 "(a seeded flow, a drop, a wash ring, a pool's and a market maker's markets, "
                 "signed trades settled on the embedded chain) with the dashboard open (q "
                 "quits and stops everything), then say what it did: orders, trades, alerts "
                 "raised, scaling advice, how the liquidity quoted, what settled."),
    CommandEntry("dashboard", "dashboard", "dashboard_command", "Throughput, markets, the book, "
                 "integrity alerts, scaling advice and resources of a running node (keys 1-9 "
                 "switch panels, ? lists the keys, q quits)."),
    CommandEntry("settlement", "settlement", "app", "The relayer's settlement of trades on "
                 "chain: status, batches, one trade."),
    CommandEntry("chain", "chain", "app", "The chain the node settles on: deploy its "
                 "contracts (and, on a local test chain, fund the dev wallets)."),
    CommandEntry("peers", "peers", "app", "Register, list and revoke peers (reloaded by a "
                 "running node)."),
    CommandEntry("markets", "markets", "app", "List, halt and resume the running node's "
                 "markets."),
    CommandEntry("cluster", "cluster", "app", "A local cluster of nodes and its market "
                 "directory: up, status, down, apply, scan."),
    CommandEntry("order", "order", "app", "Submit, cancel and replace orders as a registered "
                 "peer."),
    CommandEntry("analytics", "analytics", "app", "The analytics store (DuckDB), fed from the "
                 "journal."),
    CommandEntry("export", "analytics", "export_app", "Export the analytics store."),
    CommandEntry("integrity", "integrity", "app", "Market-integrity detectors, linked "
                 "owners and known market makers."),
    CommandEntry("alerts", "integrity", "alerts_app", "Alerts raised by the integrity "
                 "detectors."),
    CommandEntry("bench", "bench", "app", "Benchmarks. Record results in docs/performance.md."),
    CommandEntry("scale", "scale", "app", "Scaling recommendations (current ones without a "
                 "subcommand)."),
    CommandEntry("liquidity", "liquidity", "app", "Automated liquidity: instances, state, "
                 "start/stop, eval."),
    CommandEntry("plugins", "plugins", "app", "Installed plugins (detectors, scaling "
                 "policies, liquidity strategies): origin, hooks, settings."),
)  # fmt: skip
"""Every command, in the order `mnode --help` lists them."""


class LazyGroup(TyperGroup):
    """The top-level group: commands come from `COMMANDS`, each loaded when it is resolved;
    while the group's own help is written, the listing gets stand-ins instead."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.entries = {entry.name: entry for entry in COMMANDS}
        self.commands = {name: entry.summary() for name, entry in self.entries.items()}
        """The stand-ins: `resolve_command` suggests a close name from these on a typo."""
        self.listing = False

    def get_command(self, ctx: typer.Context, cmd_name: str) -> TyperCommand | TyperGroup | None:
        entry = self.entries.get(cmd_name)
        if entry is None:
            return None
        return self.commands[cmd_name] if self.listing else entry.load()

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        hide_flag_types(self)  # its own options: --version, --help and the completion's
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False

    def shell_complete(self, ctx: typer.Context, incomplete: str) -> list[Any]:
        """Command names for the shell, from the stand-ins: listing them imports no module."""
        self.listing = True
        try:
            return super().shell_complete(ctx, incomplete)
        finally:
            self.listing = False


app = typer.Typer(
    name="mnode",
    cls=LazyGroup,
    help="Run and inspect a marketnode: a self-hosted matching node for digital-asset markets.",
    no_args_is_help=True,
    rich_markup_mode=MARKUP_MODE,
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

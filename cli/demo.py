"""`mnode demo`: a node, a realistic flow with a drop and a wash ring, liquidity markets and
trades that settle on the embedded chain, and what came of it."""

from __future__ import annotations

import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from marketnode.node.client import address_of_home
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.node.home.layout import Home

from .common import EXIT_USAGE, JsonOption, fail, print_json
from .dashboard import open_dashboard


def demo_command(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="A new folder for the demo's home (default: a temporary one, removed afterwards).",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[float, typer.Option("--duration", min=10, help="Seconds of trading.")] = 30,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            min=100,
            help="Orders/s of the steady flow (the drop at 2.25 times it). Without it the demo "
            "measures what this machine sustains and offers 40% of that, the drop 90%.",
            show_default=False,
        ),
    ] = None,
    headless: Annotated[
        bool,
        typer.Option("--headless", help="No dashboard: a line a second, then the summary."),
    ] = False,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin",
            help="Open the dashboard with its actions (halt a market, "
            "disable a peer, label an alert).",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Start a node in a home of its own, trade on it (a seeded flow, a drop, a wash ring, a
    pool's and a market maker's markets, signed trades settled on the embedded chain) with the
    dashboard open (q quits and stops everything), then say what it did: orders, trades, alerts
    raised, scaling advice, how the liquidity quoted, what settled."""
    from marketnode.node.tools.demo import run_demo

    if home is not None and home.exists() and any(home.iterdir()):
        fail(f"{home}: not empty; the demo makes a new home", EXIT_USAGE)
    if not headless and not sys.stdout.isatty():
        typer.echo("mnode: stdout is not a terminal: the demo runs headless (--headless)", err=True)
        headless = True
    watch = None if headless else partial(_open_dashboard, admin=admin)
    if home is not None:
        report = run_demo(home, duration, rate, _progress, watch, _note)
    else:
        with tempfile.TemporaryDirectory(prefix="mnode-demo-") as folder:
            report = run_demo(Path(folder) / "home", duration, rate, _progress, watch, _note)
    summary = report.summary()
    if json:
        print_json(summary)
        return
    typer.echo(summary_text(summary))


def summary_text(summary: dict[str, Any]) -> str:
    """The closing summary for a person: what the node did and what its final scan found (or,
    when analytics had not finished one, that the count is not final)."""
    ring = f"the wash ring traded {summary['ring_trades']} times and "
    alerts = f"{summary['alerts']} alerts ({', '.join(summary['alert_detectors'])})"
    if summary["final_scan"]:
        ring += "was flagged" if summary["ring_flagged"] else "was not flagged"
        found = f"{ring}; {alerts}"
    elif summary["ring_flagged"]:
        found = f"{ring}was flagged; {alerts} so far (analytics had not finished its final scan)"
    else:
        found = (f"{ring}was not flagged yet: analytics had not finished its final scan "
                 f"({alerts} so far, not a final count)")  # fmt: skip
    return (
        f"{summary['rate_reason']}\n"
        f"{summary['orders']:,} orders and {summary['trades']:,} trades "
        f"(peak {summary['orders_per_s_peak']:,} orders/s); {found}; "
        f"{summary['recommendations']} scaling recommendations"
        + "".join(f"\n  {line}" for line in summary["advice"])
        + "".join(f"\n{_liquidity_line(name, row)}" for name, row in summary["liquidity"].items())
        + f"\n{_settlement_line(summary)}"
    )


def _liquidity_line(name: str, row: dict[str, Any]) -> str:
    """How one liquidity instance quoted through the flow, from the node's journal."""
    where = f"liquidity {name} ({row.get('strategy') or 'instance'}, {row['market']})"
    if row["two_sided_from_s"] is None:
        return f"{where}: never quoted both sides"
    halted = f"; halted: {row['halted']}" if row.get("halted") else ""
    verdict = "quoted continuously" if row["quoted_continuously"] else "did not quote continuously"
    return (f"{where} {verdict}: both sides {row['two_sided_share']:.1%} of the flow's time, "
            f"a side empty {row['longest_empty_side_s']:.2f} s at the longest "
            f"({row['longest_empty_side_in_drop_s']:.2f} s in the drop), "
            f"{row['trades']:,} trades{halted}")  # fmt: skip


def _settlement_line(summary: dict[str, Any]) -> str:
    """What the signed trades came to on the embedded chain."""
    settlement = summary["settlement"]
    if settlement["phase"] == "failed":
        return f"settlement: the embedded chain failed: {settlement['error']}"
    if settlement["phase"] != "settling":
        unsettled = f"{summary['signed_trades']:,} signed {settlement['market']} trades unsettled"
        return f"settlement: the embedded chain was not set up before the demo ended; {unsettled}"
    line = (f"settlement: {summary['signed_trades']:,} signed {settlement['market']} trades, "
            f"{summary['settled_trades']:,} settled on the embedded chain, "
            f"{summary['settlement_failures']:,} failed")  # fmt: skip
    if settlement["pending"]:
        line += f", {settlement['pending']:,} not yet final"
    if settlement["gas_per_trade"]:
        line += (f" ({settlement['gas_per_trade']:,} gas a trade, final "
                 f"{settlement['lag_p50_s']:.1f} s after the trade at the median)")  # fmt: skip
    reasons = sorted({failure["reason"] for failure in settlement["failures"]})
    return line + (f"; reasons: {', '.join(reasons)}" if reasons else "")


def _progress(elapsed: float, latest: dict[str, Any]) -> None:
    """A line a second on stderr (with --json too: stdout keeps only the summary)."""
    typer.echo(
        f"{elapsed:5.0f} s  {latest.get('orders_per_s', 0):>9,.0f} orders/s  "
        f"{latest.get('trades_per_s', 0):>8,.0f} trades/s  "
        f"matching {latest.get('matching_busy', 0):.0%} busy",
        err=True,
    )


def _note(line: str) -> None:
    typer.echo(f"mnode demo: {line}", err=True)


def _open_dashboard(node_home: Home, why_these_rates: str, admin: bool) -> None:
    config = node_home.config()
    key = load_key_pair(node_home.keys_path(config) / f"{OPERATOR}.key_secret")
    open_dashboard(lambda: address_of_home(node_home), key, admin=admin,
                   note=f"demo: {why_these_rates}")  # fmt: skip
    typer.echo("mnode: the dashboard closed; stopping the demo's flow and node", err=True)

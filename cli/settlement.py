"""`mnode settlement`: what the relayer has settled, read from its state store in the home
(settlement/state.sqlite), read-only, so it is safe while the node and its relayer run."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from marketnode.node.chain.settlement_store import SettlementStore, state_path

from .common import (
    EXIT_CHECK_FAILED,
    EXIT_STORE,
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    print_json,
    require_home,
)

app = typer.Typer(
    help="The relayer's settlement of trades on chain: status, batches, one trade.",
    no_args_is_help=True,
)


@contextmanager
def settlement_state(home: Any) -> Iterator[SettlementStore]:
    """The relayer's state store, read-only; one line and exit 4 when it is missing or damaged."""
    node_home = require_home(home)
    try:
        store = SettlementStore(state_path(node_home.path), readonly=True)
    except (FileNotFoundError, sqlite3.Error) as error:
        fail(f"{error} ([settlement] enabled starts the relayer)", EXIT_STORE)
    try:
        yield store
    except sqlite3.Error as error:
        fail(f"{state_path(node_home.path)}: cannot read the settlement state: {error}", EXIT_STORE)
    finally:
        store.close()


@app.command("status")
def status_command(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Trades by settlement state, the journal position followed, settlement lag and gas and
    fee per trade, the batches in flight and the latest failures."""
    from marketnode.node.chain.relayer_service import summary

    with settlement_state(home) as store:
        shown = summary(store)
    if as_json:
        print_json(shown)
        return
    counts = shown["trades"]
    typer.echo(f"journal position {shown['position']}, next nonce {shown['next_nonce']}")
    typer.echo("trades: " + ", ".join(f"{count} {state}" for state, count in counts.items()))
    if shown["lag_p50_s"] is not None:
        typer.echo(
            f"settlement lag p50 {shown['lag_p50_s']} s, p99 {shown['lag_p99_s']} s; "
            f"{shown['gas_per_trade']:,} gas and {shown['fee_per_trade_gwei']:,} gwei a trade"
        )
    for batch in shown["batches_in_flight"]:
        where = f"in block {batch['block']}" if batch["block"] is not None else "in the mempool"
        typer.echo(f"batch {batch['id']} (nonce {batch['nonce']}) {where}: {batch['tx_hash']}")
    for failure in shown["failures"]:
        typer.echo(f"failed: trade {failure['seq']} {failure['market']} ({failure['reason']})")


@app.command("batches")
def batches_command(
    home: HomeOption = None,
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most batches shown.")] = 20,
) -> None:
    """The latest settlement batches, newest first."""
    with settlement_state(home) as store:
        batches = store.batches(limit)
    if as_json:
        print_json(batches)
        return
    for batch in batches:
        block = "-" if batch["block"] is None else batch["block"]
        typer.echo(
            f"{batch['id']:>6} nonce {batch['nonce']:>6} {batch['state']:<9} "
            f"{batch['trades']:>3} trades block {block} {batch['tx_hash']}"
            + (f" ({batch['reason']})" if batch["reason"] else "")
        )


@app.command("trade")
def trade_command(
    seq: Annotated[int, typer.Argument(help="The trade's seq (its engine sequence number).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """One trade's settlement state: pending, submitted (tx hash), confirmed (block), failed
    (reason)."""
    with settlement_state(home) as store:
        trade = store.trade(seq)
    if trade is None:
        fail(f"no signed trade with seq {seq} (trades of unsigned orders are not settled)",
             EXIT_USAGE)  # fmt: skip
    if as_json:
        print_json(trade)
        return
    detail = {"submitted": trade["tx_hash"], "confirmed": f"block {trade['block']}",
              "failed": trade["reason"]}.get(trade["state"])  # fmt: skip
    typer.echo(
        f"trade {seq} {trade['market']}: {trade['state']}" + (f" ({detail})" if detail else "")
    )


@app.command("eval")
def eval_command(
    as_json: JsonOption = False,
    seed: Annotated[int, typer.Option("--seed", help="The first seed of the traces.")] = 1,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Tuning seeds of every shape.")] = 8,
    held_out_seeds: Annotated[int, typer.Option(
        "--held-out-seeds", min=0, help="Held-out seeds of every shape (from 101).")] = 8,
) -> None:
    """Replay calm, spiky, daily-cycle, climbing and look-alike base-fee traces through the
    relayer's batching and fee timing, against sending every trade at once; exit 1 when the
    goal (>= 20% saved on the cyclic and spiky traces, no deadline missed) is missed."""
    from marketnode.node.tools.fee_traces import FAMILIES
    from marketnode.node.tools.settlement_eval import GOAL_SAVING, evaluate

    report = evaluate(seed, seeds, held_out_seeds=held_out_seeds)
    if as_json:
        print_json(report)
    else:
        for family in FAMILIES:
            for name, figures in report.get(family, {}).get("scenarios", {}).items():
                typer.echo(
                    f"{family:<8} {name:<10} saved {figures['saving']:.1%} (worst seed "
                    f"{figures['worst_seed_saving']:.1%}, worst trace "
                    f"{figures['worst_trace_saving']:.1%}), {figures['trades_per_batch']} "
                    f"trades a batch, {figures['deadline_misses']} deadlines missed"
                )
        typer.echo(
            f"fee saving {report['fee_saving']:.1%} (goal >= {GOAL_SAVING:.0%}; worst: "
            f"{report['worst']}), {report['deadline_misses']} deadlines missed over "
            f"{report['trades']} trades in {report['traces']} traces"
        )
    if not report["goal_met"]:
        fail("the fee-timing goal was missed", EXIT_CHECK_FAILED)

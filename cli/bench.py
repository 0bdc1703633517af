"""`mnode bench`: measured speed, never asserted in tests."""

from __future__ import annotations

from typing import Annotated

import typer

from marketnode.node.bench import run_engine_bench

from .common import JsonOption, print_json

app = typer.Typer(help="Benchmarks. Record results in docs/performance.md.", no_args_is_help=True)


@app.command("engine")
def engine_command(
    ops: Annotated[int, typer.Option("--ops", min=1000, help="Commands in the flow.")] = 500_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated flow.")] = 1,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Commands per group commit (durable run).")
    ] = 1000,
    json: JsonOption = False,
) -> None:
    """Engine throughput on a seeded realistic flow: in memory, then durable (LMDB, synced)."""
    typer.echo(f"generating {ops} commands (seed {seed}) and running them twice ...", err=True)
    result = run_engine_bench(ops, seed, batch)
    if json:
        print_json(result)
        return
    typer.echo(
        f"in memory: {result['ops_per_s']:>10,} ops/s\n"
        f"durable:   {result['durable_ops_per_s']:>10,} ops/s "
        f"(batches of {result['batch_size']}, p50 {result['batch_ms_p50']} ms, "
        f"p99 {result['batch_ms_p99']} ms per batch)\n"
        f"flow: {result['ops']:,} commands, {result['events']:,} events, "
        f"{result['trades']:,} trades, {result['rejected']:,} rejected, "
        f"{result['resting_orders_at_end']:,} orders resting at the end"
    )

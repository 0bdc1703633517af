"""`mnode bench`: measured speed, never asserted in tests."""

from __future__ import annotations

from typing import Annotated

import typer

from marketnode.node.core.compiled import CORES, choose_core
from marketnode.node.home.config import StoreConfig
from marketnode.node.tools.bench import BOTH_CORES, run_engine_bench

from .common import HomeOption, JsonOption, operator_errors, print_json, require_home

app = typer.Typer(help="Benchmarks. Record results in docs/performance.md.", no_args_is_help=True)


@app.command("engine")
def engine_command(
    ops: Annotated[int, typer.Option("--ops", min=1000, help="Commands in the flow.")] = 500_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated flow.")] = 1,
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch",
            min=1,
            help="Commands per group commit [default: store.batch_size of the home, or of the "
            "default configuration].",
            show_default=False,
        ),
    ] = None,
    core: Annotated[
        str | None,
        typer.Option(
            "--core",
            help="Matching core: auto (compiled where it built), compiled, python, or both "
            "(compiled, then python) [default: the node's choice: MARKETNODE_CORE, else auto].",
            show_default=False,
        ),
    ] = None,
    rounds: Annotated[
        int, typer.Option("--rounds", min=1, help="Runs of each core, the cores taking turns.")
    ] = 1,
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Engine throughput on a seeded realistic flow: in memory, then durable (LMDB, synced).

    With a home (--home or MNODE_HOME) the flow trades that home's markets and the durable run
    uses its sync mode and batch size, in a scratch store on the home's disk (removed after).
    Without one: the default configuration's markets, a temporary folder, sync "full".
    Says which matching core ran and why; with several rounds, figures are medians.
    """
    if core is not None and core not in (*CORES, "both"):
        raise typer.BadParameter(
            f"{core!r} is not one of {', '.join(CORES)}, both", param_hint="--core"
        )
    cores = BOTH_CORES if core == "both" else (core,)
    with operator_errors():
        for setting in cores:
            choose_core(setting)
    options: dict = {}
    if home is not None:
        with operator_errors():
            config = require_home(home).config()
        options = {
            "markets": config.markets or None,
            "sync": config.store.sync,
            "scratch_parent": home,
        }
        batch = batch or config.store.batch_size
    typer.echo(
        f"generating {ops} commands (seed {seed}), then running them in memory and durably on "
        f"{' and '.join(core or 'the chosen core' for core in cores)} "
        f"({rounds} round{'s' * (rounds > 1)}) ...",
        err=True,
    )
    result = run_engine_bench(
        ops, seed, batch or StoreConfig().batch_size, cores=cores, rounds=rounds, **options
    )
    if json:
        print_json(result)
        return
    lines = [
        f"{run['core']} core ({run['core_reason']}):\n"
        f"  in memory: {run['ops_per_s']:>10,} ops/s ({run['ops_per_cpu_s']:,} per CPU second)\n"
        f"  durable:   {run['durable_ops_per_s']:>10,} ops/s "
        f"(batches of {result['batch_size']}, p50 {run['batch_ms_p50']} ms, "
        f"p99 {run['batch_ms_p99']} ms per batch)"
        for run in result["cores"].values()
    ]
    if "speedup" in result:
        speedup = result["speedup"]
        lines.append(
            f"compiled / python: {speedup['in_memory']}x in memory, {speedup['durable']}x durable"
        )
    typer.echo(
        "\n".join(lines) + "\n"
        f"flow: {result['ops']:,} commands, {result['events']:,} events, "
        f"{result['trades']:,} trades, {result['rejected']:,} rejected, "
        f"{result['resting_orders_at_end']:,} orders resting at the end"
    )


@app.command("e2e")
def e2e_command(
    orders: Annotated[
        int,
        typer.Option(
            "--orders", min=10_000, help="Orders in the batched run (a quarter in the single one)."
        ),
    ] = 200_000,
    seconds: Annotated[
        float, typer.Option("--seconds", min=1, help="Length of each fixed-rate run.")
    ] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the flow.")] = 1,
    json: JsonOption = False,
) -> None:
    """A real node process on a temporary home (loopback, CURVE on, synced commits): throughput
    with one order per message and with 100 per message, then acknowledgement latency at offered
    rates of 1k, 10k and 50k orders/s."""
    from marketnode.node.tools.e2e import run_e2e_bench

    typer.echo("starting a node and offering load; this takes about a minute ...", err=True)
    report = run_e2e_bench(orders=orders, seed=seed, latency_s=seconds)
    if json:
        print_json(report)
        return
    lines = [
        f"one order per message:   {report['single_orders_per_s']:>9,} orders/s",
        f"100 orders per message:  {report['batched_orders_per_s']:>9,} orders/s",
    ]
    for rate in (1000, 10_000, 50_000):
        run = report[f"at_{rate}"]
        latency = run["latency_ms"]
        lines.append(
            f"offered {rate:>6,}/s: answered {run['orders_per_s']:>7,}/s, ack ms "
            f"p50 {latency['p50']} p99 {latency['p99']} p99.9 {latency['p99.9']} "
            f"max {latency['max']}"
        )
    typer.echo("\n".join(lines))


@app.command("analytics")
def analytics_command(
    ops: Annotated[
        int, typer.Option("--ops", min=1000, help="Commands journaled first.")
    ] = 200_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the flow.")] = 1,
    json: JsonOption = False,
) -> None:
    """Analytics ingest: how fast the follower turns a journal into DuckDB rows."""
    from marketnode.node.tools.bench import run_analytics_bench

    typer.echo(f"journaling {ops} commands, then ingesting them ...", err=True)
    result = run_analytics_bench(ops, seed)
    if json:
        print_json(result)
        return
    typer.echo(
        f"ingest: {result['events_per_s']:,} events/s ({result['commands_per_s']:,} commands/s; "
        f"{result['events']:,} events in {result['seconds']} s)"
    )


@app.command("integrity")
def integrity_command(
    steps: Annotated[
        int,
        typer.Option("--steps", min=1000, help="Steps of the labelled market (~1 trade each)."),
    ] = 1_020_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the labelled market.")] = 1,
    json: JsonOption = False,
) -> None:
    """Detection time: every detector over a labelled market of about a million trades."""
    from marketnode.node.tools.evaluation import evaluate

    typer.echo(f"building a labelled market of {steps:,} steps, then scanning it ...", err=True)
    report = evaluate(seed, steps)
    report.pop("detectors")
    report["trades_per_s"] = round(report["trades"] / report["detect_seconds"])
    if json:
        print_json(report)
        return
    typer.echo(
        f"detection: {report['trades']:,} trades in {report['detect_seconds']} s "
        f"({report['trades_per_s']:,} trades/s); precision {report['precision']}, "
        f"recall {report['recall']}"
    )

"""`mnode scale`: the running node's scaling recommendations; `mnode scale eval`: the policies
replayed over synthetic traces and scored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from .common import (
    EXIT_CHECK_FAILED,
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    print_json,
    require_home,
)
from .node import admin_call

app = typer.Typer(
    help="Scaling recommendations (current ones without a subcommand).",
    invoke_without_command=True,
)


@app.callback()
def scale_command(ctx: typer.Context, home: HomeOption = None, json: JsonOption = False) -> None:
    """What the node's scaling policies advise now, with reason, confidence and since when."""
    if ctx.invoked_subcommand is not None:
        return
    result = admin_call(require_home(home), "scale")
    if json:
        print_json(result["recommendations"])
        return
    if not result["recommendations"]:
        typer.echo(f"no recommendations (scaling {result['scaling']})")
        return
    for item in result["recommendations"]:
        since = datetime.fromtimestamp(item["since"], UTC).strftime("%H:%M:%S")
        change = (
            f"{item['current']:g} -> {item['desired']:g}"
            if item["current"] is not None and item["desired"] is not None
            else ""
        )
        flag = " (forecast only)" if item["details"].get("forecast_only") else ""
        typer.echo(
            f"{item['action']:<10} {item['resource']:<9} {change:<8} {item['policy']:<11} "
            f"confidence {item['confidence']:.2f} since {since}{flag}\n    {item['reason']}"
        )


@app.command("apply")
def apply_command(
    cluster: Annotated[
        Path,
        typer.Option("--cluster", envvar="MNODE_CLUSTER",
                     help="The local cluster's folder (or set MNODE_CLUSTER)."),
    ] = Path("cluster"),
    yes: Annotated[bool, typer.Option("--yes", help="Move without asking first.")] = False,
    json: JsonOption = False,
) -> None:
    """Apply the sharding policy's advice across the local cluster, asking first: the markets a
    busy node should shed are moved (`mnode cluster apply`, docs/cluster.md)."""
    from .cluster import apply_command as apply_to_cluster

    apply_to_cluster(cluster=cluster, yes=yes, json=json)


@app.command("eval")
def eval_command(
    seed: Annotated[int, typer.Option("--seed", help="First seed of the traces.")] = 1,
    seeds: Annotated[
        int, typer.Option("--seeds", help="How many seeds (1 or more): each figure is the worst.")
    ] = 1,
    json: JsonOption = False,
) -> None:
    """Replay steady, ramping, flash-crowd, stepping, hot-market, swinging, daily, disk-filling
    and disk-burst traces drawn from each seed through the policies; report each goal's worst
    case over the seeds; exit 1 when a target is missed."""
    from marketnode.node.tools.scaling_eval import evaluate

    if seeds < 1:
        fail(f"--seeds {seeds}: at least one seed is needed", EXIT_USAGE)
    report = evaluate(seed, seeds=seeds)
    if json:
        print_json(report)
    else:
        typer.echo(
            f"worst of {seeds} seed(s) from {seed}\n"
            f"false scale-ups: steady {report['steady_false_alarms']}, noisy steady "
            f"{report['noisy_steady_false_alarms']} (target 0); 50-68% "
            f"{report['steady_high_false_alarms']}, benign ramp "
            f"{report['benign_ramp_false_alarms']}\n"
            f"scale-up lead before the crossing: ramps of 10 min or more "
            f"{report['ramp_lead_s']} s, daily {report['daily_lead_s']} s (target >= 120 s); "
            f"shorter ramps {report.get('short_ramp_lead_s')} s\n"
            f"flash crowd advised after {report['flash_advice_s']} s (target <= 15 s)\n"
            f"advised count off by {report['advised_count_error']} (target <= 1)\n"
            f"most direction changes in one {report['stabilization_s']} s window: "
            f"{report['max_flaps_per_window']} (target <= 1); earliest scale-down "
            f"{report['scale_down_earliest_s']} s after the load allowed it (target >= "
            f"{report['stabilization_s']} s)\n"
            f"disk warned {report['disk_warning_lead_s']} s before full (target >= 3600 s), "
            f"{report['disk_warning_gaps']} gaps; a stopped burst warned "
            f"{report['burst_warning_outlives_s']} s more (target <= 60 s)\n"
            f"forecast error: ramp {report.get('ramp_forecast_error')}, daily "
            f"{report.get('daily_forecast_error')}"
        )
    if not report["targets_met"]:
        fail("a scaling target was missed", EXIT_CHECK_FAILED)

"""`mnode cluster`: a local cluster of nodes with its market directory (NATS JetStream)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from marketnode.node.analytics.cluster_scan import scan_cluster
from marketnode.node.analytics.node_export import ExportFailed
from marketnode.node.client import ClientError
from marketnode.node.cluster.directory import DirectoryError, with_directory
from marketnode.node.cluster.local import (
    ClusterError,
    ClusterUnreachable,
    LocalCluster,
    down,
    status,
    up,
)
from marketnode.node.cluster.moving import move_market
from marketnode.node.cluster.scaling import plan_moves

from .common import EXIT_NOT_RUNNING, EXIT_REJECTED, EXIT_USAGE, JsonOption, fail, print_json

CLUSTER_ENV = "MNODE_CLUSTER"

app = typer.Typer(
    help="A local cluster of nodes and its market directory: up, status, down, apply, scan.",
    no_args_is_help=True,
)

ClusterOption = Annotated[
    Path,
    typer.Option("--cluster", envvar=CLUSTER_ENV,
                 help=f"The cluster's folder (or set {CLUSTER_ENV})."),
]  # fmt: skip


def local_cluster(path: Path) -> LocalCluster:
    return LocalCluster(path.resolve())


def cluster_failed(error: Exception, more: str = "") -> NoReturn:
    """A cluster that cannot do what was asked: one line, exit 5 when a part of it is not
    running or not answering, 6 when a node answered with a refusal, 2 otherwise."""
    if isinstance(error, ClientError):
        code = EXIT_NOT_RUNNING if error.unreachable else EXIT_REJECTED
    elif isinstance(error, ClusterUnreachable | DirectoryError | RuntimeError):
        code = EXIT_NOT_RUNNING
    else:
        code = EXIT_USAGE
    fail(f"{error}{more}", code)


@app.command("up")
def up_command(
    cluster: ClusterOption = Path("cluster"),
    servers: Annotated[
        int, typer.Option(help="NATS servers (3: the directory in 3 replicas).", min=1, max=5)
    ] = 3,
    nodes: Annotated[
        int, typer.Option(help="Nodes, the first time (later: the same ones).", min=1, max=9)
    ] = 3,
    json: JsonOption = False,
) -> None:
    """Start the cluster in its folder: NATS servers with JetStream holding the directory,
    then the nodes (made the first time, each configuring every market), each trading the
    markets the directory gives it and halting the others. Every process started is recorded
    by pid in cluster.json; `mnode cluster down` stops them."""
    target = local_cluster(cluster)
    try:
        record = up(target, servers, nodes)
        report = status(target)
    except (ClusterError, DirectoryError, RuntimeError) as error:
        cluster_failed(error)
    if json:
        print_json(report)
        return
    urls = ", ".join(record.urls)
    typer.echo(f"cluster up in {target.path}: directory at {urls} ({record.replicas} replicas)",
               err=True)  # fmt: skip
    for node in report["nodes"]:
        typer.echo(f"  {node['name']}  pid {node['pid']}  serves {', '.join(node['serves'])}",
                   err=True)  # fmt: skip


@app.command("status")
def status_command(cluster: ClusterOption = Path("cluster"), json: JsonOption = False) -> None:
    """The servers, the directory's version and markets, and each node: running, seq, the
    markets it serves and the orders resting in each."""
    try:
        report = status(local_cluster(cluster))
    except ClusterError as error:
        cluster_failed(error)
    if json:
        print_json(report)
        return
    for server in report["servers"]:
        state = "running" if server["running"] else "stopped"
        typer.echo(f"server {server['name']}  {server['url']}  {state}")
    directory = report["directory"]
    if "error" in directory:
        typer.echo(f"directory: {directory['error']}")
    else:
        leader = directory["leader"]
        others = directory["replicas"]
        copies = f", led by {leader}" + (f" with {', '.join(others)}" if others else "")
        typer.echo(f"directory version {directory['version']}{copies if leader else ''}")
        for market, entry in sorted(directory["markets"].items()):
            moving = f" (moving to {entry['moving_to']})" if entry.get("moving_to") else ""
            typer.echo(f"  {market:<12} {entry['node']}{moving}")
    for node in report["nodes"]:
        if not node["running"]:
            typer.echo(f"node {node['name']}  stopped")
            continue
        if "error" in node:
            typer.echo(f"node {node['name']}  {node['error']}")
            continue
        resting = sum(node["resting_orders"].values())
        serves = ", ".join(node["serves"]) or "nothing"
        typer.echo(f"node {node['name']}  pid {node['pid']}  seq {node['seq']}  serves {serves}  "
                   f"{resting} resting")  # fmt: skip


@app.command("down")
def down_command(cluster: ClusterOption = Path("cluster"), json: JsonOption = False) -> None:
    """Stop the cluster's nodes (each commits its batch in flight), then its servers, each by
    the pid recorded when it started. The homes and the directory's store stay for the next
    `mnode cluster up`."""
    try:
        stopped = down(local_cluster(cluster))
    except ClusterError as error:
        cluster_failed(error)
    if json:
        print_json({"stopped": stopped})
        return
    typer.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}", err=True)


@app.command("apply")
def apply_command(
    cluster: ClusterOption = Path("cluster"),
    yes: Annotated[bool, typer.Option("--yes", help="Move without asking first.")] = False,
    json: JsonOption = False,
) -> None:
    """Apply the sharding policy's advice: ask every node for its scaling recommendations,
    plan the moves they call for (each group of markets a busy node should shed goes to the
    node serving the fewest), show the plan and, once confirmed, move each market as `mnode
    markets move` does."""
    target = local_cluster(cluster)
    try:
        directory = with_directory(target.record().urls, lambda store: store.read())
        advice = {}
        for name in directory.nodes:
            with target.admin(name, timeout_s=3.0) as admin:
                advice[name] = admin.call("scale")["recommendations"]
    except (ClusterError, DirectoryError, ClientError) as error:
        cluster_failed(error)
    plan = plan_moves(directory, advice)
    if not plan.moves:
        why = "; ".join(plan.reasons) or "no node advises moving markets"
        unplaced = f" (no node left for {plan.unplaced})" if plan.unplaced else ""
        if json:
            print_json({"moved": [], "unplaced": plan.unplaced, "reasons": plan.reasons})
        else:
            typer.echo(f"nothing to apply: {why}{unplaced}", err=True)
        return
    for reason in plan.reasons:
        typer.echo(f"advice: {reason}", err=True)
    for market, source, destination in plan.moves:
        typer.echo(f"  move {market} from {source} to {destination}", err=True)
    if not yes and not typer.confirm("Carry out these moves?", err=True):
        fail("nothing moved", EXIT_USAGE)
    moved = []
    for market, _source, destination in plan.moves:
        try:
            moved.append(move_market(target, market, destination))
        except (ClusterError, DirectoryError, ClientError) as error:
            done = ", ".join(f"{r.market} to {r.destination}" for r in moved) or "none"
            cluster_failed(error, f" (moved before it: {done})")
    if json:
        print_json({"moved": [asdict(report) for report in moved], "unplaced": plan.unplaced,
                    "reasons": plan.reasons})  # fmt: skip
        return
    for report in moved:
        typer.echo(f"moved {report.market} from {report.source} to {report.destination}: "
                   f"{report.orders} resting orders", err=True)  # fmt: skip


@app.command("scan")
def scan_command(cluster: ClusterOption = Path("cluster"), json: JsonOption = False) -> None:
    """Scan every node's trades together for wash rings that no node sees whole: each node's
    trades since the last scan are exported as Parquet into the cluster's scan/ folder (read
    from its journal, the node running or not), the union of every export is read in memory
    and trade cycles are searched with each wallet's positions summed across the markets of
    one asset. Cycles spanning markets or nodes are printed and kept in scan/alerts.json."""
    target = local_cluster(cluster)
    try:
        homes = {node.name: target.home(node.name) for node in target.record().nodes}
        report = scan_cluster(target.path, homes)
    except (ClusterError, ExportFailed) as error:
        cluster_failed(error)
    if json:
        print_json(report.as_record())
        return
    exported = ", ".join(f"{e.node} {e.trades}" for e in report.exports)
    typer.echo(f"trades exported since the last scan: {exported}; {report.trades} in all",
               err=True)  # fmt: skip
    if not report.alerts:
        typer.echo("no cycle across markets or nodes")
    for alert in report.alerts:
        evidence = alert["evidence"]
        mark = "new " if alert["id"] in report.new else ""
        typer.echo(
            f"{mark}{alert['id']}  {alert['severity']}  {alert['market']}  "
            f"{' -> '.join(alert['wallets'])}  {len(alert['trades'])} trades in "
            f"{', '.join(evidence['markets'])} on {', '.join(evidence['nodes'])}"
        )

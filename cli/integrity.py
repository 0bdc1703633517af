"""`mnode integrity scan|link|maker|makers` and `mnode alerts`: wash-trading detection, the
owners it treats as one party or as known market makers, and its findings."""

from __future__ import annotations

import json as json_module
import shutil
import sys
from typing import Annotated

import duckdb
import typer

from marketnode.node.analytics.follower import JournalFollower
from marketnode.node.analytics.integrity import (
    acknowledge,
    alert_record,
    detector_settings,
    scan,
    store_alerts,
)
from marketnode.node.analytics.makers import (
    KNOWN_MAKERS,
    declare_maker,
    forget_maker,
    record_configured_makers,
)
from marketnode.node.home.layout import Home
from marketnode.node.store.lmdb_store import Store
from marketnode.plugins.alerts import SEVERITIES

from .alert_view import render_alert
from .analytics import open_analytics, print_rows, run_query, through_node
from .common import (
    EXIT_CHECK_FAILED,
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
from .times import SinceOption, UntilOption, time_clauses

app = typer.Typer(
    help="Market-integrity detectors, linked owners and known market makers.", no_args_is_help=True
)
alerts_app = typer.Typer(
    help="Alerts raised by the integrity detectors.", invoke_without_command=True
)


def _refuse_while_running(node_home: Home) -> None:
    """Exit 4 (the store is unavailable: README's exit codes) while a node holds the home."""
    if why_no_node_runs(node_home) is None:
        fail(
            f"a node is running on {node_home.path}: stop it first (this writes the analytics "
            "store)",
            EXIT_STORE,
        )


@app.command("scan")
def scan_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """Run every detector over the home's whole history (the node stopped); print and keep
    the alerts (an anomaly lead says which of the scan's wash findings already name it)."""
    from marketnode.plugins.anomalous_wallets import explain_leads

    node_home = require_home(home)
    _refuse_while_running(node_home)
    with operator_errors():
        config = node_home.config()
        settings = detector_settings(config.integrity, str(node_home.config_path))
        store = Store(node_home.store_path(config), readonly=True)
    try:
        analytics = open_analytics(node_home, read_only=False)
        try:
            record_configured_makers(analytics.connection, config.liquidity.instances)
            JournalFollower(store, analytics).sync()
            alerts = scan(analytics.connection, settings)
            explain_leads(alerts)
            new = store_alerts(analytics.connection, alerts)
        finally:
            analytics.close()
    finally:
        store.close()
    if json:
        print_json([alert_record(alert) for alert in alerts])
    else:
        for alert in alerts:
            typer.echo(
                f"{alert.id} {alert.severity:<6} {alert.detector:<12} {alert.market:<12} "
                f"wallets {', '.join(alert.wallets)}; {len(alert.trades)} trades; "
                f"wash volume {alert.wash_volume}"
            )
    noun = "alert" if len(alerts) == 1 else "alerts"
    typer.echo(f"{len(alerts)} {noun} ({len(new)} new)", err=True)


@app.command("rank")
def rank_command(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most wallets shown.")] = 50,
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Every wallet's anomaly score, highest first (the node stopped): the anomalous-wallets
    forest trained on the home's whole history, with the features it scored, why each is
    unusual against the market, and the wash findings that already name it (in text, those
    are listed apart, after the new leads, and the known market makers last: their quoting is
    no lead)."""
    from marketnode.plugins.anomalous_wallets import (
        FEATURES,
        NAME,
        explained_wallets,
        reasons,
        typical_values,
        wallet_scores,
    )

    node_home = require_home(home)
    _refuse_while_running(node_home)
    with operator_errors():
        settings = detector_settings(node_home.config().integrity, str(node_home.config_path))
    analytics = open_analytics(node_home, read_only=True)
    try:
        rows, scores, version = wallet_scores(analytics.connection, settings)
        explained = explained_wallets(analytics.connection)
        makers = _known_makers(analytics.connection)
    finally:
        analytics.close()
    if not rows:
        least = settings[NAME]["min_wallets"]
        fail(f"fewer than {least} wallets with enough trades to train on", EXIT_CHECK_FAILED)
    typical = typical_values(rows)
    ranked = sorted(zip(rows, scores, strict=True), key=lambda pair: -pair[1])[:limit]
    records = []
    for rank, (row, score) in enumerate(ranked, start=1):
        features = dict(zip(FEATURES, row[1 : 1 + len(FEATURES)], strict=True))
        records.append(
            {
                "rank": rank,
                "wallet": row[0],
                "score": round(float(score), 4),
                "explained": explained.get(row[0], []),
                "known_maker": row[0] in makers,
                "why": reasons(features, typical),
                "features": {name: round(float(value), 6) for name, value in features.items()},
            }
        )
    if json:
        print_json(records)
    else:
        makers_last = sorted(records, key=lambda record: record["known_maker"])
        new_leads = [r for r in makers_last if not r["explained"] and not r["known_maker"]]
        others = [r for r in makers_last if r["explained"] or r["known_maker"]]
        for record in new_leads + others:  # one line a wallet, the new leads first
            typer.echo(_rank_line(record))
    typer.echo(f"{len(rows)} wallets scored (model {version})", err=True)


def _rank_line(record: dict) -> str:
    features = record["features"]
    line = (
        f"{record['rank']:>4} {record['score']:.4f} {record['wallet']}  "
        f"{features['trades']:.0f} trades, closed group {features['closed_share']:.0%} "
        f"(imbalance {features['group_imbalance']:.0%}), net/volume "
        f"{features['net_over_volume']:.0%}, partners {features['partner_share']:.0%}"
    )
    if record["why"]:
        line += f"; unusual: {'; '.join(record['why'])}"
    if record["explained"]:
        line += f"; already in wash findings: {', '.join(record['explained'])}"
    if record["known_maker"]:
        line += "; a known market maker"
    return line


def _known_makers(connection) -> set[str]:
    """The known makers' owners (none in a file from before they were kept, opened read-only)."""
    from marketnode.plugins.partners import known_maker_wallets

    try:
        return known_maker_wallets(connection)
    except duckdb.CatalogException:
        return set()


@app.command("eval")
def eval_command(
    seed: Annotated[int, typer.Option("--seed", help="Seed of the labelled market.")] = 1,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds", help="Markets scored, seeds SEED onwards; the worst case is reported."
        ),
    ] = 1,
    steps: Annotated[
        int, typer.Option("--steps", min=1000, help="Steps of the generator.")
    ] = 20_000,
    known_makers: Annotated[
        bool,
        typer.Option(
            "--known-makers", help="Declare the generated makers known market makers first."
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Score the detectors on generated markets with known wash trading: precision, recall
    and F1 on trades and wallets, recall per wash pattern, anomaly ROC AUC, the share of the
    anomaly leads that are wash wallets, share of market makers flagged; with --seeds N, the
    worst case of each over N markets."""
    from marketnode.node.tools.evaluation import evaluate, evaluate_seeds

    if seeds < 1:
        fail(f"--seeds must be at least 1, got {seeds}", EXIT_USAGE)
    if seeds > 1:
        report = evaluate_seeds(list(range(seed, seed + seeds)), steps, known_makers)
    else:
        report = evaluate(seed, steps, known_makers=known_makers)
    if json:
        print_json(report)
        return
    worst = ", ".join(map(str, report["seeds"])) if seeds > 1 else ""
    typer.echo(
        (f"worst case over seeds {worst}\n" if worst else "")
        + f"wash trades: precision {report['precision']}, recall {report['recall']}, "
        f"F1 {report['f1']}\n"
        f"wash wallets: precision {report['wallets_precision']}, recall "
        f"{report['wallets_recall']}, F1 {report['wallets_f1']}\n"
        f"recall by pattern: "
        + ", ".join(f"{name} {value}" for name, value in report["recall_by_pattern"].items())
        + f"\nanomaly ROC AUC {report['anomaly_auc']}; lead precision "
        f"{report['lead_precision']}; market makers flagged {report['maker_flag_rate']:.0%}"
    )
    if seeds > 1:
        return
    typer.echo(
        f"{report['leads']} leads ({report['leads_explained']} already in wash findings), "
        f"false leads {report['false_leads_by_kind'] or 'none'}; {report['wash_trades']} "
        f"wash of {report['trades']} trades; detection {report['detect_seconds']} s"
    )
    for name, scores in report["detectors"].items():
        typer.echo(
            f"  {name:<12} {scores['alerts']:>5} alerts  trades P {scores['trades_precision']} "
            f"R {scores['trades_recall']}  wallets P {scores['wallets_precision']} "
            f"R {scores['wallets_recall']}"
        )


@app.command("link")
def link_command(
    a: Annotated[str, typer.Argument(help="An owner.", show_default=False)],
    b: Annotated[str, typer.Argument(help="Another owner.", show_default=False)],
    reason: Annotated[str, typer.Option("--reason", help="Why they are one party.")] = "",
    home: HomeOption = None,
) -> None:
    """Treat two owners as one party (same funder, same person): trades between them are
    self-trades."""
    if not reason:
        fail("say why: --reason TEXT (same funder, same person, …)", EXIT_USAGE)
    if a == b:
        fail("link two different owners", EXIT_USAGE)
    node_home = require_home(home)
    _refuse_while_running(node_home)
    analytics = open_analytics(node_home, read_only=False)
    try:
        analytics.connection.execute("INSERT INTO links VALUES (?, ?, ?, now())", [a, b, reason])
    finally:
        analytics.close()
    typer.echo(f"linked {a} and {b} ({reason})", err=True)


@app.command("maker")
def maker_command(
    owner: Annotated[str, typer.Argument(help="The owner.", show_default=False)],
    market: Annotated[
        str | None, typer.Option("--market", help="The market it makes (default: every one).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why it is a known maker.")] = "",
    forget: Annotated[bool, typer.Option("--forget", help="Withdraw the declaration.")] = False,
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Declare an owner a known market maker: the wash detectors leave its quoting alone (its
    fills with few or busy takers) in MARKET, and it is no anomaly lead in any market (the
    forest scores a wallet across markets), but its trades with itself or a linked owner are
    still self-trades. The owners of `[liquidity.NAME]` instances are known makers already."""
    if not forget and not reason:
        fail("say why: --reason TEXT (a market-making agreement, a desk, …)", EXIT_USAGE)
    node_home = require_home(home)
    _refuse_while_running(node_home)
    analytics = open_analytics(node_home, read_only=False)
    try:
        if forget:
            gone = forget_maker(analytics.connection, owner, market)
        else:
            declare_maker(analytics.connection, owner, market, reason)
    finally:
        analytics.close()
    where = f"in {market}" if market else "in every market"
    if forget and not gone:
        fail(f"{owner} was not declared a market maker {where}", EXIT_USAGE)
    verb = "no longer a declared market maker" if forget else f"a known market maker ({reason})"
    if json:
        print_json({"owner": owner, "market": market, "known_maker": not forget, "reason": reason})
        return
    typer.echo(f"{owner} {where}: {verb}", err=True)


@app.command("makers")
def makers_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """The known market makers: `[liquidity.NAME]` instances' owners (as the node or the last
    `mnode integrity scan` recorded them) and the operator's declarations."""
    columns, rows = run_query(require_home(home), KNOWN_MAKERS, [])
    print_rows(columns, rows, json, False)


@alerts_app.callback()
def alerts_command(
    ctx: typer.Context,
    since: SinceOption = None,
    until: UntilOption = None,
    severity: Annotated[
        str | None, typer.Option("--severity", help=f"{', '.join(SEVERITIES)}.")
    ] = None,
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Alerts, newest first (`mnode alerts show ID` for one with its evidence)."""
    if ctx.invoked_subcommand is not None:
        return
    clauses, parameters = time_clauses(since, until)
    if severity is not None:
        if severity not in SEVERITIES:
            fail(f"--severity must be one of {', '.join(SEVERITIES)}, got {severity!r}", EXIT_USAGE)
        clauses.append("severity = ?")
        parameters.append(severity)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    columns, rows = run_query(
        require_home(home),
        "SELECT id, strftime(time, '%Y-%m-%dT%H:%M:%SZ') AS time, severity, detector, market, "
        "wallets, len(trades) AS trades, CAST(wash_volume AS VARCHAR) AS wash_volume, label "
        f"FROM alerts {where} ORDER BY time DESC, id",
        parameters,
    )
    print_rows(columns, rows, json, False)


@alerts_app.command("ack")
def ack_command(
    alert_id: Annotated[str, typer.Argument(help="The alert's id.", show_default=False)],
    label: Annotated[str, typer.Option("--label", help="wash or benign.")] = "",
    home: HomeOption = None,
) -> None:
    """Record a reviewer's verdict on an alert (kept to evaluate the detectors)."""
    node_home = require_home(home)
    answered, _ = through_node(node_home, "ack", alert=alert_id, label=label)
    if answered:
        typer.echo(f"alert {alert_id}: {label}", err=True)
        return
    analytics = open_analytics(node_home, read_only=False)
    try:
        answer = acknowledge(analytics.connection, alert_id, label)
    finally:
        analytics.close()
    if not answer["ok"]:
        fail(answer["error"], EXIT_USAGE)
    typer.echo(f"alert {alert_id}: {label}", err=True)


@alerts_app.command("show")
def show_command(
    alert_id: Annotated[str, typer.Argument(help="The alert's id.", show_default=False)],
    home: HomeOption = None,
    json: Annotated[
        bool, typer.Option("--json", help="Print JSON (what a pipe gets without it too).")
    ] = False,
) -> None:
    """One alert with its trades and evidence: for a person on a terminal (indented, wrapped to
    its width), JSON with --json or when stdout is not a terminal."""
    columns, rows = run_query(
        require_home(home),
        "SELECT id, strftime(time, '%Y-%m-%dT%H:%M:%SZ') AS time, detector, severity, market, "
        "wallets, trades, evidence, CAST(wash_volume AS VARCHAR) AS wash_volume, label "
        "FROM alerts WHERE id = ?",
        [alert_id],
    )
    if not rows:
        fail(f"no alert {alert_id!r}", EXIT_USAGE)
    record = dict(zip(columns, rows[0], strict=True))
    record["evidence"] = json_module.loads(record["evidence"])
    record["wallets"], record["trades"] = list(record["wallets"]), list(record["trades"])
    if json or not sys.stdout.isatty():
        print_json(record)
    else:
        typer.echo(render_alert(record, shutil.get_terminal_size().columns))

"""`mnode liquidity`: the home's liquidity instances (`[liquidity.NAME]`), what the running
liquidity process reports of them, and the strategies' evaluation on seeded flows."""

from __future__ import annotations

import getpass
import json as json_module
import os
import time
from typing import Annotated, Any

import typer

from marketnode.node.home.layout import Home
from marketnode.node.home.processes import process_alive
from marketnode.node.liquidity.config import Instance, load_instances
from marketnode.node.liquidity.records import (
    ledger_path,
    record_locked,
    state_path,
    update_record,
    write_json,
)

from .common import (
    EXIT_CHECK_FAILED,
    EXIT_NOT_RUNNING,
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    operator_errors,
    print_json,
    require_home,
)

app = typer.Typer(
    help="Automated liquidity: instances, state, start/stop, eval.",
    no_args_is_help=True,
)


@app.command("list")
def list_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """The configured instances: strategy, market, peer and owner, and the strategy's settings
    in effect (its defaults under the instance's table)."""
    node_home = require_home(home)
    with operator_errors():
        instances = load_instances(node_home.config_path)
    records = [
        {"name": i.name, "strategy": i.strategy, "market": i.market, "peer": i.peer,
         "owner": i.owner, "enabled": i.enabled, "base": i.base, "quote": i.quote,
         "refresh_s": i.refresh_s, "settings": i.settings}
        for i in instances
    ]  # fmt: skip
    if json:
        print_json(records)
        return
    if not records:
        typer.echo(f"no [liquidity.NAME] table in {node_home.config_path}")
    for record in records:
        state = "" if record["enabled"] else " (disabled)"
        typer.echo(f"{record['name']:<16} {record['strategy']:<13} {record['market']:<12} "
                   f"peer {record['peer']} owner {record['owner']}{state}")  # fmt: skip
        values = ", ".join(f"{key} = {value!r}" for key, value in record["settings"].items())
        typer.echo(f"    {values}")


@app.command("status")
def status_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """What the liquidity process last reported (every second while it runs): each instance's
    state (quoting, stopped: when and by whom, halted: why), quotes, holdings, position, PnL
    (realized, unrealized at mid, fees, today's); with --json also its rejects by reason."""
    node_home = require_home(home)
    path = state_path(node_home.path)
    try:
        state: dict[str, Any] = json_module.loads(path.read_text())
    except FileNotFoundError:
        fail(f"no liquidity process has run on {node_home.path} ({path} is missing)",
             EXIT_NOT_RUNNING)  # fmt: skip
    except (OSError, ValueError) as error:
        fail(f"{path}: cannot be read: {error}", EXIT_NOT_RUNNING)
    running = not state.get("stopped") and process_alive(int(state.get("pid", 0)))
    state["running"] = running
    state["age_s"] = round(time.time() - float(state.get("updated_at", 0.0)), 3)
    if json:
        print_json(state)
        return
    word = f"running (pid {state['pid']})" if running else "not running"
    typer.echo(f"liquidity process {word}, reported {state['age_s']:.1f} s ago")
    for item in state.get("instances", []):
        typer.echo(f"{item['name']:<16} {item['strategy']:<13} {item['market']:<12} "
                   f"{_state_line(item)}\n    base {item['base']} quote {item['quote']} position "
                   f"{item['position_lots']:+d} fills {item['fills']} realized {item['realized']} "
                   f"unrealized {item['unrealized']} fees {item.get('fees', 0)} today "
                   f"{item.get('pnl_today', 0)}")  # fmt: skip
        quotes = ", ".join(f"{side} {qty} @ {price}" for side, price, qty in item["quotes"])
        typer.echo(f"    quotes: {quotes or 'none'}")


def _state_line(item: dict[str, Any]) -> str:
    """`quoting`, `stopped at TIME by WHO`, or `HALTED: why`."""
    if item.get("halted"):
        return f"HALTED: {item['halted']}"
    stopped = item.get("stopped")
    if stopped:
        return f"stopped at {_utc(stopped['at'])} by {stopped['by']}"
    return item.get("state", "quoting")


def _utc(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(wall))


@app.command("resume")
def resume_command(
    name: Annotated[str, typer.Argument(help="The instance ([liquidity.NAME]).")],
    home: HomeOption = None,
) -> None:
    """Clear instance NAME's halt (its kill switch stays thrown across restarts until then):
    the running liquidity process quotes it again within a second."""
    node_home = require_home(home)
    path = ledger_path(node_home.path, name)
    try:
        record = json_module.loads(path.read_text())
    except FileNotFoundError:
        fail(f"no liquidity instance {name!r} has run on {node_home.path}", EXIT_NOT_RUNNING)
    except (OSError, ValueError) as error:
        fail(f"{path}: cannot be read: {error}", EXIT_NOT_RUNNING)
    reason = record.get("halted")
    if reason is None:
        typer.echo(f"{name} is not halted")
        return
    with record_locked(node_home.path, name):  # the process may be saving a fill
        record = json_module.loads(path.read_text())
        record["halted"] = None
        write_json(path, record)
    typer.echo(f"{name} resumed (it had halted: {reason})")


NameArgument = Annotated[str, typer.Argument(help="The instance ([liquidity.NAME]).")]
ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who stops or starts it, as status shows it (default: the "
                 "user running the command).", show_default=False),
]  # fmt: skip


@app.command("stop")
def stop_command(
    name: NameArgument, by: ByOption = None, home: HomeOption = None, json: JsonOption = False
) -> None:
    """Stop instance NAME: the running liquidity process cancels all its resting quotes and
    stops quoting within a second; status shows it stopped, when and by whom. It stays stopped
    across restarts (also when no process runs yet) until `mnode liquidity start NAME`.
    Exit code 2 when the home configures no instance NAME."""
    node_home = require_home(home)
    instance = _configured(node_home, name)
    stopped = {"at": round(time.time(), 3), "by": by or _user()}
    before: dict[str, Any] = {}

    def stop(record: dict[str, Any]) -> None:
        before.update(record)
        record.setdefault("stopped", None)
        if record["stopped"] is None:
            record["stopped"] = stopped

    record = update_record(node_home.path, instance, stop)
    changed = before.get("stopped") is None
    if json:
        print_json(_control_answer(node_home, name, record, changed))
    elif changed:
        typer.echo(f"{name} stopped by {stopped['by']}: {_when_process(node_home)} cancels its "
                   "quotes and quotes no more until `mnode liquidity start`")  # fmt: skip
    else:
        typer.echo(f"{name} is already stopped (since {_utc(record['stopped']['at'])}, by "
                   f"{record['stopped']['by']})")  # fmt: skip


@app.command("start")
def start_command(
    name: NameArgument, by: ByOption = None, home: HomeOption = None, json: JsonOption = False
) -> None:
    """Start instance NAME again after `mnode liquidity stop`: the running liquidity process
    quotes it again within a second (a halted instance also needs `mnode liquidity resume`).
    Exit code 2 when the home configures no instance NAME."""
    node_home = require_home(home)
    instance = _configured(node_home, name)
    before: dict[str, Any] = {}

    def start(record: dict[str, Any]) -> None:
        before.update(record)
        record["stopped"] = None

    record = update_record(node_home.path, instance, start)
    changed = before.get("stopped") is not None
    if json:
        print_json(_control_answer(node_home, name, record, changed))
        return
    if not changed:
        typer.echo(f"{name} is not stopped")
    else:
        typer.echo(f"{name} started by {by or _user()}: {_when_process(node_home)} quotes it again")
    if record.get("halted"):
        typer.echo(f"{name} is halted ({record['halted']}): `mnode liquidity resume {name}` "
                   "lets it quote")  # fmt: skip


def _configured(node_home: Home, name: str) -> Instance:
    """Instance `name` of the home's config; one line and exit code 2 when there is none."""
    with operator_errors():
        instances = load_instances(node_home.config_path)
    for instance in instances:
        if instance.name == name:
            return instance
    names = ", ".join(instance.name for instance in instances) or "none"
    fail(f"no liquidity instance {name!r} in {node_home.config_path} (configured: {names})",
         EXIT_USAGE)  # fmt: skip


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return f"uid {os.getuid()}"


def _process_running(node_home: Home) -> bool:
    try:
        state = json_module.loads(state_path(node_home.path).read_text())
    except (OSError, ValueError):
        return False
    return not state.get("stopped") and process_alive(int(state.get("pid", 0)))


def _when_process(node_home: Home) -> str:
    if _process_running(node_home):
        return "the liquidity process, within a second,"
    return "no liquidity process runs now; when one does, it"


def _control_answer(
    node_home: Home, name: str, record: dict[str, Any], changed: bool
) -> dict[str, Any]:
    """What `stop --json` and `start --json` print: the instance's operator fields now."""
    state = "halted" if record.get("halted") else "stopped" if record.get("stopped") else "quoting"
    return {"name": name, "state": state, "changed": changed, "stopped": record.get("stopped"),
            "halted": record.get("halted"), "process_running": _process_running(node_home)}


@app.command("eval")
def eval_command(
    seeds: Annotated[
        str, typer.Option("--seeds", help="Comma-separated seeds; each goal is the worst.")
    ] = "1,2,3",
    steps: Annotated[int, typer.Option("--steps", help="Steps (seconds) per flow.")] = 240,
    json: JsonOption = False,
) -> None:
    """Run the AMM, the adaptive market maker and a fixed-spread baseline on seeded flows
    (uninformed and informed takers, a drop, a trend) against a real node in a temporary
    home; report each goal's worst case over the seeds; exit 1 when one is missed."""
    from marketnode.node.tools.liquidity_eval import evaluate
    from marketnode.node.tools.liquidity_traces import TRACES, FlowShape

    try:
        chosen = [int(seed) for seed in seeds.split(",") if seed.strip()]
    except ValueError:
        fail(f"--seeds {seeds!r}: comma-separated whole numbers, e.g. 1,2,3", EXIT_USAGE)
    if not chosen:
        fail("--seeds: at least one seed is needed", EXIT_USAGE)
    if steps < 20:
        fail(f"--steps {steps}: at least 20 (the flows' windows need them)", EXIT_USAGE)
    progress = (lambda line: None) if json else typer.echo
    report = evaluate(chosen, list(TRACES), FlowShape(steps=steps), progress=progress)
    if json:
        print_json(report)
    else:
        goals = report["goals"]
        typer.echo(
            f"worst of seeds {', '.join(map(str, chosen))}:\n"
            f"inventory breaches {report['inventory_breaches']} (goal 0)\n"
            f"adverse selection reduction on the trend {report['adverse_selection_reduction']} "
            f"(goal >= 0.3; seed {report['worst_seed']['adverse_selection_reduction']})\n"
            f"spread increase on the trend {report['spread_increase']} (goal <= 0.2; seed "
            f"{report['worst_seed']['spread_increase']})\n"
            f"AMM reserve mismatch {report['amm_reserve_mismatch']} (goal 0)\n"
            f"self-trades {report['self_trades']} (goal 0)\n"
            f"adverse selection: {report['adverse_selection_measure']}"
        )
        missed = [name for name, met in goals.items() if not met]
        if missed:
            typer.echo(f"missed: {', '.join(missed)}")
    if not report["passed"]:
        fail("a liquidity goal was missed", EXIT_CHECK_FAILED)

"""`mnode start`, `mnode stop`, `mnode status`: run a node and talk to it over its admin socket."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from marketnode.node.analytics.integrity import detector_settings
from marketnode.node.client import AdminClient, ClientError, address_of_home
from marketnode.node.home.config import LOG_LEVELS
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.node.home.layout import Home
from marketnode.node.home.permissions import keep_new_files_private, security_problems
from marketnode.node.ops.scaling import policy_settings
from marketnode.node.server.node import Node, NodeError
from marketnode.node.store.child_read import read_in_child
from marketnode.node.store.lmdb_store import StoreError
from marketnode.node.store.verify import check_for_start

from .common import (
    EXIT_CONFIG,
    EXIT_NOT_RUNNING,
    EXIT_STORE,
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    operator_errors,
    print_json,
    require_home,
    require_running_node,
)

STOP_WAIT_S = 30.0


def start_command(
    home: HomeOption = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help=f"Override [node] log_level: {', '.join(LOG_LEVELS)}.",
            show_default=False,
        ),
    ] = None,
    allow_insecure_keys: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-keys",
            help="Start even if other users can read a secret key file (warned, not refused).",
        ),
    ] = False,
) -> None:
    """Run the node in the foreground until Ctrl-C, SIGTERM or `mnode stop`.

    First checks the home: a secret key others can read refuses the start (exit 3) unless
    --allow-insecure-keys; other open files and a non-loopback endpoint with CURVE off are
    warned about. Then checks the store (exit 4 if it fails; `mnode verify` says where).
    Prints its endpoints and server key, then logs to stderr, one line per event of note.
    """
    node_home = require_home(home)
    with operator_errors():
        config = node_home.config()
        if config.analytics.enabled:  # its process scans with them: refuse mistakes now
            detector_settings(config.integrity, str(node_home.config_path))
        policy_settings(config.scaling, str(node_home.config_path))
    level = log_level or config.node.log_level
    if level not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {level!r}", 2)
    keep_new_files_private()  # the store, node.json, the analytics process's files
    for problem in security_problems(node_home.path, config):
        if problem.refuses and not allow_insecure_keys:
            fail(f"refusing to start: {problem.message}", EXIT_CONFIG)
        typer.echo(f"mnode: warning: {problem.message}", err=True)
    check_store_for_start(node_home.store_path(config))
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    node = Node(node_home, config)
    with operator_errors():
        try:
            node.start()
        except NodeError as error:
            fail(str(error), EXIT_STORE)
    typer.echo(
        f"node {config.node.name!r} running (pid {node.status()['pid']})\n"
        f"  orders       {node.endpoints['orders']}\n"
        f"  market data  {node.endpoints['market_data']}\n"
        f"  admin        {node.endpoints['admin']}\n"
        f"  server key   {node.server_public_key or '(CURVE off)'}"
    )
    if "prometheus" in node.endpoints:
        typer.echo(f"  prometheus   {node.endpoints['prometheus']}")
    node.serve()


def check_store_for_start(store_path: Path) -> None:
    """Refuse (exit 4, one line) a store that fails the start's check (node.store.verify's
    `check_for_start`: the whole journal replayed when it is short, else its end and the books'
    hash), read in a child process so a page LMDB aborts on is a refusal too."""
    if not (store_path / "data.mdb").exists():
        return
    try:
        problems = read_in_child(store_path, check_for_start)
    except StoreError as error:
        fail(
            f"refusing to start: the store fails the start check: {error} "
            "(`mnode verify` checks it whole)",
            EXIT_STORE,
        )
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        fail(
            f"refusing to start: the store fails the start check: {problems[0]}{more}; "
            "`mnode verify` lists every problem",
            EXIT_STORE,
        )


def admin_result(node_home: Home, cmd: str, **arguments: object) -> Any:
    """One admin request with the home's operator key; ClientError if it fails."""
    with operator_errors():
        config = node_home.config()
        key = None
        if config.security.curve:
            key = load_key_pair(node_home.keys_path(config) / f"{OPERATOR}.key_secret")
    with AdminClient(address_of_home(node_home, config), key, timeout_s=3.0) as client:
        return client.call(cmd, **arguments)


def admin_call(node_home: Home, cmd: str, **arguments: object) -> Any:
    """One admin request; a node that is not running or does not answer is one line and
    exit 5 (at once when node.json says no node runs), a refused request one line and
    exit 2."""
    require_running_node(node_home)
    try:
        return admin_result(node_home, cmd, **arguments)
    except ClientError as error:
        fail(str(error), EXIT_NOT_RUNNING if error.unreachable else EXIT_USAGE)


def stop_command(home: HomeOption = None) -> None:
    """Ask the running node to finish its batch, commit and exit; wait until it has."""
    node_home = require_home(home)
    result = admin_call(node_home, "shutdown")
    deadline = time.monotonic() + STOP_WAIT_S
    while node_home.runtime_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if node_home.runtime_path.exists():
        fail(f"the node did not stop within {STOP_WAIT_S:g} s", EXIT_NOT_RUNNING)
    typer.echo(f"stopped at seq {result['seq']}", err=True)


def status_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """The running node's identity, endpoints, sequence, books and peers."""
    node_home = require_home(home)
    status = admin_call(node_home, "status")
    if json:
        print_json(status)
        return
    typer.echo(
        f"{status['name']} (pid {status['pid']}, marketnode {status['version']}), "
        f"up {status['uptime_s']:.0f} s\n"
        f"  seq {status['seq']}, journal {status['journal_length']} entries, "
        f"state hash {status['state_hash']}\n"
        f"  {status['markets']} markets ({len(status['halted'])} halted), "
        f"{status['resting_orders']} resting orders\n"
        f"  peers: {status['peers_registered']} registered, seen: "
        f"{', '.join(status['peers_seen']) or 'none'}\n"
        f"  analytics: {_analytics_text(status['analytics'])}\n"
        f"  matching core: {status['core']['core']} ({status['core']['reason']})\n"
        f"  new connections: {_admission_text(status['admission'])}\n"
        f"  orders {status['endpoints']['orders']}, market data "
        f"{status['endpoints']['market_data']}, admin {status['endpoints']['admin']}"
    )


def _admission_text(admission: dict) -> str:
    """The order socket's connection admission: its bound, and what it drops now if it does."""
    if admission["state"] != "on":
        return admission["state"]
    bound = f"at most about {admission['rate_per_s']} a second in a storm"
    if not admission["dropping"]:
        return bound
    return f"{bound}, dropping {admission['dropping']:.0%} of SYNs now"


def _analytics_text(analytics: object) -> str:
    """The analytics process as the node's supervisor describes it: "off", its state ("running
    since ...", "died at ..., restarting in ...") or, once it answers, its state and lag."""
    if not isinstance(analytics, dict):
        return str(analytics)
    lag = f"{analytics['lag_commands']} commands ({analytics['lag_s']} s) behind the journal"
    return f"{analytics['state']}, {lag}" if "state" in analytics else lag

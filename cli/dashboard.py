"""`mnode dashboard`: the running node, live, in the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import msgspec
import typer
import zmq
import zmq.utils.monitor
import zmq.utils.z85

from marketnode.node.client import NodeAddress, RemoteAddress, address_of_home
from marketnode.node.cluster.directory import DirectoryError, read_directory
from marketnode.node.cluster.local import ClusterError, cluster_of_home
from marketnode.node.home.keys import (
    OPERATOR,
    SERVER,
    KeyFileError,
    KeyPair,
    is_z85_key,
    load_key_pair,
    load_public_key,
)
from marketnode.node.home.layout import Home
from marketnode.tui.sources import ClusterLink, ClusterUnavailable

from .common import EXIT_USAGE, HomeOption, fail, operator_errors, require_home

HANDSHAKE_PROBE_S = 2.0
HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def dashboard_command(
    home: HomeOption = None,
    connect: Annotated[
        str | None,
        typer.Option(
            "--connect",
            help="The node's admin endpoint (tcp://HOST:PORT), for a node whose home is not "
            "on this machine; its other endpoints are asked from it.",
            show_default=False,
        ),
    ] = None,
    server_key: Annotated[
        str | None,
        typer.Option(
            "--server-key",
            help="With --connect: the node's public key (40 Z85 characters, or its server.key "
            "file). Without it and without --home, CURVE is off.",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="With --connect: the operator's secret key file (operator.key_secret).",
            show_default=False,
        ),
    ] = None,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin",
            help="Allow actions that change the node (halt a market, disable a peer, label an "
            "alert), each confirmed first. Without it the dashboard only reads.",
        ),
    ] = False,
    refresh: Annotated[
        float, typer.Option("--refresh", min=0.25, help="Seconds between refreshes.")
    ] = 1.0,
) -> None:
    """Throughput, markets, the book, integrity alerts, scaling advice and resources of a
    running node (keys 1-9 switch panels, ? lists the keys, q quits)."""
    if connect is None:
        for given, name in ((server_key, "--server-key"), (key, "--key")):
            if given is not None:
                fail(f"{name} goes with --connect (a home has its own keys)", EXIT_USAGE)
        node_home = require_home(home)
        with operator_errors():
            locate, operator = _home_node(node_home)
    else:
        locate, operator = _remote_node(connect, server_key, key, home)
    if not sys.stdout.isatty():
        fail("the dashboard needs a terminal and stdout is not one (for a pipe or a script: "
             "mnode metrics --json)", EXIT_USAGE)  # fmt: skip
    cluster = None if connect is not None else cluster_link(node_home.path)
    open_dashboard(locate, operator, admin=admin, refresh_s=refresh, cluster=cluster)


def open_dashboard(
    locate: Callable[[], NodeAddress],
    key: KeyPair | None,
    admin: bool,
    refresh_s: float = 1.0,
    note: str | None = None,
    cluster: ClusterLink | None = None,
) -> None:
    """Run the dashboard until the operator quits; `note` is shown on it when it opens,
    `cluster` in its Cluster panel."""
    from marketnode.tui.app import AdminDashboard, Dashboard

    kind = AdminDashboard if admin else Dashboard
    kind(locate, key, refresh_s=refresh_s, note=note, cluster=cluster).run()


def cluster_link(home: Path) -> ClusterLink | None:
    """The Cluster panel's way to the local cluster `home` is a node of (None: of none): its
    directory read from the servers in the folder's record, each node asked with the operator
    key in its home."""
    found = cluster_of_home(home)
    if found is None:
        return None
    cluster, name = found

    def directory() -> dict:
        try:
            return msgspec.to_builtins(read_directory(cluster.record().urls))
        except (ClusterError, DirectoryError) as error:
            raise ClusterUnavailable(str(error)) from None

    return ClusterLink(cluster.path, name, directory, cluster.admin)


def _home_node(node_home: Home) -> tuple[Callable[[], NodeAddress], KeyPair | None]:
    config = node_home.config()
    operator = None
    if config.security.curve:
        operator = _key_pair(node_home.keys_path(config) / f"{OPERATOR}.key_secret")
    address_of_home(node_home, config)  # a mistake in the home shows now, in one line
    return (lambda: address_of_home(node_home)), operator


def _remote_node(
    endpoint: str, server_key: str | None, key: Path | None, home: Path | None
) -> tuple[Callable[[], NodeAddress], KeyPair | None]:
    transport, _, rest = endpoint.partition("://")
    if transport not in ("tcp", "ipc") or not rest:
        fail(f"--connect {endpoint!r}: expected tcp://HOST:PORT or ipc://PATH", EXIT_USAGE)
    public = None
    if server_key is not None:
        public = _public_key(server_key)
    elif home is not None:
        node_home = Home(home)
        with operator_errors():
            config = node_home.config()
            if config.security.curve:
                public = _public_key(str(node_home.keys_path(config) / f"{SERVER}.key"))
                key = key or node_home.keys_path(config) / f"{OPERATOR}.key_secret"
    operator = None
    if public is None:
        _refuse_a_curve_node(endpoint)
    else:
        if key is None:
            fail("--connect to a CURVE node needs --key (the operator's secret key file)",
                 EXIT_USAGE)  # fmt: skip
        operator = _key_pair(key)
    return RemoteAddress(endpoint, public, operator), operator


def _refuse_a_curve_node(endpoint: str) -> None:
    """Without a server key the dashboard would talk plain ZMTP; a node with CURVE on fails
    that handshake, and ZeroMQ would retry it for ever without a word. One plain connection
    tells: a mechanism mismatch is said in one line, with the keys it needs. A node that does
    not answer within `HANDSHAKE_PROBE_S` is left to the dashboard's banner and retries."""
    context = zmq.Context.instance()
    probe = context.socket(zmq.DEALER)
    probe.linger = 0
    monitor = probe.get_monitor_socket(HANDSHAKE_EVENTS)
    try:
        probe.connect(endpoint)
        if monitor.poll(int(HANDSHAKE_PROBE_S * 1000)):
            event = zmq.utils.monitor.recv_monitor_message(monitor)
            if event["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED:
                fail(f"{endpoint}: the handshake fails: the node has CURVE on; give "
                     "--server-key (its keys/server.key, or the 40 Z85 characters in it) and "
                     "--key (the operator's operator.key_secret)", EXIT_USAGE)  # fmt: skip
    finally:
        probe.disable_monitor()
        monitor.close()
        probe.close()


def _public_key(given: str) -> bytes:
    if is_z85_key(given):
        return zmq.utils.z85.decode(given.encode("ascii"))
    try:
        return load_public_key(Path(given))
    except KeyFileError as error:
        fail(f"--server-key: {error}", EXIT_USAGE)


def _key_pair(path: Path) -> KeyPair:
    with operator_errors():
        return load_key_pair(path)
    raise AssertionError("operator_errors exits on a bad key file")

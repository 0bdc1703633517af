"""The operator's and a peer's commands against a real `mnode start` process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.server.admission import filter_refused
from marketnode.node.tools.e2e import prepare_home, start_node_process, stop_node_process

runner = CliRunner()


@pytest.fixture
def served_home(tmp_path):
    """A home with peers `load` (relayer) and alice (owner 0xa11ce), served by `mnode start`."""
    home, _ = prepare_home(tmp_path / "home")
    added = runner.invoke(
        app, ["peers", "add", "alice", "--owner", "0xa11ce", "--home", str(home.path)]
    )
    assert added.exit_code == 0, added.stderr
    process = start_node_process(home)
    yield home
    stop_node_process(process)


def mnode(home, *args: str):
    return runner.invoke(app, [*args, "--home", str(home.path)])


def test_orders_status_markets_and_stop(served_home):
    home = served_home
    placed = mnode(
        home,
        "order",
        "submit",
        "PUNK-ETH",
        "sell",
        "5",
        "--price",
        "100.5",
        "--as",
        "alice",
        "--id",
        "s1",
        "--json",
    )
    assert placed.exit_code == 0, placed.stderr
    assert [e["event"] for e in json.loads(placed.stdout)] == ["accepted", "rested"]
    wrong_owner = mnode(
        home, "order", "submit", "PUNK-ETH", "buy", "1", "--as", "alice", "--owner", "0xb0b"
    )
    assert wrong_owner.exit_code == 6
    assert wrong_owner.stdout.startswith("rejected cli-")
    assert "(PUNK-ETH): not_authorized" in wrong_owner.stdout
    replaced = mnode(
        home, "order", "replace", "PUNK-ETH", "s1", "--qty", "3", "--as", "alice", "--json"
    )
    assert [e["event"] for e in json.loads(replaced.stdout)] == ["accepted", "replaced"]

    status = json.loads(mnode(home, "status", "--json").stdout)
    assert status["resting_orders"] == 1 and status["peers_registered"] == 2
    assert status["liquidity"] == "off"
    said = mnode(home, "status").stdout
    assert f"matching core: {status['core']['core']} ({status['core']['reason']})" in said
    if filter_refused() is None:
        assert status["admission"]["state"] == "on" and status["admission"]["dropping"] == 0
        assert "new connections: at most about 100 a second in a storm" in said
    else:  # this kernel refuses this user a socket filter: off, and said so
        assert f"new connections: {status['admission']['state']}" in said

    assert mnode(home, "markets", "halt", "PUNK-ETH").exit_code == 0
    halted = mnode(
        home,
        "order",
        "submit",
        "PUNK-ETH",
        "sell",
        "1",
        "--price",
        "101",
        "--as",
        "alice",
        "--json",
    )
    assert halted.exit_code == 6 and json.loads(halted.stdout)[0]["reason"] == "market_halted"
    moved = mnode(
        home, "order", "replace", "PUNK-ETH", "s1", "--price", "101", "--as", "alice", "--json"
    )
    assert moved.exit_code == 6 and json.loads(moved.stdout)[0]["reason"] == "market_halted"
    rows = json.loads(mnode(home, "markets", "list", "--json").stdout)
    assert {row["market"]: row["halted"] for row in rows}["PUNK-ETH"] is True
    assert mnode(home, "markets", "resume", "PUNK-ETH").exit_code == 0

    disabled = mnode(home, "peers", "disable", "alice")
    assert disabled.exit_code == 0 and "1 resting orders cancelled" in disabled.stderr
    refused = mnode(
        home, "order", "submit", "PUNK-ETH", "sell", "1", "--price", "101", "--as", "alice"
    )
    assert refused.exit_code == 6 and "(PUNK-ETH): peer_disabled" in refused.stdout
    assert mnode(home, "peers", "enable", "alice").exit_code == 0

    stopped = mnode(home, "stop")
    assert stopped.exit_code == 0, stopped.stderr
    gone = mnode(home, "status")
    assert gone.exit_code == 5
    assert gone.stderr.startswith("mnode: ")
    assert mnode(home, "verify").exit_code == 0


def test_load_and_watch(served_home):
    home = served_home
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketnode.cli",
            "watch",
            "PUNK-ETH",
            "--count",
            "3",
            "--json",
            "--home",
            str(home.path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    loaded = mnode(
        home,
        "load",
        "--as",
        "load",
        "--rate",
        "2000",
        "--duration",
        "2",
        "--markets",
        "PUNK-ETH",
        "--json",
    )
    assert loaded.exit_code == 0, loaded.stderr
    summary = json.loads(loaded.stdout)
    assert summary["sent"] == summary["answered"] > 0
    assert summary["accepted"] + summary["rejected"] == summary["sent"]
    assert summary["latency_ms"]["p50"] > 0
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    updates = [json.loads(line) for line in out.splitlines()]
    assert len(updates) == 4  # the snapshot's top of book, then three updates
    assert all(update["market"] == "PUNK-ETH" for update in updates)
    assert any(update["best_bid"] or update["best_ask"] for update in updates[1:])


def test_load_refuses_an_unknown_market(served_home):
    result = mnode(served_home, "load", "--as", "load", "--markets", "NOPE-ETH", "--duration", "1")
    assert result.exit_code == 2
    assert result.stderr.startswith("mnode: unknown market(s): NOPE-ETH")


def test_a_busy_port_is_one_line(tmp_path):
    import socket

    home, _ = prepare_home(tmp_path / "home")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = home.config_path.read_text()
        home.config_path.write_text(
            config.replace('orders = "tcp://127.0.0.1:*"', f'orders = "tcp://127.0.0.1:{port}"')
        )
        result = subprocess.run(
            [sys.executable, "-m", "marketnode.cli", "start", "--home", str(home.path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 4
    assert result.stderr.startswith(
        f"mnode: cannot bind the orders socket to tcp://127.0.0.1:{port}: "
    )
    assert result.stderr.count("\n") == 1

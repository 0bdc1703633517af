"""A home is its owner's only: folders 0700 and data files 0600 whatever the umask, and a start
refuses a secret key others can read (unless --allow-insecure-keys) and warns of other open files
and of an endpoint other machines reach with CURVE off."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.home.config import parse_config
from marketnode.node.home.layout import Home
from marketnode.node.home.permissions import is_loopback_endpoint, security_problems
from marketnode.node.tools.e2e import NODE_COMMAND, prepare_home, stop_node_process

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "samples" / "orders.ndjson"
WAIT_S = 60.0
runner = CliRunner()


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The usual umask 022, which leaves files a library creates readable by everyone."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def mnode(home: Path, *args: str):
    return runner.invoke(app, [*args, "--home", str(home)])


def test_init_store_and_allowlist_files_are_the_owners_only(tmp_path):
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", str(home)]).exit_code == 0
    assert mode(home) == 0o700
    assert mode(home / "data") == 0o700
    assert mode(home / "keys") == 0o700
    assert mode(home / "config.toml") == 0o600
    assert mode(home / "keys" / "server.key_secret") == 0o600
    assert mnode(home, "replay", str(SAMPLE)).exit_code == 0
    for name in ("data.mdb", "lock.mdb", "writer.lock"):
        assert mode(home / "data" / name) == 0o600, name
    added = mnode(home, "peers", "add", "alice", "--owner", "0xa11ce")
    assert added.exit_code == 0, added.stderr
    assert mode(home / "peers.json") == 0o600
    assert mode(home / "keys" / "peers" / "alice.key_secret") == 0o600
    assert security_problems(home, Home(home).config()) == []


def test_analytics_sync_makes_the_analytics_file_the_owners_only(tmp_path):
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", str(home)]).exit_code == 0
    assert mnode(home, "replay", str(SAMPLE)).exit_code == 0
    synced = subprocess.run(
        [*NODE_COMMAND, "analytics", "sync", "--home", str(home)], capture_output=True, text=True
    )
    assert synced.returncode == 0, synced.stderr
    assert mode(home / "analytics.duckdb") == 0o600


def test_a_node_and_its_analytics_process_create_private_files(tmp_path):
    home, _ = prepare_home(tmp_path / "home", analytics=True)
    process = subprocess.Popen(
        [*NODE_COMMAND, "start", "--home", str(home.path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        analytics = home.path / "analytics.duckdb"
        deadline = time.monotonic() + WAIT_S
        while not (analytics.exists() and home.runtime_path.exists()):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert mode(analytics) == 0o600
        assert mode(home.path / "data" / "data.mdb") == 0o600
    finally:
        stop_node_process(process)


def test_a_readable_secret_key_refuses_the_start_unless_allowed(tmp_path):
    home, _ = prepare_home(tmp_path / "home")
    secret = home.path / "keys" / "server.key_secret"
    os.chmod(secret, 0o644)
    problems = security_problems(home.path, home.config())
    assert [p.refuses for p in problems] == [True]
    assert str(secret) in problems[0].message and "0644" in problems[0].message
    refused = mnode(home.path, "start")
    assert refused.exit_code == 3
    assert refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(f"mnode: refusing to start: {secret}: a secret key")
    assert "--allow-insecure-keys" in refused.stderr
    process = subprocess.Popen(
        [*NODE_COMMAND, "start", "--allow-insecure-keys", "--home", str(home.path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + WAIT_S
    while not home.runtime_path.exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.terminate()
    _, errors = process.communicate(timeout=WAIT_S)
    assert errors.splitlines()[0].startswith(f"mnode: warning: {secret}: a secret key")


def test_open_data_files_and_folders_are_warned_of(tmp_path):
    home, _ = prepare_home(tmp_path / "home")
    assert mnode(home.path, "replay", str(SAMPLE)).exit_code == 0
    os.chmod(home.path / "data" / "data.mdb", 0o644)
    os.chmod(home.path / "peers.json", 0o640)
    os.chmod(home.path, 0o755)
    problems = security_problems(home.path, home.config())
    assert not any(p.refuses for p in problems)
    assert [p.message for p in problems] == [
        f"{home.path}: readable by other users (mode 0755); chmod 700 it",
        f"{home.path / 'data' / 'data.mdb'}: readable by other users (mode 0644); chmod 600 it",
        f"{home.path / 'peers.json'}: readable by other users (mode 0640); chmod 600 it",
    ]


def _config(endpoints: str, curve: bool):
    return parse_config(
        f"[security]\ncurve = {str(curve).lower()}\n\n[endpoints]\n{endpoints}\n", "config.toml"
    )


def test_an_endpoint_other_machines_reach_with_curve_off_is_warned_of(tmp_path):
    home = Home.create(tmp_path / "home").path
    open_orders = _config('orders = "tcp://0.0.0.0:7701"\nadmin = "tcp://*:7703"', curve=False)
    messages = [p.message for p in security_problems(home, open_orders)]
    assert messages == [
        "orders endpoint tcp://0.0.0.0:7701 is reachable from other machines with CURVE off "
        "([security] curve = false): anyone there may act for any owner",
        "admin endpoint tcp://*:7703 is reachable from other machines with CURVE off "
        "([security] curve = false): anyone there may act for any owner",
    ]
    assert security_problems(home, _config('orders = "tcp://0.0.0.0:7701"', curve=True)) == []
    assert security_problems(home, _config('orders = "tcp://127.0.0.1:7701"', curve=False)) == []


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:7701", True),
        ("tcp://127.0.0.2:7701", True),
        ("tcp://localhost:7701", True),
        ("tcp://[::1]:7701", True),
        ("ipc:///tmp/node.sock", True),
        ("inproc://node", True),
        ("tcp://0.0.0.0:7701", False),
        ("tcp://*:7701", False),
        ("tcp://[::]:7701", False),
        ("tcp://10.0.0.5:7701", False),
        ("tcp://eth0:7701", False),
    ],
)
def test_loopback_endpoints(endpoint, loopback):
    assert is_loopback_endpoint(endpoint) is loopback

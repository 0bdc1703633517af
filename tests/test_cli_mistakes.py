"""A user's mistakes through `mnode`: the same mistake is the same exit code everywhere, an
unknown name is an error (never an empty success), a bad time says what is accepted, and a
command that needs the node says at once when none runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.cli.times import ACCEPTED_TIMES, parse_time
from tests.conftest import RunningNode

runner = CliRunner()
ALICE = "0xa11ce"


def mnode(home: Path, *args: str):
    return runner.invoke(app, [*args, "--home", str(home)])


def order(price: str, order_id: str, owner: str, side: str) -> dict:
    return {
        "op": "new", "market": "PUNK-ETH", "id": order_id, "owner": owner, "side": side,
        "price": price, "qty": "4", "stp": "none",
    }  # fmt: skip


ROUND_TRIP = [
    order("103", "r1", "0xa", "sell"), order("103", "r2", "0xb", "buy"),
    order("103", "r3", "0xb", "sell"), order("103", "r4", "0xa", "buy"),
]  # fmt: skip
"""0xa sells to 0xb and buys it back: a round trip the detectors flag."""


@pytest.fixture
def scanned_home(tmp_path) -> Path:
    """A home (no node) with trades in its analytics store and the alerts of a scan."""
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", str(home)]).exit_code == 0
    source = tmp_path / "flow.ndjson"
    source.write_bytes(b"\n".join(msgspec.json.encode(command) for command in ROUND_TRIP))
    assert mnode(home, "replay", str(source)).exit_code == 0
    scanned = mnode(home, "integrity", "scan")
    assert scanned.exit_code == 0, scanned.stderr
    return home


# -- the same mistake, the same exit code ---------------------------------------------------


def test_an_unknown_peer_is_exit_2_with_or_without_a_node(node_factory):
    running = node_factory(peers={"alice": (ALICE,)})
    home = running.home.path
    for command in (["peers", "revoke", "nobody"], ["peers", "disable", "ghost"],
                    ["peers", "enable", "ghost"]):  # fmt: skip
        result = mnode(home, *command)
        assert (result.exit_code, result.stderr) == (2, f"mnode: no peer named {command[2]!r}\n")
    halted = mnode(home, "markets", "halt", "NOPE-ETH")
    assert halted.exit_code == 2 and "NOPE-ETH" in halted.stderr
    running.stop()
    offline = mnode(home, "peers", "revoke", "nobody")
    assert (offline.exit_code, offline.stderr) == (2, "mnode: no peer named 'nobody'\n")


def test_writing_the_analytics_store_under_a_running_node_is_exit_4(node_factory):
    home = node_factory().home.path
    for command in (["integrity", "scan"], ["integrity", "rank"],
                    ["integrity", "link", "0xa", "0xb", "--reason", "same funder"]):  # fmt: skip
        result = mnode(home, *command)
        assert result.exit_code == 4, (command, result.stderr)
        assert result.stderr.startswith(f"mnode: a node is running on {home}: stop it first")


def test_acting_as_a_peer_that_does_not_exist_names_it(running_node: RunningNode):
    result = mnode(running_node.home.path, "order", "submit", "PUNK-ETH", "buy", "1", "--price",
                   "100", "--as", "carol")  # fmt: skip
    assert (result.exit_code, result.stderr) == (
        2, "mnode: no peer named 'carol' (`mnode peers list` shows them)\n",
    )  # fmt: skip
    watched = mnode(running_node.home.path, "watch", "PUNK-ETH", "--as", "carol")
    assert (watched.exit_code, watched.stderr) == (result.exit_code, result.stderr)


def test_a_revoked_peer_is_told_it_is_no_longer_registered(running_node: RunningNode):
    home = running_node.home.path
    running_node.client("alice").ping()  # the node has loaded the allowlist naming alice
    assert mnode(home, "peers", "revoke", "alice").exit_code == 0
    result = mnode(home, "order", "submit", "PUNK-ETH", "buy", "1", "--price", "100", "--as",
                   "alice")  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("mnode: alice is not (or no longer) a registered peer: ")
    assert "--owner" not in result.stderr


# -- unknown names are errors -----------------------------------------------------------------


def test_trades_of_an_unknown_market_is_an_error(scanned_home):
    result = mnode(scanned_home, "trades", "--market", "NOPE-ETH")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("mnode: unknown market 'NOPE-ETH' (markets: PUNK-ETH, ")
    known = mnode(scanned_home, "trades", "--market", "PUNK-ETH", "--json")
    assert known.exit_code == 0 and len(json.loads(known.stdout)) == 2


def test_alerts_of_an_unknown_severity_gives_the_accepted_ones(scanned_home):
    result = mnode(scanned_home, "alerts", "--severity", "critical")
    assert (result.exit_code, result.stderr) == (
        2, "mnode: --severity must be one of low, medium, high, got 'critical'\n",
    )  # fmt: skip
    assert result.stdout == ""


# -- times ------------------------------------------------------------------------------------


NOW = datetime(2026, 11, 28, 15, 30, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-11-28T09:30:00Z", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
        ("2026-11-28T10:30:00+01:00", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
        ("2026-11-28T09:30:00", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
        ("2026-11-27", datetime(2026, 11, 27, tzinfo=UTC)),
        ("1h", NOW - timedelta(hours=1)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2d", NOW - timedelta(days=2)),
        ("45s", NOW - timedelta(seconds=45)),
        ("1w", NOW - timedelta(weeks=1)),
        ("today", datetime(2026, 11, 28, tzinfo=UTC)),
        ("yesterday", datetime(2026, 11, 27, tzinfo=UTC)),
        ("now", NOW),
    ],
)
def test_a_time_is_iso_8601_an_age_or_a_day(text, instant):
    assert parse_time(text, "--since", NOW) == instant


@pytest.mark.parametrize("text", ["tomorrow-ish", "1y", "-1h", "2026-13-01", ""])
def test_a_bad_time_is_refused(text):
    with pytest.raises(ValueError, match=f"--until: {text!r} is not a time"):
        parse_time(text, "--until", NOW)


def test_every_since_and_until_takes_the_same_times(scanned_home):
    for command in (["trades"], ["alerts"]):
        for option in ("--since", "--until"):
            bad = mnode(scanned_home, *command, option, "the day before")
            assert bad.exit_code == 2, bad.stderr
            assert bad.stderr == (
                f"mnode: {option}: 'the day before' is not a time; use {ACCEPTED_TIMES}\n"
            )
        recent = json.loads(mnode(scanned_home, *command, "--since", "yesterday", "--json").stdout)
        assert recent
        future = mnode(scanned_home, *command, "--since", "2999-01-01", "--json")
        assert future.exit_code == 0 and json.loads(future.stdout) == []
        past = mnode(scanned_home, *command, "--until", "1d", "--json")
        assert past.exit_code == 0 and json.loads(past.stdout) == []


# -- no node running: said at once --------------------------------------------------------------


NODE_COMMANDS = [
    ["status"], ["stop"], ["metrics"], ["scale"], ["markets", "list"], ["peers", "disable", "x"],
    ["analytics", "lag"], ["order", "submit", "PUNK-ETH", "buy", "1", "--as", "alice"],
    ["watch", "PUNK-ETH"], ["load", "--as", "alice", "--duration", "1"],
]  # fmt: skip


def _with_alice(tmp_path) -> Path:
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", str(home)]).exit_code == 0
    assert mnode(home, "peers", "add", "alice", "--owner", ALICE).exit_code == 0
    return home


@pytest.mark.parametrize("command", NODE_COMMANDS, ids=" ".join)
def test_with_no_node_json_a_node_command_says_so_without_asking(tmp_path, command):
    home = _with_alice(tmp_path)
    result = mnode(home, *command)
    assert (result.exit_code, result.stderr) == (
        5, f"mnode: no node is running on {home} (no node.json; `mnode start` runs one)\n",
    )  # fmt: skip


def test_a_node_json_left_by_a_dead_node_is_no_node(tmp_path):
    """The pid it names has exited: answered from the pid, not after waiting for a socket."""
    home = _with_alice(tmp_path)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(finished.stdout)
    (home / "node.json").write_text(json.dumps({"pid": pid, "endpoints": {}}))
    for command in (["status"], ["order", "submit", "PUNK-ETH", "buy", "1", "--as", "alice"]):
        result = mnode(home, *command)
        assert (result.exit_code, result.stderr) == (
            5, f"mnode: no node is running on {home} (node.json names pid {pid}, which has "
            "exited; `mnode start` runs one)\n",
        )  # fmt: skip
    # the commands that fall back to the files when no node runs do so
    assert mnode(home, "peers", "revoke", "alice").exit_code == 0
    assert os.path.exists(home / "node.json")


@pytest.mark.parametrize("first", ["-q", "--", "-h"])
def test_a_public_key_that_begins_with_a_dash_is_the_key_not_an_option(tmp_path, first):
    """Z85 has `-` among its characters: one key in 85 begins with it, and it is still a key."""
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", str(home)]).exit_code == 0
    key = first + "x" * (40 - len(first))
    added = mnode(home, "peers", "add", "maker", key, "--relayer")
    assert added.exit_code == 0, added.output
    listed = json.loads(mnode(home, "peers", "list", "--json").stdout)
    assert [(peer["name"], peer["public_key"]) for peer in listed] == [("maker", key)]

"""What `mnode` prints for a person: a rejected order's reason in words (no `seq=None`), an
alert's wallets joined, and one alert pretty-printed on a terminal (JSON with --json or for a
pipe)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from marketnode.cli.alert_view import render_alert
from marketnode.cli.main import app
from tests.conftest import RunningNode
from tests.test_cli_mistakes import scanned_home  # noqa: F401  (a fixture)

runner = CliRunner()


def mnode(home: Path, *args: str):
    return runner.invoke(app, [*args, "--home", str(home)])


def test_a_rejected_order_prints_its_reason_plainly(running_node: RunningNode):
    home = running_node.home.path
    result = mnode(home, "order", "submit", "NOPE-ETH", "buy", "1", "--price", "100", "--as",
                   "alice", "--id", "o1")  # fmt: skip
    assert result.exit_code == 6
    assert result.stdout.startswith("rejected o1 (NOPE-ETH): unknown_market")
    assert "None" not in result.stdout and "seq=" not in result.stdout
    as_json = mnode(home, "order", "submit", "NOPE-ETH", "buy", "1", "--price", "100", "--as",
                    "alice", "--id", "o2", "--json")  # fmt: skip
    assert as_json.exit_code == 6
    assert json.loads(as_json.stdout)[0]["reason"] == "unknown_market"
    placed = mnode(home, "order", "submit", "PUNK-ETH", "sell", "1", "--price", "100", "--as",
                   "alice", "--id", "o3")  # fmt: skip
    assert placed.exit_code == 0, placed.stderr
    assert "None" not in placed.stdout and "event=accepted" in placed.stdout


def test_alert_wallets_are_joined(scanned_home):  # noqa: F811
    listed = mnode(scanned_home, "alerts")
    assert listed.exit_code == 0
    header, *rows = listed.stdout.splitlines()
    assert rows and "wallets" in header.split("\t")
    column = header.split("\t").index("wallets")
    assert {row.split("\t")[column] for row in rows} == {"0xa, 0xb"}
    assert "[" not in listed.stdout


def _an_alert(home: Path) -> dict:
    return json.loads(mnode(home, "alerts", "--json").stdout)[0]


def test_alerts_show_is_json_for_a_pipe_and_with_json(scanned_home):  # noqa: F811
    alert_id = _an_alert(scanned_home)["id"]
    piped = mnode(scanned_home, "alerts", "show", alert_id)
    flagged = mnode(scanned_home, "alerts", "show", alert_id, "--json")
    assert piped.exit_code == flagged.exit_code == 0
    assert json.loads(piped.stdout) == json.loads(flagged.stdout)
    assert json.loads(piped.stdout)["id"] == alert_id


def test_an_alert_is_rendered_indented_and_wrapped():
    record = {
        "id": "a1", "time": "2026-11-28T09:30:00Z", "detector": "round_trips",
        "severity": "high", "market": "PUNK-ETH", "wallets": ["0xa", "0xb"],
        "trades": list(range(1000, 1400)), "wash_volume": "1600", "label": None,
        "evidence": {"round_trips": 3, "sold": {"0xa": "4", "0xb": "4"},
                     "note": "word " * 60},
    }  # fmt: skip
    text = render_alert(record, width=60)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines), max(lines, key=len)
    assert lines[0] == "alert a1  high  round_trips  PUNK-ETH  2026-11-28T09:30:00Z"
    assert "  wallets      0xa, 0xb" in lines
    trades = lines.index("  trades       400: 1000, 1001, 1002, 1003, 1004, 1005,")
    assert lines[trades + 1] == " " * 15 + "1006, …"
    assert "    round_trips  3" in lines
    assert "    sold" in lines and "      0xa  4" in lines
    assert "  label        (not reviewed)" in lines
    notes = [line for line in lines if line.strip().startswith("word")]
    assert len(notes) > 3 and all(line.startswith(" " * 6) for line in notes[1:])


def test_alerts_show_on_a_terminal_is_for_a_person(scanned_home):  # noqa: F811
    """Through a pseudo-terminal: indented lines no wider than the terminal, no JSON."""
    alert_id = _an_alert(scanned_home)["id"]
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "marketnode.cli", "alerts", "show", alert_id, "--home",
         str(scanned_home)],
        stdout=follower, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "70"},
    )  # fmt: skip
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 0, process.stderr.read()
    process.stderr.close()
    lines = shown.decode().replace("\r\n", "\n").splitlines()
    assert lines[0].startswith(f"alert {alert_id}  ")
    assert all(len(line) <= 70 for line in lines)
    assert "  wallets      0xa, 0xb" in lines
    assert not shown.lstrip().startswith(b"{")

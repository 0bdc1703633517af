"""`mnode demo`: a node, a calibrated and steered flow with a drop, a wash ring, and the
summary of what the node's final scan found."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketnode.cli.demo import summary_text
from marketnode.cli.main import app
from marketnode.node.client import AdminClient, address_of_home
from marketnode.node.core.commands import NewOrder
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.node.home.layout import Home
from marketnode.node.tools.calibration import (
    DROP_TIMES,
    START_FRACTION,
    STEADY_SHARE,
    SteeringStep,
    given_rates,
    rates_for,
)
from marketnode.node.tools.demo import DemoReport
from marketnode.node.tools.demo_flow import prepared, round_plan

runner = CliRunner()
BOUND_S = 60.0
FLOW_MODULE = "marketnode.node.tools.demo_flow"
SUMMARY_KEYS = ("orders", "trades", "ring_trades", "orders_per_s_peak", "alerts",
                "alert_detectors", "ring_flagged", "recommendations", "advice")  # fmt: skip


@pytest.mark.slow
def test_the_demo_without_a_terminal_runs_headless_calibrated_and_waits_for_its_scan(tmp_path):
    """No --headless and no --rate: stdout is not a terminal, so the demo says it runs
    headless; it measures the machine, starts at half of 40% of it and steers from there,
    keeps its progress on stderr with --json and reports what a final scan found."""
    home = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--duration", "10", "--home", str(home), "--json"])
    assert result.exit_code == 0, result.stderr
    assert "stdout is not a terminal: the demo runs headless" in result.stderr
    summary = json.loads(result.stdout)
    for key in (*SUMMARY_KEYS, "rate_chosen"):
        assert key in summary
    measured = summary["rate_measured"]
    assert measured > 0
    assert summary["rate_chosen"] == round(max(100, measured * STEADY_SHARE * START_FRACTION))
    started_with = summary["rate_reason"].rpartition("; ")[0]  # then what the steering did
    assert "calibration" in started_with and started_with in result.stderr
    steered = summary["rate_steered"]
    assert steered["ceiling"] == round(max(100, measured * STEADY_SHARE))
    assert all(steered["floor"] <= rate <= steered["ceiling"] for *_, rate in steered["history"])
    if steered["history"]:  # a steady stretch long enough to steer from: a loaded machine's
        assert f"{steered['final']:,} orders/s" in summary["rate_reason"]  # 10 s may hold none
    else:
        assert steered["final"] == summary["rate_chosen"]
        assert "no steady stretch was long enough to steer from" in summary["rate_reason"]
    assert " orders/s " in result.stderr and " trades/s " in result.stderr  # progress lines
    assert summary["orders"] > 0 and summary["trades"] > 0
    assert summary["ring_trades"] > 0
    assert summary["final_scan"] and summary["ring_flagged"]
    steady, drop = summary["ack_ms"]["steady"], summary["ack_ms"]["drop"]
    assert steady["count"] > 0 and drop["count"] > 0  # the load peer's own answers, by phase
    assert 0 < steady["p50"] <= steady["p99"] <= steady["max"]
    assert (home / "analytics.duckdb").exists()  # a home given is kept


def test_the_rates_follow_the_capacity_and_rate_overrides_it():
    rates = rates_for(10_000)
    assert (rates.steady, rates.drop) == (2_000, 4_500)  # half of 40%, the drop 2.25x it
    steering = rates.steering()
    assert steering is not None and (steering.floor, steering.ceiling) == (400, 4_000)
    reason = rates.reason()
    assert "steady from 2,000 orders/s" in reason and "40% busy" in reason
    assert "between 400 and 4,000, 40% of the 10,000 orders/s" in reason
    given = given_rates(1000)
    assert given.steady == 1000 and given.measured is None and "--rate given" in given.reason()
    assert given.drop == 1000 * DROP_TIMES and given.steering() is None
    assert rates_for(10).steady == 100  # a stalled calibration still trades


def test_a_round_is_steady_then_the_drop_then_steady_in_short_pieces():
    plan = round_plan(30, rates_for(20_000))
    assert sum(piece.seconds for piece in plan) == pytest.approx(30)
    assert [piece.rate for piece in plan].count(9000) == 1 and max(p.seconds for p in plan) <= 10
    assert plan[0].rate == 4000 and plan[-1].rate == 4000
    assert [piece.in_drop for piece in plan] == [piece.rate == 9000 for piece in plan]


def test_each_piece_of_the_flow_has_the_orders_its_own_rate_calls_for():
    """The drop's ten seconds at its own rate, not the piece before's count; no id twice."""
    plan = round_plan(30, rates_for(1000))
    with ThreadPoolExecutor(max_workers=1) as generator:
        pieces = list(prepared(plan, generator))
    assert [piece for piece, _ in pieces] == plan
    assert [len(orders) for _, orders in pieces] == [int(p.seconds * p.rate) for p in plan]
    ids = [order.id for _, orders in pieces for order in orders if isinstance(order, NewOrder)]
    assert len(ids) == len(set(ids))


def test_a_summary_without_its_final_scan_does_not_claim_the_ring_went_unflagged():
    report = DemoReport(ring_trades=617, rates=rates_for(10_000))
    text = summary_text(report.summary())
    assert "not a final count" in text and "was not flagged;" not in text
    assert "2,000 orders/s" in text.splitlines()[0]


def test_the_summary_says_where_the_steering_took_the_rate_and_a_given_rate_that_it_held():
    report = DemoReport(rates=rates_for(10_000))
    report.steered = [SteeringStep(4.9, 0.81, 2_010.0, 1_600.0),
                      SteeringStep(9.9, 0.52, 1_590.0, 1_280.0)]  # fmt: skip
    summary = report.summary()
    assert summary["rate_chosen"] == 2_000 and summary["rate_drop"] == 4_500
    assert summary["rate_steered"] == {
        "target_busy": 0.4, "floor": 400, "ceiling": 4_000, "final": 1_280, "final_drop": 2_880,
        "history": [[4.9, 0.81, 2_010.0, 1_600.0], [9.9, 0.52, 1_590.0, 1_280.0]],
    }  # fmt: skip
    assert summary["rate_reason"].endswith(
        "steered 2 times, to 1,280 orders/s (the drop 2,880) after the matching thread read "
        "52% busy"
    )
    given = DemoReport(rates=given_rates(700)).summary()
    assert given["rate_steered"] is None and "not steered" in given["rate_reason"]


def test_the_demo_will_not_reuse_a_home(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.toml").write_text("")
    result = runner.invoke(app, ["demo", "--home", str(tmp_path / "taken")])
    assert result.exit_code == 2 and "not empty" in result.stderr


@pytest.mark.slow
def test_the_flow_trades_from_a_process_of_its_own_that_dies_with_the_demo(tmp_path):
    """The load peer and the ring are not in the demo's process (whose interpreter the
    dashboard needs), and a demo killed outright takes its flow with it."""
    home = tmp_path / "demo"
    with (tmp_path / "demo.err").open("wb") as errors:
        demo = subprocess.Popen(
            [sys.executable, "-m", "marketnode.cli", "demo", "--headless", "--rate", "200",
             "--duration", "600", "--home", str(home)],
            stdout=subprocess.DEVNULL, stderr=errors,
        )  # fmt: skip
    node_pid = None
    try:
        flow_pid = _until(lambda: _child_running(demo.pid, FLOW_MODULE), "the flow's process")
        node_pid = _child_running(demo.pid, "start --home")
        assert flow_pid != demo.pid and _parent_of(flow_pid) == demo.pid
        _until(lambda: _orders_taken(Home(home)) > 0, "the flow's first orders")
        demo.kill()
        demo.wait()
        _until(lambda: not _alive(flow_pid), "the flow's end once the demo was killed")
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if node_pid is not None and _alive(node_pid):  # the node the demo started, left behind
            os.kill(node_pid, signal.SIGTERM)
            _until(lambda: not _alive(node_pid), "the demo's node to stop")


def _until(condition, what: str):
    deadline = time.monotonic() + BOUND_S
    while not (value := condition()):
        assert time.monotonic() < deadline, f"no sign of {what} within {BOUND_S:g} s"
        time.sleep(0.05)
    return value


def _child_running(parent: int, command_part: str) -> int | None:
    """The pid of `parent`'s child whose command line holds `command_part`."""
    for children in Path(f"/proc/{parent}/task").glob("*/children"):
        for pid in map(int, children.read_text().split()):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except FileNotFoundError:
                continue
            if command_part.encode() in command:
                return pid
    return None


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _alive(pid: int) -> bool:
    """Running, that is: neither gone nor a zombie waiting for whoever inherited it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _orders_taken(home: Home) -> int:
    if not home.runtime_path.exists():
        return 0
    key = load_key_pair(home.keys_path(home.config()) / f"{OPERATOR}.key_secret")
    with AdminClient(address_of_home(home), key, timeout_s=5) as admin:
        return admin.call("metrics")["commands"]

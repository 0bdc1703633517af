"""`mnode demo`: a node, a calibrated and steered flow with a drop, a wash ring, liquidity
markets that quote through the drop, signed trades settled on the embedded chain, and the
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
from marketnode.node.tools.demo_markets import CONTINUOUS_S, LIQUIDITY, SideWatch, book_coverage

runner = CliRunner()
BOUND_S = 60.0
FLOW_MODULE = "marketnode.node.tools.demo_flow"
SUMMARY_KEYS = ("orders", "trades", "ring_trades", "orders_per_s_peak", "alerts",
                "alert_detectors", "ring_flagged", "recommendations", "advice")  # fmt: skip


@pytest.mark.slow
def test_the_demo_without_a_terminal_runs_headless_calibrated_and_waits_for_its_scan(tmp_path):
    """No --headless and no --rate: stdout is not a terminal, so the demo says it runs
    headless; it measures the machine, starts at half of 40% of it and steers from there,
    keeps its progress on stderr with --json and reports what a final scan found. The pool
    and the maker quoted both sides before the flow began and through its drop (the journal
    says so), takers traded with them, and the signed trades settled on the embedded chain."""
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
    assert set(summary["liquidity"]) == set(LIQUIDITY)
    for name, row in summary["liquidity"].items():
        assert row["strategy"] == LIQUIDITY[name][0] and row.get("halted") is None, row
        assert row["two_sided_from_s"] <= 0 and row["trades"] > 0, row
        assert row["longest_empty_side_in_drop_s"] <= row["longest_empty_side_s"] <= CONTINUOUS_S
        assert row["quoted_continuously"], row
    assert summary["liquidity_trades"] >= sum(r["trades"] for r in summary["liquidity"].values())
    settlement = summary["settlement"]
    assert settlement["phase"] == "settling" and not settlement["error"], settlement
    assert summary["settled_trades"] > 0 and summary["settlement_failures"] == 0, settlement
    settled = summary["settled_trades"] + summary["settlement_failures"] + settlement["pending"]
    assert settled <= summary["signed_trades"]  # the flow's count includes the unjournaled
    if settlement["all_final"]:
        assert settled == summary["signed_trades"] and settlement["pending"] == 0


def test_a_book_quoted_continuously_is_judged_on_its_longest_empty_side_in_the_flow():
    """Gaps are clipped to the flow's span, a gap still open runs to its end, the drop's
    figure is the longest stretch overlapping it, and the share counts overlaps once."""
    bids, asks = SideWatch(), SideWatch()
    for quoted_bid, quoted_ask, at in [(True, True, 5), (False, True, 12), (True, True, 12.4),
                                       (True, False, 30), (False, False, 30.2),
                                       (True, True, 30.6), (True, False, 49.5)]:  # fmt: skip
        bids.see(quoted_bid, at)
        asks.see(quoted_ask, at)
    figures = book_coverage((bids, asks), 5, trades=3, start=10, end=50, drops=[(29, 31)])
    assert figures["two_sided_from_s"] == -5 and figures["trades"] == 3
    assert figures["longest_empty_side_s"] == pytest.approx(0.6)  # the ask, 30 to 30.6
    assert figures["longest_empty_side_in_drop_s"] == pytest.approx(0.6)
    assert figures["two_sided_share"] == pytest.approx(1 - (0.4 + 0.6 + 0.5) / 40)
    assert figures["quoted_continuously"]
    late = book_coverage((SideWatch(), SideWatch()), 11, trades=0, start=10, end=50, drops=[])
    assert not late["quoted_continuously"]  # both sides only after the flow began
    gap = SideWatch(empty_since=20.0)
    never = book_coverage((gap, SideWatch()), None, trades=0, start=10, end=50, drops=[(29, 31)])
    assert never["longest_empty_side_s"] == 30 and never["longest_empty_side_in_drop_s"] == 2
    assert never["two_sided_from_s"] is None and not never["quoted_continuously"]


def test_the_summary_says_how_the_liquidity_quoted_and_what_settled():
    report = DemoReport(rates=rates_for(10_000))
    report.liquidity = {"pool": {
        "market": "FRAC-USDC", "strategy": "amm", "halted": None, "two_sided_from_s": -2.1,
        "two_sided_share": 0.998, "longest_empty_side_s": 0.31,
        "longest_empty_side_in_drop_s": 0.12, "trades": 80, "quoted_continuously": True,
    }}  # fmt: skip
    report.flow.signed_trades = 12
    report.settlement = {"phase": "settling", "caught_up": True, "gas_per_trade": 185_776,
                         "lag_p50_s": 4.97, "trades": {"confirmed": 11, "failed": 1},
                         "failures": [{"seq": 9, "reason": "buyer_transfer_failed"}]}  # fmt: skip
    summary = report.summary()
    assert (summary["settled_trades"], summary["settlement_failures"]) == (11, 1)
    lines = summary_text(summary).splitlines()
    assert lines[-2] == (
        "liquidity pool (amm, FRAC-USDC) quoted continuously: both sides 99.8% of the flow's "
        "time, a side empty 0.31 s at the longest (0.12 s in the drop), 80 trades"
    )
    assert lines[-1] == (
        "settlement: 12 signed DEED-USDC trades, 11 settled on the embedded chain, 1 failed "
        "(185,776 gas a trade, final 5.0 s after the trade at the median); reasons: "
        "buyer_transfer_failed"
    )
    report.settlement = {"phase": "failed", "error": "ValueError: landed elsewhere"}
    failed = summary_text(report.summary()).splitlines()[-1]
    assert failed == "settlement: the embedded chain failed: ValueError: landed elsewhere"
    report.settlement = {"phase": "starting"}
    assert summary_text(report.summary()).splitlines()[-1] == (
        "settlement: the embedded chain was not set up before the demo ended; 12 signed "
        "DEED-USDC trades unsettled"
    )


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

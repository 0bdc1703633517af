"""`mnode demo`: a node, a calibrated flow with a drop, a wash ring, and the summary of what
the node's final scan found."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from typer.testing import CliRunner

from marketnode.cli.demo import summary_text
from marketnode.cli.main import app
from marketnode.node.core.commands import NewOrder
from marketnode.node.tools.calibration import DROP_SHARE, STEADY_SHARE, given_rates, rates_for
from marketnode.node.tools.demo import DemoReport, prepared, round_plan

runner = CliRunner()
SUMMARY_KEYS = ("orders", "trades", "ring_trades", "orders_per_s_peak", "alerts",
                "alert_detectors", "ring_flagged", "recommendations", "advice")  # fmt: skip


@pytest.mark.slow
def test_the_demo_without_a_terminal_runs_headless_calibrated_and_waits_for_its_scan(tmp_path):
    """No --headless and no --rate: stdout is not a terminal, so the demo says it runs
    headless; it measures the machine, offers 40% of it, keeps its progress on stderr with
    --json and reports what a final scan found."""
    home = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--duration", "10", "--home", str(home), "--json"])
    assert result.exit_code == 0, result.stderr
    assert "stdout is not a terminal: the demo runs headless" in result.stderr
    summary = json.loads(result.stdout)
    for key in (*SUMMARY_KEYS, "rate_chosen"):
        assert key in summary
    measured = summary["rate_measured"]
    assert measured > 0
    assert summary["rate_chosen"] == round(max(100, measured * STEADY_SHARE))
    assert "calibration" in summary["rate_reason"] in result.stderr
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
    assert (rates.steady, rates.drop) == (10_000 * STEADY_SHARE, 10_000 * DROP_SHARE)
    assert "40% and 90% of the 10,000 orders/s" in rates.reason()
    given = given_rates(1000)
    assert given.steady == 1000 and given.measured is None and "--rate given" in given.reason()
    assert rates_for(10).steady == 100  # a stalled calibration still trades


def test_a_round_is_steady_then_the_drop_then_steady_in_short_pieces():
    plan = round_plan(30, rates_for(10_000))
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
    report = DemoReport(ring_trades=617, rates=rates_for(5000))
    text = summary_text(report.summary())
    assert "not a final count" in text and "was not flagged;" not in text
    assert "2,000 orders/s" in text.splitlines()[0]


def test_the_demo_will_not_reuse_a_home(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.toml").write_text("")
    result = runner.invoke(app, ["demo", "--home", str(tmp_path / "taken")])
    assert result.exit_code == 2 and "not empty" in result.stderr

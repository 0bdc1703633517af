"""The fee-timing evaluation (`mnode settlement eval`) and the properties of the built-in
`settlement_timing` policy it scores: every deadline met, no waiting on a climbing fee that
waiting cannot pay for, savings on a cycle and on spikes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.tools.fee_traces import FAMILIES, MAX_CHANGE, SHAPES, scenarios, trace
from marketnode.node.tools.settlement_eval import Outcome, replay, summary
from marketnode.plugins.settlement_timing import send_now, timing_manager

GWEI = 10**9
CALM = [20 * GWEI] * 20
FIGURES = ("saving", "worst_seed_saving", "worst_trace_saving", "worst_trace",
           "saving_by_max_delay_s", "deadline_misses", "trades_per_batch")  # fmt: skip


def _climbing(blocks: int = 21, per_block: float = 1.05) -> list[int]:
    return [int(10 * GWEI * per_block**i) for i in range(blocks)]


def test_cli_prints_one_json_object_with_the_judged_keys():
    result = CliRunner().invoke(app, ["settlement", "eval", "--json", "--seeds", "1",
                                      "--held-out-seeds", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in ("fee_saving", "deadline_misses", "goal_met", "trades", "traces", "worst"):
        assert key in report
    judged = []
    for family in FAMILIES:
        assert set(report[family]["scenarios"]) == set(SHAPES)
        for figures in report[family]["scenarios"].values():
            for key in FIGURES:
                assert key in figures
        cyclic, spiky = report[family]["scenarios"]["cycle"], report[family]["scenarios"]["spikes"]
        assert report[family]["fee_saving"] == min(cyclic["worst_seed_saving"],
                                                   spiky["worst_seed_saving"])  # fmt: skip
        judged.append(report[family]["fee_saving"])
    assert report["deadline_misses"] == 0
    assert report["immediate_deadline_misses"] == 0
    assert report["fee_saving"] == min(judged)
    assert report["fee_saving"] >= 0.20 and report["goal_met"]


def test_held_out_traces_are_other_shapes_than_the_tuning_ones():
    tuning, held_out = trace("spikes", "storm", 1), trace("spikes", "storm", 1, "held_out")
    assert tuning.base_fees != held_out.base_fees
    assert held_out.name.startswith("held_out/")


def test_cli_refuses_no_seeds_in_one_line():
    result = CliRunner().invoke(app, ["settlement", "eval", "--seeds", "0"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_worst_cases_are_the_worst_seed_and_trace():
    def outcome(name: str, seed: int, fees: float, immediate: float) -> Outcome:
        return Outcome(name, "spikes", seed, 300.0, 10, 2, fees, immediate, 0, 0)

    figures = summary([outcome("a", 1, 50, 100), outcome("b", 1, 90, 100),
                       outcome("c", 2, 70, 100), outcome("d", 2, 70, 100)])  # fmt: skip
    assert figures["saving"] == pytest.approx(0.3)  # 280 of 400
    assert figures["worst_seed_saving"] == pytest.approx(0.3)  # seed 1: 140 of 200; seed 2 too
    assert figures["worst_trace_saving"] == pytest.approx(0.1)
    assert figures["worst_trace"] == "b"


def test_traces_move_the_base_fee_at_most_an_eighth_a_block():
    for each in scenarios(4):
        for before, after in zip(each.base_fees, each.base_fees[1:], strict=False):
            assert abs(after - before) <= MAX_CHANGE * before + 1, each.name
        assert all(d > a for a, d in zip(each.arrivals, each.deadlines, strict=True))


@pytest.mark.parametrize("history", [[*CALM, 60 * GWEI], _climbing(), [*CALM, 2 * GWEI]])
def test_sends_when_under_two_blocks_are_left_whatever_the_fees(history):
    for block_s in (12.0, 2.0):
        settings = {"block_time_s": block_s}
        assert send_now(timing_manager(), history, 2 * block_s, settings, pending=3,
                        batch_size=50, waited_s=10.0)  # fmt: skip


def _traces(scenario: str, shape: str, wanted, count: int = 2) -> list:
    """The first `count` tuning traces of a shape (seeds from 1) that `wanted` accepts: a
    trace's deadlines and rate are drawn from its seed."""
    found = [each for seed in range(1, 200) if wanted(each := trace(scenario, shape, seed))]
    assert len(found) >= count, (scenario, shape)
    return found[:count]


def test_every_deadline_is_met_on_short_deadlines():
    """The relayer's default max_delay_s (30 s: 2.5 blocks of 12 s) on spikes and climbs, and
    expiries down to three blocks."""
    for scenario, shape in (("spikes", "long"), ("climb", "steps"), ("lookalike", "blip"),
                            ("spikes", "short"), ("spikes", "storm")):  # fmt: skip
        for each in _traces(scenario, shape, lambda t: t.max_delay_s == 30.0):
            outcome = replay(each)
            assert outcome.trades > 0 and outcome.misses == 0, each.name


def test_never_waits_on_a_climbing_fee_that_waiting_cannot_pay_for():
    climbing = _climbing()
    # no trade expected to join (nothing known of arrivals): only the fee counts
    assert send_now(timing_manager(), climbing, seconds_left=600, settings={})
    # a batch nearly full: the few trades to come save less than the climb costs
    assert send_now(timing_manager(), climbing, 600, {}, pending=48, batch_size=50,
                    waited_s=60.0)  # fmt: skip
    # one trade that has waited long alone: company is not coming
    assert send_now(timing_manager(), climbing, 600, {}, pending=1, batch_size=50,
                    waited_s=3000.0)  # fmt: skip
    # on a calm history the same lone trade would wait: the climb is what sends it
    assert not send_now(timing_manager(), [*CALM, 20 * GWEI], 600, {}, pending=2,
                        batch_size=50, waited_s=30.0)  # fmt: skip


def test_a_batch_waits_out_a_spike_and_for_trades_to_share_it():
    assert not send_now(timing_manager(), [*CALM, 60 * GWEI], 600, {}, pending=2,
                        batch_size=50, waited_s=30.0)  # fmt: skip
    # flat fees, trades coming: waiting lowers what each pays
    assert not send_now(timing_manager(), [*CALM, 20 * GWEI], 600, {}, pending=5,
                        batch_size=50, waited_s=30.0)  # fmt: skip


@pytest.mark.parametrize("scenario", ["cycle", "spikes"])
def test_saves_on_cycles_and_spikes(scenario):
    """Where trades can share a batch (a few a minute, deadlines of minutes), every shape
    saves a fifth or more."""
    for shape in SHAPES[scenario]:
        for each in _traces(scenario, shape, lambda t: t.max_delay_s >= 300 and
                            t.rate_per_min >= 3):  # fmt: skip
            outcome = replay(each)
            assert outcome.saving >= 0.20, outcome
            assert outcome.misses == 0

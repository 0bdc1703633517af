"""The demo's steady rate, steered from the node's own busy share: the controller as a pure
function of the readings it is given, the steerer's choice of steady seconds, and the flow's
process steering against a real node."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest

from marketnode.node.client import AdminClient, address_of_home
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.node.tools.calibration import (
    DROP_SETTLE_S,
    DROP_TIMES,
    MAX_CUT,
    MAX_STEP,
    MIN_SECONDS,
    BusyReading,
    Steerer,
    Steering,
    given_rates,
    rates_for,
    reading_of,
)
from marketnode.node.tools.demo import prepare_demo_home
from marketnode.node.tools.demo_flow import FlowProcess
from marketnode.node.tools.e2e import start_node_process, stop_node_process

STEERING = Steering(floor=1_000, ceiling=10_000)
BOUND_S = 60.0


def rates_picked(start: float, busy_shares: list[float], steering: Steering = STEERING) -> list:
    """The rates the controller picks from `start`, each reading taken at the rate before
    (what the node served there) with the given busy share."""
    rates = [start]
    for busy in busy_shares:
        rates.append(steering.next_rate(rates[-1], BusyReading(busy, rates[-1])))
    return rates


def test_a_busy_node_steers_the_rate_down_by_at_most_half_a_step_then_holds():
    rates = rates_picked(10_000, [0.92, 0.55, 0.41, 0.43, 0.37])
    assert rates == pytest.approx([10_000, 5_000, 3_636.4, 3_636.4, 3_636.4, 3_636.4], abs=0.1)
    # 0.92 busy aims at 4,348 (10,000 x 0.40 / 0.92): at most halved in one step, so 5,000;
    # at 0.55, 5,000 x 0.40 / 0.55 is within the cut; within five points of 40% it holds


def test_the_rate_falls_faster_than_it_rises():
    """Over the target the waiting grows as 1/(1 - rho), under it nothing is lost but flow:
    the same distance from the aim is covered in one step down and several up."""
    down = rates_picked(8_000, [0.80])  # aims at 4,000: reached at once
    up = rates_picked(4_000, [0.20] * 3)  # aims at 8,000: a quarter at a time
    assert down == pytest.approx([8_000, 4_000])
    assert up == pytest.approx([4_000, 5_000, 6_250, 7_812.5])


def test_an_idle_node_steers_the_rate_up_to_its_ceiling_and_a_saturated_one_to_its_floor():
    up = rates_picked(4_000, [0.10] * 6)
    assert up == pytest.approx([4_000, 5_000, 6_250, 7_812.5, 9_765.6, 10_000, 10_000], abs=0.1)
    down = rates_picked(2_000, [1.0] * 3)
    assert down == pytest.approx([2_000, 1_000, 1_000, 1_000])


def test_a_reading_with_nothing_served_still_says_which_way():
    stalled = STEERING.next_rate(5_000, BusyReading(busy=1.0, orders_per_s=0))
    assert stalled == pytest.approx(5_000 / (1 + MAX_CUT))
    unused = STEERING.next_rate(5_000, BusyReading(busy=0.0, orders_per_s=0))
    assert unused == pytest.approx(5_000 * (1 + MAX_STEP))
    assert STEERING.next_rate(5_000, None) == 5_000  # nothing steady to go by: it holds


def test_steering_a_node_whose_batches_cost_a_fixed_share_neither_oscillates_nor_overshoots():
    """A node whose busy share is a fixed 10% plus 0.01% an order/s (its batches' commits cost
    time whatever their size), each reading arriving one adjustment late, as the flow's next
    piece is generated while the one before it is sent: the rate falls to where the thread
    is within the deadband of 40% busy, never below, each step within its bound."""
    busy_at = lambda rate: min(1.0, 0.10 + rate / 10_000)  # noqa: E731
    rates = [10_000.0, 10_000.0]
    for _ in range(20):
        measured = rates[-2]
        rates.append(STEERING.next_rate(rates[-1], BusyReading(busy_at(measured), measured)))
    settled = rates[-1]
    assert abs(busy_at(settled) - STEERING.target) <= STEERING.deadband
    assert rates == sorted(rates, reverse=True)  # one way only: no oscillation
    assert all(later >= earlier / (1 + MAX_CUT) for earlier, later in pairwise(rates))
    assert settled >= 3_000  # the rate that would keep it at exactly 40%: not overshot


def sample(at: float, busy: float, orders: float, interval: float = 1.0) -> dict:
    return {"time": at, "interval_s": interval, "matching_busy": busy, "orders_per_s": orders}


def test_a_reading_weighs_each_second_and_needs_a_few_of_them():
    samples = [sample(1, 0.2, 1_000), sample(2, 0.6, 3_000), sample(3.5, 0.4, 2_000, 1.5)]
    assert reading_of(samples) == BusyReading(busy=round(1.4 / 3.5, 4), orders_per_s=2_000.0)
    assert reading_of(samples[: MIN_SECONDS - 1]) is None


def test_the_steerer_leaves_the_drop_and_its_settling_out_and_sizes_the_drop_from_the_rate():
    rates = rates_for(20_000)  # starts at 4,000, steered between 800 and 8,000
    steerer = Steerer(rates, started=1_000.0)
    assert steerer.rate_of(in_drop=True) == pytest.approx(4_000 * DROP_TIMES)
    steerer.drop_runs(1_010.0, 10.0)  # the drop's seconds, then DROP_SETTLE_S more
    during = [sample(1_011 + n, 0.99, 9_000) for n in range(12)]
    assert steerer.adjust(during) is None and steerer.rate == 4_000
    settled = 1_020 + DROP_SETTLE_S + 1
    after = [sample(settled + n, 0.92, 4_000) for n in range(3)]
    step = steerer.adjust(during + after)
    assert step is not None and (step.busy, step.orders_per_s) == (0.92, 4_000)
    assert steerer.rate == step.rate == pytest.approx(4_000 / (1 + MAX_CUT))
    assert step.at_s == settled + 2 - 1_000
    assert steerer.rate_of(in_drop=True) == pytest.approx(steerer.rate * DROP_TIMES)
    assert steerer.adjust([sample(999.5, 0.1, 100)] * 5) is None  # before the flow started


def test_a_rate_given_is_not_steered():
    steerer = Steerer(given_rates(700), started=0.0)
    assert steerer.steering is None
    assert steerer.adjust([sample(n, 0.99, 700) for n in range(1, 10)]) is None
    assert steerer.rate_of(in_drop=False) == 700 and not steerer.steps


@pytest.mark.slow
def test_the_flow_process_steers_from_what_the_node_says_and_a_given_rate_holds(tmp_path):
    """Against a real node: each step the flow's process reports is the controller's answer
    to a reading of the node's own per-second samples, which the node's history bears out;
    the steady rate reported is the last step's. With a rate given, no step and no change."""
    home = prepare_demo_home(tmp_path / "home")
    node = start_node_process(home)
    try:
        rates = rates_for(2_500)  # starts at 500 orders/s, between 100 and 1,000
        steered = _run_flow(home, rates, round_s=30)
        steering = rates.steering()
        assert steering is not None and steered.steered, "no steering step in 30 s"
        rate = rates.steady
        for step in steered.steered:
            assert 0 <= step.busy <= 1 and step.orders_per_s > 0
            reading = BusyReading(step.busy, step.orders_per_s)
            assert step.rate == pytest.approx(steering.next_rate(rate, reading), abs=0.1)
            rate = step.rate
        assert steered.rate == pytest.approx(rate, abs=0.1)
        _node_bears_out(home, steered.steered[0])
        given = _run_flow(home, given_rates(300), round_s=10)
        assert not given.steered and given.rate == 300 and given.orders_sent > 0
    finally:
        stop_node_process(node)


def _run_flow(home, rates, round_s: float):
    flow = FlowProcess(home, rates, round_s, rounds=1)
    flow.start()
    deadline = time.monotonic() + round_s + BOUND_S
    while flow.running and time.monotonic() < deadline:
        flow.read(wait_ms=200)
    progress = flow.stop()
    assert progress.done and not flow.ended_badly(), progress.error
    return progress


def _node_bears_out(home, step) -> None:
    """The node's own samples hold the step's reading: some run of `MIN_SECONDS` to ten of
    them, one after the other, averages to the busy share and rate the step read."""
    key = load_key_pair(home.keys_path(home.config()) / f"{OPERATOR}.key_secret")
    with AdminClient(address_of_home(home), key, timeout_s=BOUND_S) as admin:
        history = admin.call("metrics")["history"]
    runs = {
        reading_of(history[first : first + length])
        for length in range(MIN_SECONDS, 11)
        for first in range(len(history) - length + 1)
    }
    assert BusyReading(step.busy, step.orders_per_s) in runs

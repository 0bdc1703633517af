"""Issue 15's faults, each on a trace that shows it: the Scaler asked every 5 s over 1-s
samples (5-s ones for the disk), as beside a running node."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable

import pytest

from marketnode.node.home.config import ScalingConfig
from marketnode.node.ops.scaling import Scaler, policy_settings
from marketnode.node.tools.scaling_eval import START, sample
from marketnode.plugins.sharding import recommend_scaling as sharding_advice

Advice = list[tuple[float, list]]


def replay(
    load: Callable[[float], float],
    seconds: int,
    step_s: float = 1.0,
    noise: float = 0.01,
    disk: Callable[[float], float] | None = None,
    **tables: dict,
) -> Advice:
    """(seconds from the start, recommendations) at every evaluation, every 5 s."""
    rng = random.Random(15)
    scaler = Scaler(policy_settings(ScalingConfig(policies=tables)), 300)
    history: deque[dict] = deque(maxlen=3600)
    advice = []
    for n in range(int(seconds / step_s)):
        t = n * step_s
        history.append(sample(START + t, load(t), rng.gauss(0, noise),
                              disk(t) if disk else 60e9))  # fmt: skip
        if t % 5 == 0:
            advice.append((t, scaler.update(list(history), START + t)))
    return advice


def moments(advice: Advice, action: str, policy: str | None = None) -> list[float]:
    return [
        t
        for t, recs in advice
        if any(r.action == action and policy in (None, r.policy) for r in recs)
    ]


def test_short_spikes_on_a_steady_65_percent_load_are_no_breach():
    """Item 1: 4 s at 95% every 60-90 s on a steady 65% made a 10 s mean cross the band."""
    spikes = set()
    t = 30
    while t < 1800:
        spikes.update(range(t, t + 4))
        t += 60 + (t * 7) % 31

    advice = replay(lambda t: 0.95 if t in spikes else 0.65, 1800)
    assert moments(advice, "scale_up") == []


def test_a_ten_minute_ramp_is_advised_two_minutes_before_it_crosses():
    """Item 2: 20% to 120% over 10 min crosses 70% after 5 min; the advice must lead by 2."""

    def ramp(t: float) -> float:
        return 0.2 + min(1.0, max(0.0, t - 600) / 600)

    advice = replay(ramp, 1500)
    crossing = 600 + 300
    first = moments(advice, "scale_up", "reactive")[0]
    assert crossing - first >= 120
    assert all(t in moments(advice, "scale_up") for t in range(int(first), 1500, 5))


def test_a_scale_down_waits_a_whole_window_of_lower_advice_stay_counted():
    """Item 3: 3 nodes at 45% (2 would do) advised a scale-down at once, and a drop from a
    load in the band was followed by one within seconds: "stay" was never remembered."""
    steady = replay(lambda t: 0.45, 900, reactive={"current_nodes": 3})
    downs = moments(steady, "scale_down")
    assert downs and min(downs) >= 300 and moments(steady, "scale_up") == []
    assert downs == list(range(int(min(downs)), 900, 5))  # one direction, given once

    dropped = replay(lambda t: 0.65 if t < 300 else 0.3, 1200, reactive={"current_nodes": 3})
    assert min(moments(dropped, "scale_down")) >= 300 + 300


def test_past_saturation_the_count_is_what_the_offered_load_needs():
    """Item 4: the busy share stops at 1.0, so twice a node's load asked for 2 nodes, not 3."""
    advice = dict(replay(lambda t: 2.0, 60))[55]
    up = {r.policy: r for r in advice if r.action == "scale_up"}
    assert up["reactive"].desired == 3 and up["sharding"].desired == 3
    assert up["reactive"].metric == "offered_load"


def test_every_policy_counts_from_the_real_node_count():
    """Item 4: predictive and sharding said current = 1 on any deployment."""
    advice = dict(replay(
        lambda t: 0.9, 200, reactive={"current_nodes": 3},
        predictive={"step_s": 5, "min_history_s": 60, "horizon_s": 30, "evaluate_s": 60},
    ))[195]  # fmt: skip
    up = {r.policy: r for r in advice if r.action == "scale_up"}
    assert {p: (r.current, r.desired) for p, r in up.items()} == {
        "reactive": (3, 4), "sharding": (3, 4), "predictive": (3, 4),
    }  # fmt: skip


def test_a_split_is_checked_against_the_uncapped_load():
    """Item 4: at 1.45 times a node's load, moving the market with half the orders leaves it
    at 72% on its new node; the capped busy share (1.0) made it look like 50%."""
    history = [sample(START + n, 1.45, 0.0) for n in range(30)]
    (advice,) = sharding_advice(history=history, settings={}, now=START + 29)
    assert advice.details["move"] == [] and "PUNK-ETH alone needs more" in advice.reason
    fits = [sample(START + n, 1.3, 0.0) for n in range(30)]
    (advice,) = sharding_advice(history=fits, settings={}, now=START + 29)
    assert advice.details["move"] == ["PUNK-ETH"] and advice.desired == 2


def test_a_burst_of_writes_that_stopped_stops_warning_within_a_minute():
    """Item 5: 5 GB written in about 17 min warned until about 4 min after it stopped."""
    begin, stop = 1800, 1800 + 1000

    def disk(t: float) -> float:
        return 60e9 - 5e6 * min(max(0.0, t - begin), stop - begin)

    advice = replay(lambda t: 0.4, 4200, step_s=5, disk=disk)
    warned = moments(advice, "warn")
    assert warned, "the burst itself was not warned about"
    assert max(warned) <= stop + 60


def test_a_steady_fill_is_warned_once_and_without_gaps():
    """Item 5: a warning that comes and goes over one fill is no warning to act on."""
    rng = random.Random(5)

    def disk(t: float) -> float:
        return 40e9 - 2e6 * t + rng.gauss(0, 5e6)

    advice = replay(lambda t: 0.4, 4 * 3600, step_s=30, disk=disk,
                    capacity={"warn_within_s": 5 * 3600})  # fmt: skip
    warned = moments(advice, "warn")
    first = min(warned)
    assert warned == [t for t, _ in advice if t >= first]
    assert 40e9 / 2e6 - first >= 3600


def test_predictive_ignores_a_spike_in_the_unfinished_minute():
    """Item 6: a 2 s spike at a minute boundary made the current minute's mean the forecast's
    last value (a steady 30% forecast at 1.17)."""
    minute = 40 * 60

    def load(t: float) -> float:
        return 1.0 if minute <= t < minute + 2 else 0.3

    advice = replay(load, minute + 5)
    assert moments(advice, "scale_up") == []


@pytest.mark.slow
def test_predictive_stops_advising_soon_after_a_flash_crowd():
    """Item 6: after 5 min at 1.5 the unscaled, unclamped model asked for 4-7 nodes and kept
    advising for 24 minutes after the crowd had gone."""
    crowd = (1800, 2100)
    advice = replay(lambda t: 1.5 if crowd[0] <= t < crowd[1] else 0.3, 4800)
    predicted = [
        (t, r.desired)
        for t, recs in advice
        for r in recs
        if r.policy == "predictive" and r.action == "scale_up"
    ]
    assert all(desired <= 3 for _, desired in predicted)  # ceil(1.5 / 0.7) = 3 at most
    assert all(t < crowd[1] + 300 + 300 for t, _ in predicted)  # its window, then gone

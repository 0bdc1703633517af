"""The running node's scans (node/analytics/scanner.py): two lanes of detectors, each scan spaced
out by the CPU time the last one used, the scoring lane waiting for the follower and explaining
its leads by the wash lane's findings."""

from __future__ import annotations

import os
import queue
import threading
import time

import pytest

from marketnode.node.analytics import scanner as scanner_module
from marketnode.node.analytics.duckdb_store import AnalyticsStore
from marketnode.node.analytics.integrity import LANES, lane_host
from marketnode.node.analytics.scanner import BACKGROUND_NICE, MOST_DEFERRAL_S, LaneScanner
from marketnode.plugins.alerts import Alert


def lane_detectors(lane: str | None) -> list[tuple[str, bool]]:
    hook = lane_host(lane).hook.detect_integrity
    return sorted((impl.plugin_name, impl.trylast) for impl in hook.get_hookimpls())


def test_each_detector_is_in_one_lane_and_the_scoring_ones_in_their_own():
    findings, scores = (lane_detectors(lane) for lane in LANES)
    assert sorted(findings + scores) == lane_detectors(None)
    assert findings and not any(trylast for _, trylast in findings)
    assert {"anomalous_wallets", "market_statistics"} == {name for name, _ in scores}


@pytest.fixture
def lane(tmp_path):
    """A findings-lane scanner over an empty store, every 0.1 s."""
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    yield LaneScanner("findings", store.connection, {}, 0.1, queue.SimpleQueue())
    store.close()


def scanning(work):
    """A scan that does `work` and finds nothing (in place of the detectors)."""

    def scan_each(connection, settings, lane):
        work()
        yield "work", []

    return scan_each


def burn_cpu(seconds: float) -> None:
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_a_scan_that_used_a_second_of_cpu_waits_a_second_before_the_next(lane, monkeypatch):
    monkeypatch.setattr(scanner_module, "scan_each", scanning(lambda: burn_cpu(1.0)))
    lane.start_when_due()
    lane.join()
    assert lane.last["cpu_s"] >= 1.0
    assert lane.next_start > time.monotonic() + 0.5  # (not at once: its interval is 0.1 s)


def test_a_scan_that_waited_without_using_cpu_lets_the_next_start_at_its_interval(
    lane, monkeypatch
):
    """Waiting (for a core, for DuckDB) is not spaced out: only the CPU a scan took from the
    follower is."""
    monkeypatch.setattr(scanner_module, "scan_each", scanning(lambda: time.sleep(0.5)))
    lane.start_when_due()
    lane.join()
    assert lane.last["scan_s"] >= 0.5 and lane.last["cpu_s"] < 0.25
    assert lane.next_start < time.monotonic() + 0.25  # not 0.5 s after it ended
    summary = lane.summary()
    assert summary["scans"] == 1 and set(summary["last_scan"]) == {
        "scan_s", "cpu_s", "detectors_s", "store_s", "started_s_ago"
    }  # fmt: skip


def test_the_scoring_lane_waits_for_the_follower_but_not_for_ever(tmp_path, monkeypatch):
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    scores = LaneScanner("scores", store.connection, {}, 0.1, queue.SimpleQueue(), True)
    monkeypatch.setattr(scanner_module, "scan_each", scanning(lambda: None))
    try:
        scores.start_when_due(follower_caught_up=False)
        assert scores.thread is None  # due, but the follower is behind
        scores.start_when_due(follower_caught_up=True)
        scores.join()
        assert scores.scans == 1
        scores.next_start = time.monotonic() - MOST_DEFERRAL_S - 1  # behind for too long
        scores.start_when_due(follower_caught_up=False)
        scores.join()
        assert scores.scans == 2
    finally:
        store.close()


NOW = "2026-12-01T00:00:00+00:00"


def test_the_scoring_lane_explains_its_leads_by_the_wash_lanes_last_findings(tmp_path, monkeypatch):
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    found: queue.SimpleQueue = queue.SimpleQueue()
    findings = LaneScanner("findings", store.connection, {}, 0.1, found)
    scores = LaneScanner("scores", store.connection, {}, 0.1, found, True, findings)
    findings.latest = [
        Alert(detector="round_trips", severity="high", market="M", wallets=["0xa", "0xb"],
              trades=[1, 2], evidence={}, wash_volume="10"),
    ]  # fmt: skip
    leads = [
        Alert(detector="anomalous_wallets", severity="low", market="M", wallets=[wallet],
              trades=[seq], evidence={"rank": seq}, wash_volume="0", time=NOW)
        for seq, wallet in enumerate(["0xa", "0xc"], start=1)
    ]  # fmt: skip

    def scan_each(connection, settings, lane):
        yield "anomalous_wallets", leads

    monkeypatch.setattr(scanner_module, "scan_each", scan_each)
    try:
        scores.start_when_due()
        assert scores.thread is None  # not before the wash lane's first scan has finished
        findings.scans = 1
        scores.start_when_due()
        scores.join()
    finally:
        store.close()
    kept = found.get_nowait()
    assert [(lead.wallets, lead.evidence["explained"]) for lead in kept] == [
        (["0xa"], ["round_trips"]), (["0xc"], [])
    ]  # fmt: skip
    assert kept[1].evidence["lead_rank"] == 1 and scores.latest == leads


def test_a_lane_given_a_nice_scans_in_a_thread_that_yields_and_leaves_the_others_alone(
    tmp_path, monkeypatch
):
    """The scoring lane's training yields to the rest of the machine; the wash lane and the
    process's other threads keep their priority (Linux keeps a niceness per thread)."""
    seen: list[int] = []

    def note_niceness() -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    monkeypatch.setattr(scanner_module, "scan_each", scanning(note_niceness))
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    try:
        own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        for nice in (BACKGROUND_NICE, 0):
            lane = LaneScanner("scores", store.connection, {}, 0.1, queue.SimpleQueue(), nice=nice)
            lane.start_when_due()
            lane.join()
    finally:
        store.close()
    assert seen == [min(19, own + BACKGROUND_NICE), own]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own


def test_a_lane_loads_its_libraries_once_and_before_its_thread_yields(tmp_path, monkeypatch):
    """A niced thread holding the interpreter lock through an import would stall the process's
    other threads: the libraries are loaded at the process's priority, by the first scan only."""
    prepared: list[tuple[str, int]] = []
    scanned: list[int] = []

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    monkeypatch.setattr(
        scanner_module, "prepare_lane", lambda lane: prepared.append((lane, niceness()))
    )
    monkeypatch.setattr(scanner_module, "scan_each", scanning(lambda: scanned.append(niceness())))
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    own = niceness()
    try:
        lane = LaneScanner(
            "scores", store.connection, {}, 0.0, queue.SimpleQueue(), nice=BACKGROUND_NICE
        )
        for _ in range(2):
            lane.next_start = 0.0
            lane.start_when_due()
            lane.join()
    finally:
        store.close()
    assert prepared == [("scores", own)]
    assert scanned == [min(19, own + BACKGROUND_NICE)] * 2


def test_the_scoring_detectors_load_their_libraries_when_prepared():
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-c", (
            "import sys; from marketnode.node.analytics.integrity import prepare_lane; "
            "before = 'sklearn.ensemble' in sys.modules; prepare_lane('scores'); "
            "print(before, 'sklearn.ensemble' in sys.modules)"
        )], capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert loaded.stdout.split() == ["False", "True"]


def test_a_stop_leaves_a_scan_busy_in_its_own_python_instead_of_waiting_for_it(lane, monkeypatch):
    """An interrupt reaches DuckDB's queries, not a training: the stop gives up after its
    grace (the process then ends without waiting) and the scan is left to end by itself."""
    training, release = threading.Event(), threading.Event()

    def train() -> None:
        training.set()
        release.wait(30)

    monkeypatch.setattr(scanner_module, "scan_each", scanning(train))
    lane.start_when_due()
    assert training.wait(30)
    assert lane.stop(0.2) is False
    release.set()
    assert lane.stop(30) is True
    assert lane.scans == 1

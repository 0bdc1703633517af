"""The supervisor of the node's child processes (node/server/supervisor.py): a child dies with
its node whatever the timing, a dead child is restarted with a bounded backoff that a stable run
resets, and status says what is really running. Real processes throughout; only the clock that
schedules restarts is driven by the tests, so no assertion races the wall clock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from marketnode.node.client import ClientError
from marketnode.node.home.layout import Home
from marketnode.node.server.supervisor import EXIT_ORPHANED, RestartPolicy, Supervisor
from tests.conftest import LOOPBACK_ENDPOINTS

WAIT_S = 120.0
"""Generous bound for what a busy two-core machine does in a moment (a process's start)."""


def wait_until(condition, what: str, within_s: float = WAIT_S):
    deadline = time.monotonic() + within_s
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {within_s:g} s"
        time.sleep(0.02)
    return found


class Clock:
    """A monotonic clock the test moves by hand. It starts on a whole second, so that times
    moved by whole seconds are exact: from an arbitrary start, (t + 1 + 60) - (t + 1) can come
    out a few ulps under 60, and a wait of "60 s" would never be over."""

    def __init__(self) -> None:
        self.now = float(int(time.monotonic()))

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_its_bound():
    policy = RestartPolicy(first_delay_s=1.0, max_delay_s=10.0, stable_after_s=60.0)
    assert [policy.delay(attempt) for attempt in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_a_child_whose_parent_is_gone_as_it_starts_exits_at_once():
    """The parent pid on the command line is not this child's parent (as when the node died
    before the child could ask for its death signal): it exits before running its module."""
    guarded = subprocess.run(
        [sys.executable, "-m", "marketnode.node.server.supervisor", "1", "9", "this"],
        capture_output=True,
        timeout=WAIT_S,
    )
    assert guarded.returncode == EXIT_ORPHANED
    assert guarded.stdout == b""  # `this` (the Zen of Python) never ran


def test_a_child_started_nicer_has_its_niceness_before_its_module_runs():
    """`--nice N` (a Supervisor's `nice`): the module's first code already runs N lower, so
    every thread it makes is too (the analytics process of a demo, `[analytics] nice`)."""
    report_niceness = "import os, sys; print(os.nice(0), file=sys.stderr)"
    guarded = subprocess.run(
        [sys.executable, "-m", "marketnode.node.server.supervisor", str(os.getpid()), "9",
         "--nice", "3", "timeit", "-n", "1", "-r", "1", "-s", report_niceness, "pass"],
        capture_output=True,
        timeout=WAIT_S,
    )  # fmt: skip
    assert guarded.returncode == 0, guarded.stderr
    assert int(guarded.stderr.split()[0]) == min(19, os.nice(0) + 3)
    assert Supervisor("nicer", "timeit", nice=3).command[4:7] == ["9", "--nice", "3"]


def test_a_dying_child_is_restarted_later_each_time_and_status_says_so():
    clock = Clock()
    supervisor = Supervisor(
        "failing",
        "json.tool",
        ["/nonexistent/file.json"],  # exits 2 at once (a usage error)
        policy=RestartPolicy(first_delay_s=1.0, max_delay_s=4.0, stable_after_s=60.0),
        clock=clock,
    )
    assert supervisor.status() == "off"
    supervisor.start()
    try:
        for attempt, delay in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0)):
            supervisor.process.wait(timeout=WAIT_S)
            assert not supervisor.tend()  # the death is noticed, the restart not due yet
            status = supervisor.status()
            assert status.startswith("died at ") and "(exit code 2)" in status
            assert status.endswith(f"restarting in {delay:.1f} s (attempt {attempt})")
            assert supervisor.pid is None
            clock.now += delay
            first = supervisor.process.pid
            assert supervisor.tend() or supervisor.process.pid != first  # restarted
    finally:
        supervisor.stop()
    assert supervisor.status() == "off"
    assert not supervisor.tend()  # a stopped supervisor restarts nothing


def _start_node_process(tmp_path: Path, log: Path) -> tuple[Home, subprocess.Popen]:
    home = Home.create(tmp_path / "home")
    text = home.config_path.read_text()
    home.config_path.write_text(
        LOOPBACK_ENDPOINTS.strip() + "\n\n" + text[text.index("\n[[markets]]") + 1 :]
    )
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "marketnode.cli", "start", "--home", str(home.path)],
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
    return home, process


@pytest.mark.slow
def test_a_node_killed_right_after_start_leaves_no_analytics_process(tmp_path):
    """The node is SIGKILLed as soon as its analytics child exists, long before that child has
    imported DuckDB: the child still dies, and the DuckDB file is free for the next start."""
    home, node = _start_node_process(tmp_path, tmp_path / "node.log")
    try:
        children = wait_until(
            lambda: node.poll() is None and psutil.Process(node.pid).children(),
            "the node started no analytics process",
        )
        node.send_signal(signal.SIGKILL)
        node.wait(timeout=WAIT_S)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(timeout=WAIT_S)
    _gone, alive = psutil.wait_procs(children, timeout=WAIT_S)
    assert not alive, f"orphaned: {alive}"
    duckdb.connect(str(home.path / "analytics.duckdb")).close()  # no lock left behind


@pytest.mark.slow
def test_a_killed_analytics_process_is_restarted_and_status_says_so(node_factory):
    running = node_factory("[analytics]\nenabled = true\ninterval_ms = 50\n")
    admin, link = running.admin(), running.node.analytics
    supervisor = link.supervisor

    def analytics_status(kind: type):
        status = admin.call("status")["analytics"]
        return status if isinstance(status, kind) else None

    first = wait_until(lambda: analytics_status(dict), "no lag from the analytics process")
    pid = supervisor.pid
    assert first["state"].startswith("running since ") and first["state"].endswith(f"(pid {pid})")
    assert first["lag_commands"] == 0

    clock = supervisor.clock = Clock()  # restarts wait for the test from here on
    psutil.Process(pid).send_signal(signal.SIGKILL)
    died = wait_until(lambda: analytics_status(str), "the death was not noticed")
    assert died.startswith("died at ")
    assert died.endswith("(signal SIGKILL), restarting in 1.0 s (attempt 1)"), died
    with pytest.raises(ClientError, match=r"^analytics is not running: died at .*SIGKILL"):
        admin.call("sql", query="SELECT 1")
    text = json.loads(
        subprocess.run(
            [sys.executable, "-m", "marketnode.cli", "status", "--home", str(running.home.path),
             "--json"],
            capture_output=True, text=True, timeout=WAIT_S, check=True,
        ).stdout
    )["analytics"]  # fmt: skip
    assert text.startswith("died at ")

    clock.now += 1.0
    again = wait_until(lambda: analytics_status(dict), "the analytics process was not restarted")
    assert supervisor.pid != pid and again["state"].endswith(f"(pid {supervisor.pid})")
    assert admin.call("sql", query="SELECT 42")["rows"] == [[42]]
    assert supervisor.attempt == 1
    clock.now += supervisor.policy.stable_after_s
    wait_until(lambda: supervisor.attempt == 0, "a stable run did not reset the backoff")


STARTER = """
import pathlib, sys, time
from marketnode.node.tools.e2e import prepare_home, start_node_process
home, _ = prepare_home(pathlib.Path(sys.argv[1]) / "home", "full")
print(start_node_process(home).pid, flush=True)
time.sleep(600)
"""


def test_a_node_started_by_the_demo_or_a_bench_stops_when_its_starter_is_killed(tmp_path):
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    node = psutil.Process(int(starter.stdout.readline()))
    starter.kill()
    starter.wait()
    try:
        node.wait(timeout=60)  # SIGTERM from the death signal: it commits and exits
    except psutil.TimeoutExpired:
        node.kill()
        pytest.fail("the node outlived the process that started it")

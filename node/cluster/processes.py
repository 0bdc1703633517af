"""The processes a local cluster starts, known by pid and start time: a pid the system has
given to another process since is never signalled."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import msgspec

STOP_WAIT_S = 30.0
"""How long a stopped process has to exit (a node commits its batch in flight) before it is
killed."""


class ProcessRecord(msgspec.Struct):
    """A process started in the background: its pid and when it started (clock ticks since
    boot, /proc/PID/stat's 22nd field)."""

    pid: int
    started: int


def start_time(pid: int) -> int | None:
    """When process `pid` started (None: no such process, or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def running(record: ProcessRecord) -> bool:
    """Is the process recorded still the one running under its pid?"""
    return start_time(record.pid) == record.started


def spawn(command: list[str], log_path: Path) -> ProcessRecord:
    """Start `command` in a session of its own (it outlives the command that started it), its
    output appended to `log_path`."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    started = start_time(process.pid)
    return ProcessRecord(process.pid, started if started is not None else -1)


def stop(record: ProcessRecord, wait_s: float = STOP_WAIT_S) -> bool:
    """SIGTERM the recorded process, SIGKILL it if it has not exited within `wait_s`; False if
    it was not running any more (also when it exits between the check and the signal)."""
    if not running(record) or not _signal(record.pid, signal.SIGTERM):
        return False
    deadline = time.monotonic() + wait_s
    while running(record):
        _reap(record.pid)
        if time.monotonic() > deadline:
            _signal(record.pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.02)
    _reap(record.pid)
    return True


def _signal(pid: int, number: signal.Signals) -> bool:
    """Send a signal; False if the process is gone already (exited and collected)."""
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    """Collect the exit of our own child (a process started by this one stays a zombie
    until then); another's is the system's to collect."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, alive: ProcessRecord, timeout_s: float, what: str) -> None:
    """Wait until something accepts connections on loopback `port`; RuntimeError if the
    process `alive` exits first or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if not running(alive):
            raise RuntimeError(f"{what} exited while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s:g} s")
        time.sleep(0.05)

"""SIGKILL a loaded node at random moments (bench/crash.py, a few rounds): nothing acknowledged
is lost, nothing is applied twice, and the store verifies."""

import subprocess
import sys
from pathlib import Path

import pytest

CRASH_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "crash.py"


@pytest.mark.slow
def test_killed_nodes_lose_nothing_acknowledged():
    result = subprocess.run(
        [sys.executable, str(CRASH_SCRIPT), "--rounds", "3", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("crash test: 3 rounds, ")
    assert summary.endswith("nothing lost, nothing applied twice, verify ok")
    acknowledged = int(summary.split(", ")[1].split()[0])
    assert acknowledged > 0

"""`mnode demo --headless`: a node, a flow with a drop, a wash ring, and the summary."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app

runner = CliRunner()


@pytest.mark.slow
def test_the_headless_demo_trades_and_flags_its_wash_ring(tmp_path):
    home = tmp_path / "demo"
    result = runner.invoke(
        app,
        ["demo", "--headless", "--duration", "10", "--rate", "200", "--home", str(home), "--json"],
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    for key in ("orders", "trades", "alerts", "recommendations"):
        assert key in summary
    assert summary["orders"] > 2000 and summary["trades"] > 0
    assert summary["ring_trades"] > 0 and summary["ring_flagged"]
    assert (home / "analytics.duckdb").exists()  # a home given is kept


def test_the_demo_will_not_reuse_a_home(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.toml").write_text("")
    result = runner.invoke(app, ["demo", "--home", str(tmp_path / "taken")])
    assert result.exit_code == 2 and "not empty" in result.stderr

"""`mnode liquidity`: the evaluation's JSON on a real node, the instances of a home, the
process's state, and one-line answers to mistakes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.liquidity.service import state_path, write_json

runner = CliRunner()
POOL = """
[liquidity.pool]
strategy = "amm"
market = "PUNK-ETH"
peer = "pool"
owner = "0x5001"
base = "100"
quote = "1000"
fee_bps = 5
"""


def mnode(*args: str):
    return runner.invoke(app, list(args))


def test_the_evaluation_reports_every_goal_as_its_worst_case():
    result = mnode("liquidity", "eval", "--seeds", "7", "--steps", "80", "--json")
    report = json.loads(result.stdout)
    for key in ("inventory_breaches", "adverse_selection_reduction", "spread_increase",
                "amm_reserve_mismatch", "self_trades"):  # fmt: skip
        assert key in report
    assert report["amm_reserve_mismatch"] == 0, "the pool's reserves are exactly its fills"
    assert report["self_trades"] == 0
    assert report["inventory_breaches"] == 0
    assert {run["trace"] for run in report["runs"]} == {"uninformed", "informed", "drop",
                                                         "trending"}  # fmt: skip
    assert result.exit_code == (0 if report["passed"] else 1)


def test_list_and_status_read_the_home(tmp_path):
    home = tmp_path / "home"
    assert mnode("init", str(home)).exit_code == 0
    with (home / "config.toml").open("a") as config:
        config.write(POOL)
    listed = mnode("liquidity", "list", "--home", str(home), "--json")
    assert listed.exit_code == 0, listed.stderr
    [pool] = json.loads(listed.stdout)
    assert pool["strategy"] == "amm" and pool["settings"]["fee_bps"] == 5
    missing = mnode("liquidity", "status", "--home", str(home))
    assert missing.exit_code == 5 and "no liquidity process" in missing.stderr
    write_json(state_path(home), {"pid": 0, "updated_at": 0.0, "stopped": True,
                                  "instances": []})  # fmt: skip
    status = mnode("liquidity", "status", "--home", str(home), "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["running"] is False


def test_mistakes_are_one_line(tmp_path):
    home = tmp_path / "home"
    assert mnode("init", str(home)).exit_code == 0
    with (home / "config.toml").open("a") as config:
        config.write(POOL.replace("fee_bps = 5", 'fee_bps = "5"'))
    result = mnode("liquidity", "list", "--home", str(home))
    assert result.exit_code == 3
    assert "[liquidity.pool]: fee_bps" in result.stderr and len(result.stderr.splitlines()) == 1
    bad_seeds = mnode("liquidity", "eval", "--seeds", "one")
    assert bad_seeds.exit_code == 2 and "--seeds" in bad_seeds.stderr

"""bench/peers.py on a tiny flow: the JSON's shape, the agreement check (and that it reports a
disagreement with its first step), the conversion of the flow, and the worker that runs a peer
in another interpreter. Peers not installed are skipped by the bench itself, as on a clean
clone; where they are installed they run here too."""

from __future__ import annotations

import importlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from marketnode.node.home.config import default_markets
from marketnode.node.tools.flow import generate_flow

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def peers() -> Iterator[ModuleType]:
    """bench/peers.py as a module; the logging set-up a peer's import may change is put back
    (pyorderbook configures the root logger when imported)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("peers")
    finally:
        sys.path.remove(str(BENCH))
        root.handlers[:] = handlers
        root.setLevel(level)


def test_report_shape_and_agreement(peers: ModuleType) -> None:
    report = peers.run_peers_bench(ops=2000, seed=3, rounds=2, check_ops=1500)
    decoded = json.loads(json.dumps(report))
    assert decoded["marketnode_ops_per_s"] > 0
    assert decoded["core"] in ("compiled", "python")
    assert len(decoded["marketnode"]["runs_ops_per_s"]) == 2
    floor = decoded["bare_book"]
    assert floor["ops_per_s"] > 0 and floor["ratio"] > 0
    assert isinstance(decoded["peers"], dict)
    for name, peer in decoded["peers"].items():
        assert peer["ops_per_s"] > 0, name
        assert peer["ratio"] == round(decoded["marketnode_ops_per_s"] / peer["ops_per_s"], 2)
        assert peer["worst_ops_per_s"] <= peer["ops_per_s"]
        assert peer["agreement"]["agrees"], (name, peer["agreement"])
    for name, reason in decoded["not_run"].items():
        assert name not in decoded["peers"]
        assert reason and "\n" not in reason
    agreement = decoded["agreement"]
    assert agreement["marketnode"]["trades"] > 0
    assert agreement["bare_book"]["agrees"]
    assert agreement["bare_book"]["trades"] == agreement["marketnode"]["trades"]
    assert agreement["agree"] == sorted(decoded["peers"]) and agreement["disagree"] == []
    assert "marketnode" in peers.describe(report)


def test_a_disagreement_names_its_first_step(peers: ModuleType) -> None:
    """A book that loses one lot of every fill disagrees from the first step that trades."""

    class LossyBook(peers.BareBook):
        def fills(self, step, result):
            trades, traded = super().fills(step, result)
            return trades, traded - trades

    markets = [peers.msgspec.structs.replace(spec, stp="none") for spec in default_markets()]
    commands = list(generate_flow(600, seed=5, markets=markets, mix=peers.LIMIT_CANCEL))
    steps = peers.to_steps(commands, markets)
    expected = peers.marketnode_fills(commands, markets)
    first_trade = next(number for number, (trades, _) in enumerate(expected) if trades)
    found = peers.compare(expected, peers.step_fills(LossyBook, steps, len(markets)), steps)
    assert not found["agrees"]
    assert found["first_difference"]["step"] == first_trade
    assert found["first_difference"]["marketnode"]["trades"] == expected[first_trade][0]
    assert peers.compare(expected, peers.step_fills(peers.BareBook, steps, 3), steps)["agrees"]


def test_a_failing_peer_is_reported_not_raised(
    peers: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer whose API changed under its adapter: one line in `not_run`, the others' figures
    still there."""

    class ChangedApi(peers.BareBook):
        name = "changed-api"

        def limit(self, market, order_id, is_buy, price, qty):
            raise TypeError("limit() takes 3 positional arguments\nbut 6 were given")

    monkeypatch.setattr(peers, "PEERS", (ChangedApi,))
    report = peers.run_peers_bench(ops=500, seed=1, rounds=2, check_ops=300)
    assert report["not_run"] == {
        "changed-api": "failed: TypeError: limit() takes 3 positional arguments"
    }
    assert report["peers"] == {} and report["agreement"]["agree"] == []
    assert report["marketnode_ops_per_s"] > 0 and report["bare_book"]["ops_per_s"] > 0


def test_the_flow_becomes_neutral_steps(peers: ModuleType) -> None:
    markets = default_markets()
    commands = list(generate_flow(3000, seed=1, markets=markets))
    steps = peers.to_steps(commands, markets)
    assert len(steps) == len(commands)
    sides = {}
    for command, (kind, market, order_id, is_buy, price, qty) in zip(commands, steps, strict=True):
        assert markets[market].symbol == command.market and order_id == command.id
        assert kind in sys.modules["peer_adapter_base"].KINDS
        if kind == "cancel":
            continue
        assert qty > 0
        assert (price == 0) == (kind == "market")
        if kind == "replace":
            assert is_buy == sides[order_id]
        sides[order_id] = is_buy
    assert {step[0] for step in steps} == set(sys.modules["peer_adapter_base"].KINDS)


def test_the_worker_runs_a_peer_in_another_interpreter(peers: ModuleType, tmp_path: Path) -> None:
    """What --peer-python does, with this interpreter and the bare book."""
    markets = [peers.msgspec.structs.replace(spec, stp="none") for spec in default_markets()]
    commands = list(generate_flow(400, seed=2, markets=markets, mix=peers.LIMIT_CANCEL))
    steps = peers.to_steps(commands, markets)
    steps_file = peers._write_steps(tmp_path / "steps.json", steps, len(markets))
    worker = peers.Contender("bare-book", peers.BareBook, "", "", sys.executable)
    assert worker.fills(steps_file, steps, len(markets)) == peers.marketnode_fills(
        commands, markets
    )
    assert worker.run(steps_file, steps, len(markets))["seconds"] > 0
    script = [sys.executable, str(BENCH / "peer_adapters.py"), "--worker", "matching-engine"]
    described = subprocess.run(
        [*script, "--describe", "--steps", "-"], capture_output=True, text=True, check=True
    )
    assert set(json.loads(described.stdout)) == {"unavailable", "version", "python"}


def test_bad_input_is_one_line_and_an_exit_code(
    peers: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        peers.main(["--ops", "0"])
    assert stopped.value.code == 2
    assert peers.main(["--ops", "100", "--peer-python", "/nonexistent/python"]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("bench/peers.py: /nonexistent/python: cannot run it")

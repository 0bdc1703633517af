"""marketnode beside the peer matching engines on PyPI, and the bare-book floor.

    python bench/peers.py [--ops N] [--seed S] [--rounds R] [--check-ops N] [--json]
                          [--core auto|compiled|python] [--peer-python PATH ...]

The flow is `mnode bench engine`'s (node/tools/flow.py, the default markets), generated and
converted for each engine before any clock starts. marketnode runs it as the engine bench does,
in memory, in batches of `[store] batch_size`, with every check and event; each peer runs it
through its adapter (bench/peer_adapters.py; bench/peer_adapter_base.py says how the flow is
mapped to its calls). The engines take turns, round after round, so that other work on the
machine falls on all of them alike; each reports its median and its worst rate and the ratio
marketnode / peer (above 1: marketnode is faster).

The agreement check runs a limit/cancel subflow (no self-trade prevention, which the peers
lack) through marketnode and every peer and compares each step's trades and traded lots; a
peer that disagrees is reported with the first step where it does.

Peers needing a newer Python (limit-order-book 3.x, matching-engine) run in the interpreter
given by `--peer-python` (a virtual environment with bench/peers-requirements.txt installed),
which times its own runs; a peer that cannot run says why, in one line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import msgspec
from bare_book import BareBook
from peer_adapter_base import Adapter, Fills, Step, step_fills, timed_run
from peer_adapters import PEERS

from marketnode.node.core.commands import CancelOrder, NewOrder, ReplaceOrder
from marketnode.node.core.compiled import CORES, core_forced
from marketnode.node.core.decimals import Unit
from marketnode.node.core.engine import Engine
from marketnode.node.core.events import Trade
from marketnode.node.core.markets import ConfigError, MarketSpec
from marketnode.node.home.config import StoreConfig, default_markets
from marketnode.node.tools.flow import FlowMix, generate_flow

ADAPTERS_SCRIPT = Path(__file__).with_name("peer_adapters.py")
LIMIT_CANCEL = FlowMix(limit=0.7, post_only=0, cancel=0.3, replace=0, ioc=0, fok=0, market=0)
"""The agreement subflow: only what every peer has a call for with one meaning."""
Result = TypeVar("Result")
TIF_KINDS = {"GTC": "limit", "POST_ONLY": "post", "IOC": "ioc", "FOK": "fok"}


@dataclass(frozen=True)
class Contender:
    """An engine that runs in the bench: in this process, or in another interpreter."""

    key: str
    adapter: type[Adapter]
    version: str
    python: str
    interpreter: str | None = None
    """The other interpreter's path, or None for this process."""

    def run(self, steps_file: Path, steps: list[Step], markets: int) -> dict[str, float]:
        if self.interpreter is None:
            return timed_run(self.adapter, steps, markets)
        return _worker(self.interpreter, self.adapter.name, steps_file)

    def fills(self, steps_file: Path, steps: list[Step], markets: int) -> list[Fills]:
        if self.interpreter is None:
            return step_fills(self.adapter, steps, markets)
        return [
            tuple(fill)
            for fill in _worker(self.interpreter, self.adapter.name, steps_file, "--check")["fills"]
        ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200_000, help="commands in the timed flow")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each engine, in turn")
    parser.add_argument("--check-ops", type=int, default=20_000, help="the agreement subflow")
    parser.add_argument(
        "--core", choices=CORES, default=None, help="marketnode's core [default: the node's]"
    )
    parser.add_argument(
        "--peer-python",
        action="append",
        default=[],
        help="another interpreter for the peers this one cannot run (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.ops < 1 or args.rounds < 1 or args.check_ops < 1:
        parser.error("--ops, --rounds and --check-ops must be at least 1")
    try:
        report = run_peers_bench(
            args.ops, args.seed, args.rounds, args.check_ops, args.core, args.peer_python
        )
    except (ConfigError, PeerError) as error:
        print(f"bench/peers.py: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else describe(report))
    return 0


class PeerError(Exception):
    """A peer's interpreter failed in a way the bench cannot report per peer (one line)."""


def run_peers_bench(
    ops: int,
    seed: int,
    rounds: int,
    check_ops: int,
    core: str | None = None,
    peer_pythons: Sequence[str] = (),
) -> dict:
    """The whole comparison as one JSON-ready object (see the module's docstring)."""
    markets = default_markets()
    commands = list(generate_flow(ops, seed=seed, markets=markets))
    steps = to_steps(commands, markets)
    contenders, not_run = find_contenders(peer_pythons)
    floor = Contender(BareBook.name, BareBook, "", platform.python_version())
    with tempfile.TemporaryDirectory(prefix="mnode-peers-") as folder:
        steps_file = _write_steps(Path(folder) / "timed.json", steps, len(markets))
        with core_forced(core) as choice:
            failed: dict[str, str] = {}
            runs = _alternate(
                rounds, markets, commands, [floor, *contenders], steps, steps_file, failed
            )
            agreement = check_agreement(check_ops, seed, contenders, Path(folder), failed)
    not_run |= failed
    engine = _summary(runs["marketnode"], ops)
    peers = {}
    for contender in contenders:
        if contender.key in failed:
            continue
        summary = _beside(runs[contender.key], ops, engine)
        summary |= {"version": contender.version, "python": contender.python}
        summary["emulated"] = contender.adapter.emulated()
        summary["agreement"] = agreement["peers"][contender.key]
        peers[contender.key] = summary
    return {
        "ops": ops,
        "seed": seed,
        "rounds": rounds,
        "core": choice.core,
        "core_reason": choice.reason,
        "marketnode_ops_per_s": engine["ops_per_s"],
        "marketnode": engine,
        "bare_book": _beside(runs[floor.key], ops, engine),
        "peers": peers,
        "not_run": not_run,
        "agreement": {k: v for k, v in agreement.items() if k != "peers"},
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "cpus": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def to_steps(
    commands: Sequence[NewOrder | CancelOrder | ReplaceOrder], markets: list[MarketSpec]
) -> list[Step]:
    """The flow as the adapters' neutral steps: prices in ticks, quantities in lots."""
    index = {spec.symbol: number for number, spec in enumerate(markets)}
    ticks = {spec.symbol: Unit(spec.tick_size) for spec in markets}
    lots = {spec.symbol: Unit(spec.lot_size) for spec in markets}
    sides: dict[object, bool] = {}
    steps: list[Step] = []
    for command in commands:
        market = command.market
        if type(command) is CancelOrder:
            steps.append(("cancel", index[market], command.id, False, 0, 0))
            continue
        qty = lots[market].units(command.qty)
        price = ticks[market].units(command.price) if command.price is not None else 0
        if type(command) is ReplaceOrder:
            steps.append(("replace", index[market], command.id, sides[command.id], price, qty))
            continue
        is_buy = sides[command.id] = command.side == "buy"
        kind = "market" if command.type == "market" else TIF_KINDS[command.tif]
        steps.append((kind, index[market], command.id, is_buy, price, qty))
    return steps


def find_contenders(peer_pythons: Sequence[str]) -> tuple[list[Contender], dict[str, str]]:
    """The peers that can run, here or in one of `peer_pythons` (there only if not here in the
    same version), and why each other cannot."""
    contenders: list[Contender] = []
    not_run: dict[str, str] = {}
    here = platform.python_version()
    for adapter in PEERS:
        reasons = []
        reason = adapter.unavailable()
        if reason is None:
            contenders.append(Contender(adapter.name, adapter, adapter.version(), here))
        else:
            reasons.append(f"Python {here}: {reason}")
        for interpreter in peer_pythons:
            found = _worker(interpreter, adapter.name, None, "--describe")
            if found["unavailable"] is not None:
                reasons.append(f"{interpreter} (Python {found['python']}): {found['unavailable']}")
                continue
            same = [contender for contender in contenders if contender.adapter is adapter]
            if any(contender.version == found["version"] for contender in same):
                continue  # already runs, in the same version, nearer
            key = f"{adapter.name} {found['version']}" if same else adapter.name
            contenders.append(
                Contender(key, adapter, found["version"], found["python"], interpreter)
            )
        if not any(contender.adapter is adapter for contender in contenders):
            not_run[adapter.name] = "; ".join(reasons)
    return contenders, not_run


def _alternate(
    rounds: int,
    markets: list[MarketSpec],
    commands: list,
    contenders: list[Contender],
    steps: list[Step],
    steps_file: Path,
    failed: dict[str, str],
) -> dict[str, list[dict[str, float]]]:
    """Every engine's runs: marketnode first in each round, then each contender in turn; a
    peer that fails leaves the rounds, with why in `failed`."""
    batch_size = StoreConfig().batch_size
    batches = [
        commands[start : start + batch_size] for start in range(0, len(commands), batch_size)
    ]
    runs: dict[str, list[dict[str, float]]] = {"marketnode": []}
    runs |= {contender.key: [] for contender in contenders}
    for _ in range(rounds):
        runs["marketnode"].append(marketnode_run(markets, batches))
        for contender in contenders:
            if contender.key not in failed:
                run = _guarded(contender, failed, contender.run, steps_file, steps, len(markets))
                runs[contender.key].append(run)
    return runs


def _guarded(
    contender: Contender, failed: dict[str, str], action: Callable[..., Result], *args: object
) -> Result | None:
    """`action(*args)`, or None with the failure in `failed` as one line: a peer's bug or a
    changed API is reported beside the others' figures, not as a traceback. The floor's own
    failure is the bench's bug, and raises."""
    if contender.adapter is BareBook:
        return action(*args)
    try:
        return action(*args)
    except Exception as error:
        first = (str(error).splitlines() or [""])[0]
        failed[contender.key] = f"failed: {type(error).__name__}: {first}"
        return None


def marketnode_run(markets: list[MarketSpec], batches: list[list]) -> dict[str, float]:
    """One in-memory run of a fresh engine, as `mnode bench engine` drives it."""
    engine = Engine(markets)
    out: list = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch in batches:
        engine.process_batch(batch, out)
        engine.take_changes()
        out.clear()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
    }


def marketnode_fills(commands: Sequence[object], markets: list[MarketSpec]) -> list[Fills]:
    """Each command's trades and traded lots in marketnode (untimed)."""
    engine = Engine(markets)
    fills: list[Fills] = []
    for command in commands:
        out: list = []
        engine.process(command, out)
        trades = [event for event in out if type(event) is Trade]
        fills.append((len(trades), sum(trade.qty for trade in trades)))
    return fills


def check_agreement(
    check_ops: int, seed: int, contenders: list[Contender], folder: Path, failed: dict[str, str]
) -> dict:
    """The limit/cancel subflow through marketnode, the bare book and every contender that has
    not failed (one that fails here joins `failed`)."""
    markets = [msgspec.structs.replace(spec, stp="none") for spec in default_markets()]
    commands = list(generate_flow(check_ops, seed=seed, markets=markets, mix=LIMIT_CANCEL))
    steps = to_steps(commands, markets)
    steps_file = _write_steps(folder / "check.json", steps, len(markets))
    expected = marketnode_fills(commands, markets)
    total_trades = sum(trades for trades, _ in expected)
    report: dict = {
        "ops": check_ops,
        "flow": "limits 70%, cancels 30% by weight; self-trade prevention off",
        "marketnode": {"trades": total_trades, "traded_lots": sum(q for _, q in expected)},
        "bare_book": compare(expected, step_fills(BareBook, steps, len(markets)), steps),
        "peers": {},
    }
    for contender in contenders:
        if contender.key in failed:
            continue
        got = _guarded(contender, failed, contender.fills, steps_file, steps, len(markets))
        if got is not None:
            report["peers"][contender.key] = compare(expected, got, steps)
    report["agree"] = sorted(key for key, found in report["peers"].items() if found["agrees"])
    report["disagree"] = sorted(set(report["peers"]) - set(report["agree"]))
    return report


def compare(expected: list[Fills], got: list[Fills], steps: list[Step]) -> dict:
    """Whether a peer's fills are marketnode's, step by step (trades only where it reports
    them); the first differing step otherwise."""
    reports_trades = all(trades is not None for trades, _ in got)
    result: dict = {
        "trades": sum(t for t, _ in got) if reports_trades else None,
        "traded_lots": sum(q for _, q in got),
        "compared": "trades and traded lots"
        if reports_trades
        else "traded lots (no fills reported)",
    }
    for number, (want, have) in enumerate(zip(expected, got, strict=True)):
        if have[1] != want[1] or (reports_trades and have[0] != want[0]):
            kind, market, order_id, is_buy, price, qty = steps[number]
            result["agrees"] = False
            result["first_difference"] = {
                "step": number,
                "command": f"{kind} id {order_id} market {market} "
                f"{'buy' if is_buy else 'sell'} {qty} lots at {price} ticks",
                "marketnode": {"trades": want[0], "traded_lots": want[1]},
                "peer": {"trades": have[0], "traded_lots": have[1]},
            }
            return result
    result["agrees"] = True
    return result


def _summary(runs: list[dict[str, float]], ops: int) -> dict:
    rates = [ops / run["seconds"] for run in runs]
    cpu_rates = [ops / run["cpu_seconds"] for run in runs]
    return {
        "ops_per_s": round(statistics.median(rates)),
        "worst_ops_per_s": round(min(rates)),
        "ops_per_cpu_s": round(statistics.median(cpu_rates)),
        "runs_ops_per_s": [round(rate) for rate in rates],
    }


def _beside(runs: list[dict[str, float]], ops: int, engine: dict) -> dict:
    """An engine's figures and its ratios: marketnode's rate over its own."""
    summary = _summary(runs, ops)
    summary["ratio"] = round(engine["ops_per_s"] / summary["ops_per_s"], 2)
    summary["cpu_ratio"] = round(engine["ops_per_cpu_s"] / summary["ops_per_cpu_s"], 2)
    return summary


def _write_steps(path: Path, steps: list[Step], markets: int) -> Path:
    path.write_text(json.dumps({"markets": markets, "steps": steps}), "utf-8")
    return path


def _worker(interpreter: str, name: str, steps_file: Path | None, *flags: str) -> dict:
    """One run of the adapters' worker in `interpreter`: its JSON answer."""
    command = [interpreter, str(ADAPTERS_SCRIPT), "--worker", name, *flags]
    command += ["--steps", str(steps_file or os.devnull)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PeerError(f"{interpreter}: cannot run it: {error}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PeerError(f"{interpreter}: {name} failed: {last}")
    return json.loads(done.stdout)


def describe(report: dict) -> str:
    """The report as lines for a terminal."""
    lines = [
        f"{report['ops']:,} commands, seed {report['seed']}, {report['rounds']} rounds; "
        f"marketnode core: {report['core']} ({report['core_reason']}); "
        f"load average {report['load_average']}",
        f"{'engine':<40} {'median ops/s':>13} {'worst':>11} {'ops/CPU s':>11} "
        f"{'ratio':>6}  agreement",
        f"{'marketnode':<40} {report['marketnode_ops_per_s']:>13,} "
        f"{report['marketnode']['worst_ops_per_s']:>11,} "
        f"{report['marketnode']['ops_per_cpu_s']:>11,} {'1.00':>6}",
    ]
    rows = [("bare-book (the floor)", report["bare_book"], report["agreement"]["bare_book"])]
    rows += [(key, peer, peer["agreement"]) for key, peer in report["peers"].items()]
    for name, row, agreement in rows:
        verdict = (
            "agrees"
            if agreement["agrees"]
            else (f"DISAGREES at step {agreement['first_difference']['step']}")
        )
        label = name if name.endswith(row.get("version", "")) else f"{name} {row['version']}"
        if row.get("python", report["python"]) != report["python"]:
            label += f" (Python {row['python']})"
        lines.append(
            f"{label:<40} {row['ops_per_s']:>13,} {row['worst_ops_per_s']:>11,} "
            f"{row['ops_per_cpu_s']:>11,} {row['ratio']:>6.2f}  {verdict} "
            f"({agreement['compared']})"
        )
    for name, reason in report["not_run"].items():
        lines.append(f"{name}: not run: {reason}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

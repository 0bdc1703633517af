"""The end-to-end benchmark: a real node process in a temporary home (loopback, CURVE on, synced
commits) and a load generator in this process, each on its own core."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..chain.orders import dev_wallets
from ..client import NodeAddress, address_of_home
from ..home.keys import PEERS_FOLDER, KeyPair, create_key_pair
from ..home.layout import Home
from ..home.peers import Allowlist, Peer, save_allowlist
from ..server.supervisor import guarded_command
from .flow import generate_flow
from .load import LoadProfile, LoadResult, run_load, signed_flow

START_TIMEOUT_S = 30.0
STALL_S = 60.0
"""A run with orders in flight and no answer for this long has stalled: it is stopped and
reported with the node's log (a signed run once waited out its whole 600 s for no answer,
and its home, log included, was removed with it)."""
LOG_TAIL_BYTES = 4000
NODE_COMMAND = [sys.executable, "-m", "marketnode.cli"]
SINGLE_WINDOW = 256
BATCHED_WINDOW = 32
"""Messages in flight in the flat-out runs: enough to keep the node's queue from running dry,
few enough that answers come back while the node works (measured best on 2 cores)."""
LOOPBACK = """[endpoints]
orders = "tcp://127.0.0.1:*"
market_data = "tcp://127.0.0.1:*"
admin = "tcp://127.0.0.1:*"

[node]
log_level = "warning"

[analytics]
enabled = false

"""


@dataclass
class BenchNode:
    home: Home
    process: subprocess.Popen
    address: NodeAddress
    key: KeyPair


def prepare_home(
    path: Path, sync: str = "full", analytics: bool = False, metrics: bool = True
) -> tuple[Home, KeyPair]:
    """A new home on free loopback ports, with one relayer peer (`load`) and no rate limit,
    its analytics process off unless asked for, metrics on unless not; returns it and the
    peer's key pair."""
    home = Home.create(path)
    text = home.config_path.read_text()
    markets = text[text.index("\n[[markets]]") + 1 :]
    settings = LOOPBACK.replace("enabled = false", f"enabled = {str(analytics).lower()}")
    home.config_path.write_text(
        settings
        + f'[store]\nsync = "{sync}"\n\n[limits]\npeer_rate_per_s = 10000000\n'
        + "peer_burst = 10000000\n\n"
        + f"[metrics]\nenabled = {str(metrics).lower()}\n\n"
        + markets
    )
    config = home.config()
    key = create_key_pair(home.keys_path(config) / PEERS_FOLDER, "load")
    save_allowlist(
        home.peers_path(config), Allowlist((Peer("load", key.public_text, relayer=True),))
    )
    return home, key


SIGNED_CONTRACT = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
SIGNED_TOKENS = ("0xe7f1725e7734ce288f8367e1bb143e90bb3f0512",
                 "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0")  # fmt: skip
SIGNED_UNITS = (10**18, 10**16)
"""The signed row's market: PUNK-ETH (tick 0.01, lot 1) with 18-decimal tokens, as in
docs/signing.md §5."""
SIGNED_WALLETS = 8


def make_signed(path: Path) -> None:
    """Have the home's PUNK-ETH take signed orders (optional) for the signed row."""
    config = Home(path).config_path
    text = config.read_text()
    settings = (
        f'signatures = "optional"\nbase_token = "{SIGNED_TOKENS[0]}"\n'
        f'quote_token = "{SIGNED_TOKENS[1]}"\nlot_units = "{SIGNED_UNITS[0]}"\n'
        f'tick_units = "{SIGNED_UNITS[1]}"\n'
    )
    text = text.replace('symbol = "PUNK-ETH"', 'symbol = "PUNK-ETH"\n' + settings, 1)
    config.write_text(f'[settlement]\ncontract = "{SIGNED_CONTRACT}"\n\n' + text)


NODE_LOG = "node.log"


def start_node_process(home: Home) -> subprocess.Popen:
    """`mnode start` on `home` in a child process that stops when the thread starting it dies
    (a demo or bench killed leaves no node behind), its stderr in `home/node.log` (a pipe
    nobody reads would fill and stop the node at its next log line); returns once the node
    has bound its sockets."""
    home.runtime_path.unlink(missing_ok=True)
    log_path = home.path / NODE_LOG
    with log_path.open("ab") as log:
        # SIGTERM when the starting thread dies: the node commits its batch in flight and stops
        command = guarded_command(
            "marketnode.cli", ["start", "--home", str(home.path)], signal.SIGTERM
        )
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not home.runtime_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"the node did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    return process


def stop_node_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def bench_node(
    sync: str = "full", scratch_parent: Path | None = None, signed: bool = False
) -> Iterator[BenchNode]:
    """A node process on a new home with one relayer peer; stopped and removed afterwards.
    `signed`: its PUNK-ETH takes signed orders (and its verifier processes run)."""
    with tempfile.TemporaryDirectory(prefix="mnode-e2e-", dir=scratch_parent) as folder:
        home, key = prepare_home(Path(folder) / "home", sync)
        if signed:
            make_signed(home.path)
        process = start_node_process(home)
        try:
            yield BenchNode(home, process, address_of_home(home), key)
        finally:
            stop_node_process(process)


class NodeStalled(RuntimeError):
    """The node under load exited, or stopped answering for STALL_S."""


def offer(node: BenchNode, commands: Iterable, profile: LoadProfile) -> LoadResult:
    """`run_load` against a bench node, stopped early when the node exits or answers nothing
    for STALL_S while orders wait: NodeStalled then says which, with the end of its log."""
    stop = threading.Event()
    progress = {"answered": -1, "at": time.monotonic()}

    def watch(result: LoadResult, _elapsed: float) -> None:
        now = time.monotonic()
        if result.answered != progress["answered"] or result.answered >= result.sent:
            progress.update(answered=result.answered, at=now)
        elif node.process.poll() is not None or now - progress["at"] > STALL_S:
            stop.set()

    result = run_load(node.address, node.key, commands, profile, on_progress=watch, stop=stop)
    if stop.is_set():
        code = node.process.poll()
        state = f"exited with {code}" if code is not None else f"answered nothing for {STALL_S:g} s"
        log = (node.home.path / NODE_LOG).read_text(errors="replace")[-LOG_TAIL_BYTES:]
        raise NodeStalled(
            f"the node {state} with {result.sent - result.answered} of {result.sent} orders "
            f"unanswered; the end of its log:\n{log or '(empty)'}"
        )
    return result


def run_e2e_bench(
    orders: int = 200_000,
    seed: int = 1,
    latency_s: float = 5.0,
    rates: tuple[int, ...] = (1000, 10_000, 50_000),
) -> dict:
    """Throughput one order per message and 100 per message, then latency at fixed rates."""
    report: dict = {}
    first_id = 1

    def flow(count: int) -> list:
        nonlocal first_id
        commands = list(generate_flow(count, seed=seed + first_id, first_id=first_id))
        first_id += count
        return commands

    with bench_node() as node:
        single = offer(
            node,
            flow(orders // 4),
            LoadProfile(rate=0, batch=1, window=SINGLE_WINDOW, duration_s=600),
        )
        batched = offer(
            node,
            flow(orders),
            LoadProfile(rate=0, batch=100, window=BATCHED_WINDOW, duration_s=600),
        )
        report["single_orders_per_s"] = _rate(single)
        report["batched_orders_per_s"] = _rate(batched)
        report["single"] = single.summary()
        report["batched"] = batched.summary()
        for rate in rates:
            profile = LoadProfile(rate=rate, batch=1, duration_s=latency_s)
            paced = offer(node, flow(profile.orders_needed()), profile)
            summary = paced.summary()
            report[f"at_{rate}"] = summary
            report[f"p99_ms_at_{_label(rate)}"] = summary["latency_ms"]["p99"]
            report[f"p50_ms_at_{_label(rate)}"] = summary["latency_ms"]["p50"]
    signed_orders = max(1000, orders // 10)
    with bench_node(signed=True) as node:
        config = node.home.config()
        markets = [spec for spec in config.markets if spec.signatures != "off"]
        commands = signed_flow(signed_orders, seed, markets, config.settlement,
                               dev_wallets(SIGNED_WALLETS))  # fmt: skip
        signed = offer(
            node,
            commands,
            LoadProfile(rate=0, batch=100, window=BATCHED_WINDOW, duration_s=600),
        )
    report["signed_batched_orders_per_s"] = _rate(signed)
    report["signed_batched"] = signed.summary()
    report["signed_orders"] = signed_orders
    report.update(
        {
            "orders": orders,
            "windows": {"single": SINGLE_WINDOW, "batched": BATCHED_WINDOW},
            "seed": seed,
            "curve": True,
            "sync": "full",
            "python": platform.python_version(),
            "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cpus",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    return report


def _rate(result: LoadResult) -> int:
    return round(result.answered / result.elapsed_s) if result.elapsed_s else 0


def _label(rate: int) -> str:
    return f"{rate // 1000}k" if rate >= 1000 and rate % 1000 == 0 else str(rate)

"""Hostile load: every attack of issue 12, each against a fresh node, an honest peer watching.

    python bench/hostile.py [--only NAME] [--seconds S] [--attacker-cpus one|all] [--json]

Per attack: a new home on free loopback ports (CURVE on, synced commits, default limits), a node
process, and an honest peer (a process of its own) placing one order at a time at HONEST_RATE
per second and timing each answer. S seconds quiet, then the attack (at least S seconds), then S
seconds after. Printed per attack: the honest p50/p99 ack latency before/during/after, the
node's RSS peak against its quiet value, acknowledged orders missing from the journal (read
after the node stopped), Python tracebacks in home/node.log or a command's stderr, the attack's
own checks, and PASS when the issue's goals hold: p99 during within 3x quiet, RSS within 2x,
nothing lost, no traceback, every check true. The attack runs on one core (`--attacker-cpus`,
`attacker_cpus` says why), the node and the honest peer on all of them. Loopback only; every
attack is bounded in count and time; what it starts (processes, a tmpfs) it stops. Exits 1 when
an attack fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import multiprocessing.synchronize
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import hostile_attacks as attacks
import psutil
from hostile_attacks import ANSWER_TIMEOUT_S, MARKET, OWNERS, Trial

from marketnode.node.client import Client, ClientError, address_of_home
from marketnode.node.core.commands import NewOrder
from marketnode.node.home.keys import PEERS_FOLDER, KeyPair, create_key_pair, load_key_pair
from marketnode.node.home.layout import Home
from marketnode.node.home.peers import Allowlist, Peer, save_allowlist
from marketnode.node.store.lmdb_store import Store
from marketnode.node.tools.e2e import NODE_LOG, prepare_home, start_node_process, stop_node_process

HONEST_RATE = 50
"""Orders per second from the honest peer, one in flight."""
TMPFS_BYTES = 64 << 20


@dataclass(frozen=True)
class Attack:
    run: Callable[[Trial], None]
    analytics: bool = False
    prometheus: bool = False
    tmpfs: bool = False
    outage: bool = False
    """The attack stops the node: the latency goal is judged after it, not during."""


ATTACKS = {
    "oversized": Attack(attacks.oversized),
    "request_flood": Attack(attacks.request_flood),
    "disk_full": Attack(attacks.disk_full, tmpfs=True),
    "analytics_kill": Attack(attacks.analytics_kill, analytics=True),
    "killed_at_start": Attack(attacks.killed_at_start, analytics=True, outage=True),
    "corrupt_store": Attack(attacks.corrupt_store, analytics=True, outage=True),
    "analytics_socket": Attack(attacks.analytics_socket, analytics=True),
    "slow_prometheus": Attack(attacks.slow_prometheus, prometheus=True),
    "connection_storm": Attack(attacks.connection_storm),
    "revoked_peer": Attack(attacks.revoked_peer),
    "export_unwritable": Attack(attacks.export_unwritable, analytics=True),
}

# -- the honest peer, the node's memory, the verdict -------------------------------------------


def honest_peer(home_path: str, stop: multiprocessing.synchronize.Event, results) -> None:
    """One new order at a time at HONEST_RATE/s until `stop`; sends back (sent at, latency
    or None for no answer, id if accepted) per order."""
    home = Home(Path(home_path))
    key = load_key_pair(home.keys_path(home.config()) / PEERS_FOLDER / "honest.key_secret")
    samples: list[tuple[float, float | None, int | None]] = []
    with Client(address_of_home(home), key, timeout_s=ANSWER_TIMEOUT_S) as client:
        next_at = time.monotonic()
        for order_id in range(1, 10**7):
            if stop.is_set():
                break
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += 1 / HONEST_RATE
            order = {"op": "new", "market": MARKET, "id": order_id, "owner": OWNERS["honest"],
                     "side": "buy", "price": "100", "qty": "1"}  # fmt: skip
            sent = time.monotonic()
            try:
                reply = client.submit([order])
            except ClientError:
                samples.append((sent, None, None))
                continue
            accepted = reply.events[0].__struct_config__.tag == "accepted"
            samples.append((sent, time.monotonic() - sent, order_id if accepted else None))
    results.put(samples)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(folder: Path, attack: Attack) -> tuple[Home, dict[str, KeyPair]]:
    """A home on fixed free ports (peers reconnect across restarts), default limits, the
    honest, attacker and victim peers."""
    home, _ = prepare_home(folder / "home", analytics=attack.analytics)
    text = home.config_path.read_text()
    for name in ("orders", "market_data", "admin"):
        text = text.replace(f'{name} = "tcp://127.0.0.1:*"', f'{name} = "tcp://127.0.0.1:{free_port()}"')
    text = text.replace("[limits]\npeer_rate_per_s = 10000000\npeer_burst = 10000000\n", "")
    if attack.prometheus:
        text = text.replace("[metrics]\n", f'[metrics]\nprometheus = "127.0.0.1:{free_port()}"\n')
    home.config_path.write_text(text)
    config = home.config()
    folder_of_keys = home.keys_path(config) / PEERS_FOLDER
    keys = {name: create_key_pair(folder_of_keys, name) for name in OWNERS}
    peers = tuple(Peer(name, keys[name].public_text, (OWNERS[name],)) for name in OWNERS)
    save_allowlist(home.peers_path(config), Allowlist(peers))
    return home, keys


@contextlib.contextmanager
def tmpfs(folder: Path):
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=0700", "tmpfs", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode:
        raise SkipAttack(f"cannot mount a tmpfs ({mounted.stderr.strip() or 'not root?'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


class SkipAttack(Exception):
    pass


def watch_rss(trial: Trial, samples: list[tuple[float, int]], stop: threading.Event) -> None:
    while not stop.wait(0.1):
        with contextlib.suppress(psutil.Error):
            samples.append((time.monotonic(), psutil.Process(trial.process.pid).memory_info().rss))


def latency_ms(samples: list, start: float, end: float) -> dict:
    times = sorted(s[1] for s in samples if start <= s[0] < end and s[1] is not None)
    spanned = [s for s in samples if start <= s[0] < end]
    counts = {
        "answered": len(times), "unanswered": sum(1 for s in spanned if s[1] is None),
        "rejected": sum(1 for s in spanned if s[1] is not None and s[2] is None),
    }  # fmt: skip
    if not times:
        return {"p50": None, "p99": None, **counts}
    p99 = times[min(len(times) - 1, round(0.99 * len(times)))]
    return {"p50": round(statistics.median(times) * 1000, 2), "p99": round(p99 * 1000, 2), **counts}


def acked_but_lost(home: Home, acked: set[int]) -> int:
    store = Store(home.store_path(home.config()), readonly=True)
    try:
        journaled = {
            command.id for _, command in store.journal()
            if type(command) is NewOrder and command.owner == OWNERS["honest"]
        }  # fmt: skip
    finally:
        store.close()
    return len(acked - journaled)


def run_attack(
    name: str, attack: Attack, seconds: float, attacker_cpus: set[int] | None = None
) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"mnode-hostile-{name}-") as scratch:
        folder = Path(scratch)
        with tmpfs(folder / "disk") if attack.tmpfs else contextlib.nullcontext(folder) as base:
            return measure(name, attack, seconds, base, attacker_cpus)


def measure(
    name: str, attack: Attack, seconds: float, folder: Path, attacker_cpus: set[int] | None
) -> dict:
    home, keys = prepare(folder, attack)
    trial = Trial(home, start_node_process(home), keys, seconds)
    spawn = multiprocessing.get_context("spawn")
    stop, results = spawn.Event(), spawn.Queue()
    peer = spawn.Process(target=honest_peer, args=(str(home.path), stop, results), daemon=True)
    rss: list[tuple[float, int]] = []
    watching = threading.Event()
    rss_watcher = threading.Thread(target=watch_rss, args=(trial, rss, watching))
    rss_watcher.start()
    peer.start()
    try:
        began = time.monotonic()
        time.sleep(seconds)
        attack_at = time.monotonic()
        trial.deadline = attack_at + seconds
        try:
            with confined_to(attacker_cpus):
                attack.run(trial)
        except Exception as error:  # an attack that could not run is a failed check
            trial.checks[f"attack ran ({type(error).__name__}: {error})"[:120]] = False
        time.sleep(max(0.0, trial.deadline - time.monotonic()))
        after_at = time.monotonic()
        time.sleep(seconds)
        ended = time.monotonic()
        stop.set()
        samples = results.get(timeout=60)
        peer.join(timeout=30)
    finally:
        stop.set()
        watching.set()
        rss_watcher.join()
        for sock in trial.sockets:
            sock.close(linger=0)
        stop_node_process(trial.process)
        for leftover in trial.node_processes():
            with contextlib.suppress(psutil.Error):
                leftover.kill()
        if peer.is_alive():
            peer.kill()
    acked = {s[2] for s in samples if s[2] is not None}
    phases = {
        "before": (began, attack_at), "during": (attack_at, after_at), "after": (after_at, ended)
    }  # fmt: skip
    latency = {phase: latency_ms(samples, *span) for phase, span in phases.items()}
    quiet_rss = max((r for t, r in rss if t < attack_at), default=0)
    peak_rss = max((r for t, r in rss), default=0)
    log_text = (home.path / NODE_LOG).read_text(errors="replace")
    tracebacks = sum(text.count("Traceback") for text in (log_text, *trial.cli_errors))
    lost = acked_but_lost(home, acked)
    judged = latency["after" if attack.outage else "during"]["p99"]
    quiet = latency["before"]["p99"]
    goals = {
        "p99 within 3x quiet": judged is not None and quiet is not None and judged <= 3 * quiet,
        "RSS within 2x quiet": peak_rss <= 2 * quiet_rss,
        "nothing acknowledged lost": lost == 0,
        "no traceback": tracebacks == 0,
    }
    return {
        "attack": name, "latency_ms": latency, "rss_quiet_mb": round(quiet_rss / 2**20, 1),
        "rss_peak_mb": round(peak_rss / 2**20, 1), "acknowledged": len(acked), "lost": lost,
        "tracebacks": tracebacks, "goals": goals, "checks": trial.checks, "notes": trial.notes,
        "verdict": "PASS" if all(goals.values()) and all(trial.checks.values()) else "FAIL",
    }  # fmt: skip


@contextlib.contextmanager
def confined_to(cpus: set[int] | None):
    """Run the attack on `cpus` only (None: wherever the OS puts it). Linux keeps an affinity
    per thread and a new thread inherits its creator's: the attack's sockets' I/O threads,
    created inside, stay there too, while the node and the honest peer, started before, keep
    every core."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def attacker_cpus(choice: str) -> set[int] | None:
    """`one`: the highest-numbered core this process may use, if it may use two or more. A
    remote attacker spends its own machine's CPU; on one machine over loopback the attacker's
    work (1,000 client handshakes cost it twice what they cost the node) competed with the
    node and the honest peer for the same cores, and the figure measured the attacker's
    process. `all`: unconfined."""
    usable = os.sched_getaffinity(0)
    if choice == "all" or len(usable) < 2:
        return None
    return {max(usable)}


def print_report(report: dict) -> None:
    if "skipped" in report:
        print(f"{report['attack']}: SKIPPED ({report['skipped']})")
        return
    spans = "  ".join(
        f"{phase} p50 {figures['p50']} p99 {figures['p99']} ms"
        + "".join(f", {figures[n]} {n}" for n in ("unanswered", "rejected") if figures[n])
        for phase, figures in report["latency_ms"].items()
    )
    print(f"{report['attack']}: {report['verdict']}")
    print(f"  honest: {spans}")
    print(
        f"  RSS quiet {report['rss_quiet_mb']} MB, peak {report['rss_peak_mb']} MB; "
        f"{report['acknowledged']} acknowledged, {report['lost']} lost; "
        f"{report['tracebacks']} tracebacks"
    )
    for label, held in {**report["goals"], **report["checks"]}.items():
        print(f"  [{'ok' if held else 'FAIL'}] {label}")
    for note in report["notes"]:
        print(f"  note: {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(ATTACKS), action="append")
    parser.add_argument("--seconds", type=float, default=5.0, help="Each phase's length.")
    parser.add_argument(
        "--attacker-cpus", choices=("one", "all"), default="one",
        help="Confine the attacker to one core (default, on 2+ cores) or not.",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    confined = attacker_cpus(options.attacker_cpus)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    reports = []
    for name in options.only or ATTACKS:
        try:
            report = run_attack(name, ATTACKS[name], options.seconds, confined)
        except SkipAttack as skip:
            report = {"attack": name, "skipped": str(skip)}
        reports.append(report)
        if not options.json:
            print_report(report)
            sys.stdout.flush()
    failed = [r["attack"] for r in reports if r.get("verdict") == "FAIL"]
    summary = {
        "attacks": reports, "failed": failed, "seconds": options.seconds,
        "python": platform.python_version(), "machine": " ".join(platform.uname()),
        "cpus": os.cpu_count(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "attacker_cpus": sorted(confined) if confined else "all",
    }  # fmt: skip
    if options.json:
        print(json.dumps(summary))
    else:
        print(f"hostile load: {len(reports) - len(failed)} of {len(reports)} attacks passed"
              + (f"; FAILED: {', '.join(failed)}" if failed else ""))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the analytics store keep up with a loaded node?

    python bench/analytics_keepup.py [--rate 50000] [--duration 30] [--batch 100] [--json]

Starts `mnode start` on a new home with its analytics process on (loopback, CURVE, synced
commits), offers a seeded flow at `--rate` orders/s for `--duration` seconds from one
connection, and samples the analytics lag (commands and seconds behind the journal's last
commit, as the node's `analytics` admin request reports it) twice a second, during the load and
until the store has caught up. Keeping up means the lag stays bounded during the load instead of
growing with it, and drains soon after. `--baseline` runs the same load with the analytics
process off, for the acknowledgement latency it costs on a machine this size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from marketnode.node.client import AdminClient, address_of_home
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.node.tools.e2e import prepare_home, start_node_process, stop_node_process
from marketnode.node.tools.flow import generate_flow
from marketnode.node.tools.load import LoadProfile, LoadResult, run_load

SAMPLE_EVERY_S = 0.5
CATCH_UP_LIMIT_S = 120.0


class LagSampler(threading.Thread):
    """Asks the node for its analytics lag every SAMPLE_EVERY_S until stopped."""

    def __init__(self, admin: AdminClient) -> None:
        super().__init__(daemon=True)
        self.admin = admin
        self.samples: list[tuple[float, int, float]] = []
        """(seconds since start, commands behind, seconds behind)"""
        self.started = time.monotonic()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_EVERY_S):
            lag = self.admin.call("analytics")
            self.samples.append(
                (time.monotonic() - self.started, lag["lag_commands"], lag["lag_s"])
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50_000)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline", action="store_true", help="analytics off")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mnode-keepup-") as folder:
        home, key = prepare_home(Path(folder) / "home", analytics=not options.baseline)
        process = start_node_process(home)
        try:
            report = measure(home, key, options)
        finally:
            stop_node_process(process)
    if options.json:
        print(json.dumps(report))
    elif options.baseline:
        print(
            f"analytics off: answered {report['answered_orders_per_s']:,} orders/s, ack latency "
            f"p50 {report['ack_latency_ms']['p50']} ms, p99 {report['ack_latency_ms']['p99']} ms"
        )
    else:
        print(
            f"offered {report['offered_orders_per_s']:,} orders/s for {options.duration:g} s, "
            f"answered {report['answered_orders_per_s']:,}/s; analytics lag during the load: "
            f"max {report['max_lag_commands']:,} commands / {report['max_lag_s']} s, "
            f"median {report['median_lag_commands']:,} commands; caught up "
            f"{report['catch_up_s']} s after the load ended"
        )


def measure(home, key, options: argparse.Namespace) -> dict:
    profile = LoadProfile(rate=options.rate, batch=options.batch, duration_s=options.duration)
    commands = list(generate_flow(profile.orders_needed(), seed=options.seed))
    config = home.config()
    operator = load_key_pair(home.keys_path(config) / f"{OPERATOR}.key_secret")
    admin = AdminClient(address_of_home(home), operator)
    sampler = LagSampler(admin)
    if options.baseline:
        result = run_load(address_of_home(home), key, commands, profile)
        admin.close()
        return {**_load_report(result, options), "analytics": False}
    sampler.start()
    result = run_load(address_of_home(home), key, commands, profile)
    load_ended = time.monotonic() - sampler.started
    deadline = time.monotonic() + CATCH_UP_LIMIT_S
    caught_up: float | None = None
    while time.monotonic() < deadline:
        behind = [s for s in sampler.samples if s[0] > load_ended]
        if behind and behind[-1][1] == 0:
            caught_up = behind[-1][0] - load_ended
            break
        time.sleep(SAMPLE_EVERY_S)
    sampler.stopping.set()
    sampler.join()
    admin.close()
    during = [s for s in sampler.samples if s[0] <= load_ended] or [(0.0, 0, 0.0)]
    lags = sorted(s[1] for s in during)
    return {
        **_load_report(result, options),
        "analytics": True,
        "max_lag_commands": lags[-1],
        "median_lag_commands": lags[len(lags) // 2],
        "max_lag_s": max(s[2] for s in during),
        "catch_up_s": None if caught_up is None else round(caught_up, 1),
        "lag_samples": [[round(t, 1), c, s] for t, c, s in sampler.samples],
    }


def _load_report(result: LoadResult, options: argparse.Namespace) -> dict:
    return {
        "offered_orders_per_s": round(options.rate),
        "answered_orders_per_s": round(result.answered / result.elapsed_s),
        "answered": result.answered,
        "batch": options.batch,
        "duration_s": options.duration,
        "ack_latency_ms": result.summary()["latency_ms"],
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cpus",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    main()

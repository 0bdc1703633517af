"""What the node's metrics cost: end-to-end throughput with the metrics sampler on and off.

    python bench/metrics_cost.py [--rounds 3] [--orders 200000] [--json]

Each round starts a node with metrics on and one with them off (in alternating order, so a
slow spell of the machine hits both alike), offers the same seeded flow flat out in messages
of 100 from one connection (the batched run of `mnode bench e2e`), and records the answered
orders/s. The cost is 1 - median(on) / median(off). Target (issue 5): under 3%.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from marketnode.node.client import address_of_home
from marketnode.node.tools.e2e import (
    BATCHED_WINDOW,
    prepare_home,
    start_node_process,
    stop_node_process,
)
from marketnode.node.tools.flow import generate_flow
from marketnode.node.tools.load import LoadProfile, run_load


def throughput(metrics: bool, orders: int, seed: int) -> float:
    with tempfile.TemporaryDirectory(prefix="mnode-metrics-") as folder:
        home, key = prepare_home(Path(folder) / "home", metrics=metrics)
        process = start_node_process(home)
        try:
            commands = list(generate_flow(orders, seed=seed))
            profile = LoadProfile(rate=0, batch=100, window=BATCHED_WINDOW, duration_s=600)
            result = run_load(address_of_home(home), key, commands, profile)
        finally:
            stop_node_process(process)
    return result.answered / result.elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    runs: dict[bool, list[float]] = {True: [], False: []}
    for number in range(options.rounds):
        for metrics in (True, False) if number % 2 == 0 else (False, True):
            runs[metrics].append(throughput(metrics, options.orders, options.seed))
    on, off = statistics.median(runs[True]), statistics.median(runs[False])
    report = {
        "orders_per_s_metrics_on": [round(r) for r in runs[True]],
        "orders_per_s_metrics_off": [round(r) for r in runs[False]],
        "cost_share": round(1 - on / off, 4),
        "orders": options.orders,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cpus",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if options.json:
        print(json.dumps(report))
    else:
        print(
            f"metrics on {on:,.0f} orders/s, off {off:,.0f} (medians of {options.rounds}): "
            f"cost {report['cost_share']:.1%}"
        )


if __name__ == "__main__":
    main()

"""What the dashboard costs: its CPU while it watches a loaded node at a 1 s refresh.

    python bench/dashboard_cost.py [--seconds 30] [--refresh 1] [--json]

Starts `mnode start` on a new home (analytics on), offers a steady flow of 2,000 orders/s from
a load process, and runs the dashboard (headless, 160x45) in this process, showing each panel in
turn for `--seconds`; the CPU time this process used while a panel was shown, over the wall
time, is the dashboard's share of one core on that panel (the dashboard asks for and draws
what the panel shown needs, plus the status and metrics it always follows).
Target (issue 6): under 10% at a 1 s refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from marketnode.node.client import address_of_home
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.node.tools.e2e import prepare_home, start_node_process, stop_node_process
from marketnode.tui.app import Dashboard
from marketnode.tui.chart import Chart
from marketnode.tui.panels import PANELS


def measure(seconds: float, refresh: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="mnode-dash-") as folder:
        home, _ = prepare_home(Path(folder) / "home", analytics=True)
        node = start_node_process(home)
        load = subprocess.Popen(
            [sys.executable, "-m", "marketnode.cli", "load", "--home", str(home.path), "--as",
             "load", "--rate", "2000", "--duration", str(seconds + 10)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            config = home.config()
            key = load_key_pair(home.keys_path(config) / f"{OPERATOR}.key_secret")
            app = Dashboard(lambda: address_of_home(home), key, refresh_s=refresh)

            async def watch() -> tuple[dict[str, float], list[float]]:
                shares = {}
                async with app.run_test(size=(160, 45)) as pilot:
                    for key, panel, _, _ in PANELS:
                        await pilot.press(key)
                        await pilot.pause(3)  # its sources asked and drawn
                        cpu, wall = time.process_time(), time.monotonic()
                        await pilot.pause(seconds)
                        used = time.process_time() - cpu
                        shares[panel] = round(used / (time.monotonic() - wall), 4)
                    rates = list(app.query_one("#orders-chart", Chart).plot.values)
                return shares, rates

            shares, rates = asyncio.run(watch())
        finally:
            load.kill()
            load.wait()
            stop_node_process(node)
    return {
        "cpu_share_of_one_core": max(shares.values()),
        "by_panel": shares,
        "node_orders_per_s_median": sorted(rates)[len(rates) // 2] if rates else None,
        "seconds_per_panel": seconds,
        "refresh_s": refresh,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cpus",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--refresh", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    report = measure(options.seconds, options.refresh)
    if options.json:
        print(json.dumps(report))
    else:
        panels = ", ".join(f"{name} {share:.1%}" for name, share in report["by_panel"].items())
        print(
            f"dashboard at a {options.refresh:g} s refresh: at most "
            f"{report['cpu_share_of_one_core']:.1%} of one core ({panels})"
        )


if __name__ == "__main__":
    main()

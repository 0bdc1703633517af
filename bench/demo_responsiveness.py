"""The demo's responsiveness on a busy machine: its flow's ack latency and the dashboard's keys.

    python bench/demo_responsiveness.py [--seconds 75] [--no-hog] [--json]

Starts a CPU hog of its own (a child process spinning, pinned to the last core, stopped by its
pid at the end), then runs the demo as `mnode demo` does: its node, the calibration, the flow
with its drop a third of the way into a two-minute round, the wash ring (both in the demo's
flow process), and the dashboard in this process, here run by Textual's Pilot at 140x40.
For `--seconds` it presses keys one at a time (number keys for every panel, `/` and Escape
for the filter, Down and Enter on a market), then `q`, and times each from the press to the
screen showing its effect (the widget state polled every 5 ms, within a bound of 10 s).
Enter's effect is the Book panel naming the market chosen; when its ladder is drawn (the
node's answer) is timed too. The event loop's lateness waking from a 20 ms sleep (and how much
of it its thread waited for a CPU), and the node's own per-second ack and commit p99, are
reported beside them, to tell where time went.

The ack latency is the load peer's own: each order from its message's send to the node's
answer, outside the drop and during it (the demo's `ack_ms`). As under `mnode demo`, the peer,
its piece generator and the ring run in the demo's flow process (tools/demo_flow.py), a child
of this one: the dashboard has this process's interpreter to itself.
Goals (issue 13): ack p99 under 50 ms outside the drop, every keypress acting within 0.5 s.
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from textual import events
from textual.widgets import DataTable, Input, Static, TabbedContent

from marketnode.node.client import AdminClient, address_of_home
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.node.home.layout import Home
from marketnode.node.tools.demo import WATCHED_ROUND_S, run_demo
from marketnode.node.tools.demo_flow import DROP_S
from marketnode.tui.app import Dashboard
from marketnode.tui.panels import PANELS

SIZE = (140, 40)
POLL_S = 0.005
BOUND_S = 10.0
LAG_SLEEP_S = 0.02
BETWEEN_KEYS_S = 0.7
"""A person's pace, roughly: a key, a look, the next key."""
ACK_P99_GOAL_MS = 50.0
KEY_GOAL_MS = 500.0
DROP_STARTS_S = WATCHED_ROUND_S / 3
DROP_MARGIN_S = 3.0
"""After the drop's last order, the backlog it left may still be draining."""
CHARACTERS = {"slash": "/", "escape": "\x1b", "enter": "\r", "down": None, "up": None}
"""What a terminal sends with each key (the others send their own name)."""
DEMO_KEYS = ("rate_reason", "rate_chosen", "rate_drop", "rate_measured", "rate_steered",
             "orders", "trades", "ring_flagged", "final_scan", "liquidity", "signed_trades",
             "settled_trades", "settlement_failures")  # fmt: skip


class Keys:
    """The dashboard's keys, each timed from its press until its effect is on screen.

    A key is posted to the app as a terminal's driver posts it. Pilot's own `press` is not
    used for the timing: it waits for this process to go idle before it returns (up to a
    second, twice a key), and beside the demo's flow this process is never idle."""

    def __init__(self, app: Dashboard, opened: float) -> None:
        self.app = app
        self.opened = opened
        self.presses: list[dict[str, Any]] = []

    async def press(
        self,
        key: str,
        acted: Callable[[], bool],
        answered: Callable[[], bool] | None = None,
        pause: bool = True,
    ) -> None:
        """Press `key`, wait until `acted()`, then (when given) until `answered()`: what the
        key asked the node for is drawn."""
        started = time.perf_counter()
        event = events.Key(key, CHARACTERS.get(key, key))
        event.set_sender(self.app)
        self.app.post_message(event)
        took_ms = await self._until(acted, started)
        at = started - self.opened
        in_drop = DROP_STARTS_S <= at < DROP_STARTS_S + DROP_S + DROP_MARGIN_S
        press = {"key": key, "at_s": round(at, 2), "ms": took_ms, "in_drop": in_drop,
                 "acted": acted()}  # fmt: skip
        if answered is not None:
            press["answered_ms"] = await self._until(answered, started)
        self.presses.append(press)
        if pause:
            await asyncio.sleep(BETWEEN_KEYS_S)

    async def _until(self, condition: Callable[[], bool], started: float) -> float:
        while not condition() and time.perf_counter() - started < BOUND_S:
            await asyncio.sleep(POLL_S)
        return round((time.perf_counter() - started) * 1000, 1)

    def shows(self, panel: str) -> Callable[[], bool]:
        def shown() -> bool:
            widget = self.app.query_one(f"#{panel}-panel")
            return self.app.query_one(TabbedContent).active == panel and widget.region.area > 0

        return shown

    async def one_round(self) -> None:
        """Every panel by its number, the filter opened and closed, a market's book opened."""
        app = self.app
        await self.press("2", self.shows("markets"))
        field = app.query_one("#market-filter", Input)
        await self.press("slash", lambda: field.has_class("shown") and app.focused is field)
        table = app.query_one("#markets-table", DataTable)
        await self.press("escape", lambda: not field.has_class("shown") and app.focused is table)
        row = table.cursor_row
        move = "down" if row < table.row_count - 1 else "up"
        await self.press(move, lambda: table.row_count < 2 or table.cursor_row != row)
        market = str(table.get_row_at(table.cursor_row)[0]) if table.row_count else ""
        title = app.query_one("#book-title", Static)
        await self.press(
            "enter",
            lambda: self.shows("book")() and str(title.content).startswith(f"{market}:"),
            answered=lambda: (
                str(title.content).startswith(f"{market}: ")
                and "levels shown" in str(title.content)
            ),
        )
        for number, panel, _, _ in (*PANELS[3:], PANELS[0]):
            await self.press(number, self.shows(panel))


def watch(home: Home, seconds: float, outcome: dict[str, Any]) -> None:
    """The demo's dashboard, driven for `seconds`, then `q`."""
    key = load_key_pair(home.keys_path(home.config()) / f"{OPERATOR}.key_secret")
    app = Dashboard(lambda: address_of_home(home), key)

    async def drive() -> None:
        async with app.run_test(size=SIZE):
            keys = Keys(app, time.perf_counter())
            lags: list[tuple[float, float]] = []
            sampler = asyncio.create_task(sample_lag(lags))
            while app.connected is not True and time.perf_counter() - keys.opened < BOUND_S:
                await asyncio.sleep(POLL_S)  # the node heard from: there are markets to choose
            while time.perf_counter() - keys.opened < seconds:
                await keys.one_round()
            sampler.cancel()
            pressed = time.perf_counter()
            await keys.press("q", lambda: app.return_code is not None, pause=False)
        outcome["presses"] = keys.presses
        outcome["lags"] = lags
        outcome["q_closed_ms"] = round((time.perf_counter() - pressed) * 1000, 1)
        outcome["q_pressed"] = pressed

    asyncio.run(drive())
    admin = AdminClient(address_of_home(home), key, timeout_s=BOUND_S)
    try:  # the node's own view of the same seconds, for comparison
        outcome["node_seconds"] = admin.call("metrics")["history"]
    finally:
        admin.close()


async def sample_lag(lags: list[tuple[float, float]]) -> None:
    """How late the event loop wakes from a short sleep (what any key waits before its turn),
    and how much of that its thread was runnable but waiting for a CPU (Linux's schedstat):
    the scheduler's share, as opposed to the interpreter lock's or the loop's own work."""
    while True:
        started, queued = time.perf_counter(), run_queue_wait_s()
        await asyncio.sleep(LAG_SLEEP_S)
        late_ms = (time.perf_counter() - started - LAG_SLEEP_S) * 1000
        lags.append((round(late_ms, 1), round((run_queue_wait_s() - queued) * 1000, 1)))


def run_queue_wait_s() -> float:
    """Seconds this thread has spent runnable, waiting for a CPU (0 where not reported)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def distribution(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    if not values:
        return {"count": 0}
    at = lambda share: values[min(len(values) - 1, int(share * len(values)))]  # noqa: E731
    return {"count": len(values), "p50": at(0.5), "p90": at(0.9), "max": values[-1]}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor()


def start_hog() -> subprocess.Popen:
    """A process that keeps one core busy: the last one, so the other is left to share."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    os.sched_setaffinity(hog.pid, {max(os.sched_getaffinity(0))})
    return hog


def measure(seconds: float, hog: bool, rate: float | None = None) -> dict[str, Any]:
    load_before = os.getloadavg()
    hog_process = start_hog() if hog else None
    outcome: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="mnode-demo-bench-") as folder:
            report = run_demo(
                Path(folder) / "home", 30, rate,
                watch=lambda home, _why: watch(home, seconds, outcome),
                on_note=lambda line: print(f"demo: {line}", file=sys.stderr),
            )  # fmt: skip
            demo_closed_s = time.perf_counter() - outcome["q_pressed"]
    finally:
        if hog_process is not None:
            hog_process.kill()
            hog_process.wait()
    presses = outcome["presses"]
    node_seconds = outcome["node_seconds"]
    keys = [p for p in presses if p["key"] != "q"]
    summary = report.summary()
    worst = max(presses, key=lambda p: p["ms"])
    by_key: dict[str, list[float]] = {}
    for press in presses:
        by_key.setdefault(press["key"], []).append(press["ms"])
    return {
        "ack_ms": summary["ack_ms"],
        "keys_ms": {
            "all": distribution([p["ms"] for p in keys]),
            "outside_the_drop": distribution([p["ms"] for p in keys if not p["in_drop"]]),
            "during_the_drop": distribution([p["ms"] for p in keys if p["in_drop"]]),
            "by_key": {key: distribution(times) for key, times in by_key.items()},
            "enter_book_drawn": distribution(
                [p["answered_ms"] for p in presses if "answered_ms" in p]
            ),
            "worst": worst,
            "not_acted": [p for p in presses if not p["acted"]],
        },
        "event_loop_late_ms": distribution([late for late, _ in outcome["lags"]]),
        "event_loop_late_waiting_for_a_cpu_ms": distribution(
            [queued for _, queued in outcome["lags"]]
        ),
        "event_loop_latest_wakes": sorted(outcome["lags"], reverse=True)[:5],
        "node_per_second": {
            "ack_p99_ms": distribution(
                [s["ack_ms"]["p99"] for s in node_seconds if s["ack_ms"]["count"]]
            ),
            "commit_p99_ms": distribution(
                [s["commit_ms"]["p99"] for s in node_seconds if s["commit_ms"]["count"]]
            ),
            "matching_busy": distribution([s["matching_busy"] for s in node_seconds]),
        },
        "q_dashboard_closed_ms": outcome["q_closed_ms"],
        "q_demo_ended_s": round(demo_closed_s, 1),
        "goals": {
            "ack_p99_outside_the_drop_under_50_ms": summary["ack_ms"]["steady"]["p99"]
            < ACK_P99_GOAL_MS,
            "every_key_within_500_ms": all(p["ms"] < KEY_GOAL_MS and p["acted"] for p in presses),
        },
        "demo": {key: summary[key] for key in DEMO_KEYS},
        "hog": hog,
        "seconds_watched": seconds,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cpus",
        "cpu": cpu_model(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "presses": presses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=75, help="seconds of keys before q")
    parser.add_argument("--no-hog", action="store_true", help="no CPU hog of its own")
    parser.add_argument("--rate", type=float, help="the steady rate (default: calibrated)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    report = measure(options.seconds, hog=not options.no_hog, rate=options.rate)
    if options.json:
        print(json.dumps(report))
        return
    steady, drop = report["ack_ms"]["steady"], report["ack_ms"]["drop"]
    keys = report["keys_ms"]
    print(f"{report['demo']['rate_reason']}")
    print(f"ack ms outside the drop: p50 {steady['p50']} p99 {steady['p99']} max {steady['max']}"
          f"; during it: p50 {drop['p50']} p99 {drop['p99']} max {drop['max']}")  # fmt: skip
    for name in ("all", "outside_the_drop", "during_the_drop", "enter_book_drawn"):
        print(f"keys {name}: {keys[name]}")
    print(f"event loop late (ms): {report['event_loop_late_ms']}, of which waiting for a CPU: "
          f"{report['event_loop_late_waiting_for_a_cpu_ms']}")  # fmt: skip
    print(f"the node's own seconds: {report['node_per_second']}")
    print(
        f"worst key: {keys['worst']}; q closed the dashboard in "
        f"{report['q_dashboard_closed_ms']} ms, the demo in {report['q_demo_ended_s']} s"
    )
    print(f"goals: {report['goals']}")


if __name__ == "__main__":
    main()

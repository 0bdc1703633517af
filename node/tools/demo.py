"""`mnode demo`: a node with a realistic flow, a drop and a wash ring, in a home of its own.

The node runs as a process of its own (analytics on, integrity scans every few seconds,
scaling on) on free loopback ports. A load generator offers a seeded flow at `rate` orders/s
with a drop (sixty times the rate for ten seconds) a third of the way through; meanwhile a ring of
four wallets passes the same quantity round and round in LAND-ETH, each leg priced inside the
spread so that it meets its partner. At the end the summary says what the node did and what it
noticed: orders and trades, alerts raised (the ring among them) and scaling advice given.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..client import AdminClient, Client, ClientError, address_of_home
from ..home.config import NodeConfig
from ..home.keys import OPERATOR, PEERS_FOLDER, create_key_pair, load_key_pair
from ..home.layout import Home
from ..home.peers import Allowlist, Peer, save_allowlist
from ..protocol.wire_events import WireTrade
from .e2e import prepare_home, start_node_process, stop_node_process
from .flow import generate_flow
from .load import LoadProfile, run_load

RING = [f"0xd3m0{n}" for n in range(4)]
RING_MARKET = "LAND-ETH"
WATCHED_ROUND_S = 120
DEMO_SETTINGS = """
[integrity]
scan_interval_s = 10

[scaling]
interval_s = 1
stabilization_s = 30

[scaling.predictive]
step_s = 5
min_history_s = 60
horizon_s = 30
evaluate_s = 60
"""
"""Quick scans and advice for a short run: the predictive policy forecasts half a minute ahead
from 5 s steps once it has a minute of history."""


@dataclass
class DemoReport:
    orders: int = 0
    trades: int = 0
    ring_trades: int = 0
    orders_per_s_peak: float = 0.0
    alerts: list[dict] = field(default_factory=list)
    recommendations: list[dict] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "trades": self.trades,
            "ring_trades": self.ring_trades,
            "orders_per_s_peak": round(self.orders_per_s_peak),
            "alerts": len(self.alerts),
            "alert_detectors": sorted({a["detector"] for a in self.alerts}),
            "ring_flagged": any(set(RING) <= set(a["wallets"]) for a in self.alerts),
            "recommendations": len(self.recommendations),
            "advice": sorted(
                {f"{r['policy']}: {r['action']} {r['resource']}" for r in self.recommendations}
            ),
        }


def prepare_demo_home(path: Path) -> Home:
    """A new home on free ports, analytics on, scans and scaling quick, peers `load` and
    `ring`."""
    home, load_key = prepare_home(path, analytics=True)
    text = home.config_path.read_text()
    home.config_path.write_text(text.replace("[[markets]]", DEMO_SETTINGS + "\n[[markets]]", 1))
    config = home.config()
    ring_key = create_key_pair(home.keys_path(config) / PEERS_FOLDER, "ring")
    save_allowlist(
        home.peers_path(config),
        Allowlist(
            (
                Peer("load", load_key.public_text, relayer=True),
                Peer("ring", ring_key.public_text, relayer=True),
            )
        ),
    )
    return home


def run_demo(
    path: Path,
    duration_s: float,
    rate: float,
    on_second: Callable[[float, dict], None] | None = None,
    watch: Callable[[Home], None] | None = None,
) -> DemoReport:
    """Start the node on a new home at `path`, run the flow, the drop and the ring for
    `duration_s` (or, with `watch`, until `watch(home)` returns: the dashboard, say, with the
    flow and its drop repeated in rounds of `duration_s` or two minutes, whichever is longer),
    wait for the scan, and report."""
    home = prepare_demo_home(path)
    config = home.config()
    keys = home.keys_path(config)
    process = start_node_process(home)
    report = DemoReport()
    try:
        address = address_of_home(home)
        operator = load_key_pair(keys / f"{OPERATOR}.key_secret")
        # after a dashboard, the summary must not keep the operator waiting on a busy node
        admin = AdminClient(address, operator, timeout_s=10 if watch is None else 3)
        stop = threading.Event()
        # with a dashboard the rounds repeat: a drop every two minutes at most, which the
        # analytics process catches up with in between
        round_s = duration_s if watch is None else max(duration_s, WATCHED_ROUND_S)
        profile = LoadProfile(rate=rate, duration_s=round_s, batch=10,
                              burst_at_s=round_s / 3, burst_for_s=10, burst_x=60)  # fmt: skip
        load_key = load_key_pair(keys / PEERS_FOLDER / "load.key_secret")
        ring_key = load_key_pair(keys / PEERS_FOLDER / "ring.key_secret")
        rounds = 1 if watch is None else None
        loader = threading.Thread(
            target=_quietly, args=(_flow, stop, address, load_key, profile, rounds, stop),
            daemon=True,
        )  # fmt: skip
        ring = threading.Thread(
            target=_quietly,
            args=(_ring, stop, address, ring_key, _tick_of(config, RING_MARKET), stop, report),
            daemon=True,
        )
        loader.start()
        ring.start()
        advice: dict[tuple, dict] = {}
        if watch is None:
            _observe(admin, report, advice, loader, duration_s, stop, on_second)
        else:
            observer = threading.Thread(
                target=_observe,
                args=(AdminClient(address, operator), report, advice, loader, 0, stop, None),
                daemon=True,
            )
            observer.start()
            watch(home)
        stop.set()
        ring.join()
        loader.join()
        # after a dashboard the operator has seen the alerts: what is stored so far will do
        report.alerts = _wait_for_scan(admin, patience_s=60 if watch is None else 0)
        try:
            _count(report, admin.call("metrics"))
        except ClientError:  # a node still busy with the drop: the observer's last count
            if watch is None:
                raise
        report.recommendations = list(advice.values())
        admin.close()
    finally:
        stop.set()
        stop_node_process(process)
    return report


def _observe(
    admin: AdminClient,
    report: DemoReport,
    advice: dict,
    loader: threading.Thread,
    duration_s: float,
    stop: threading.Event,
    on_second: Callable[[float, dict], None] | None,
) -> None:
    """Once a second: the peak rate and every piece of scaling advice, until the load is done
    and `duration_s` has passed, or `stop`."""
    started = time.monotonic()
    while not stop.wait(1) and (loader.is_alive() or time.monotonic() - started < duration_s):
        try:
            metrics = admin.call("metrics")
            scale = admin.call("scale")["recommendations"]
        except ClientError:  # a busy second: the next one will tell
            continue
        latest = metrics.get("latest") or {}
        _count(report, metrics)
        report.orders_per_s_peak = max(report.orders_per_s_peak, latest.get("orders_per_s", 0))
        for item in scale:
            advice.setdefault((item["policy"], item["action"], item["resource"]), item)
        if on_second is not None:
            on_second(time.monotonic() - started, latest)


def _flow(
    address: Any, key: Any, profile: LoadProfile, rounds: int | None, stop: threading.Event
) -> None:
    """Offer the seeded flow with its drop `rounds` times (None: until `stop`), each round
    with new order ids."""
    count = profile.orders_needed()
    done = 0
    while not stop.is_set() and (rounds is None or done < rounds):
        commands = list(generate_flow(count, seed=7, first_id=1 + done * count))
        run_load(address, key, commands, profile, stop=stop)
        done += 1


def _count(report: DemoReport, metrics: dict) -> None:
    report.orders = metrics["commands"]
    report.trades = sum(metrics["trades"].values())


def _quietly(task: Callable[..., Any], stop: threading.Event, *arguments: Any) -> None:
    """Run `task`; once the demo is stopping, a node gone away is no error."""
    try:
        task(*arguments)
    except ClientError:
        if not stop.is_set():
            raise


def _tick_of(config: NodeConfig, symbol: str) -> Decimal:
    return Decimal(next(spec.tick_size for spec in config.markets if spec.symbol == symbol))


def _ring(address: Any, key: Any, tick: Decimal, stop: threading.Event, report: DemoReport) -> None:
    """Pass 3 units round the ring twice a second, inside LAND-ETH's spread."""
    client = Client(address, key)
    numbers = iter(range(1, 10**9))
    try:
        while not stop.wait(0.5):
            book = client.snapshot(RING_MARKET)
            bid = Decimal(book.bids[0].price) if book.bids else None
            ask = Decimal(book.asks[0].price) if book.asks else None
            if bid is None or ask is None or ask - bid < 2 * tick:
                continue
            price = str(((bid + ask) / 2).quantize(tick))
            for seller, buyer in zip(RING, RING[1:] + RING[:1], strict=True):
                number = next(numbers)
                reply = client.submit([
                    {"op": "new", "market": RING_MARKET, "id": f"r{number}s", "owner": seller,
                     "side": "sell", "price": price, "qty": "3", "stp": "none"},
                    {"op": "new", "market": RING_MARKET, "id": f"r{number}b", "owner": buyer,
                     "side": "buy", "price": price, "qty": "3", "tif": "IOC", "stp": "none"},
                ])  # fmt: skip
                report.ring_trades += sum(1 for event in reply.events if type(event) is WireTrade)
    finally:
        client.close()


def _wait_for_scan(admin: AdminClient, patience_s: float) -> list[dict]:
    """The alerts kept, once the analytics process has caught up and scanned (or what is kept
    after `patience_s`; asked at least once)."""
    deadline = time.monotonic() + patience_s
    alerts: list[dict] = []
    while True:
        try:
            lag = admin.call("analytics")
            result = admin.call(
                "sql", query="SELECT detector, wallets, len(trades) AS trades FROM alerts"
            )
        except ClientError:  # the analytics process is busy catching up
            lag, result = None, None
        if result is not None:
            alerts = [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]
        done = lag is not None and lag["lag_commands"] == 0
        if time.monotonic() >= deadline or (done and any(set(RING) <= set(a["wallets"])
                                                         for a in alerts)):  # fmt: skip
            return alerts
        time.sleep(1)

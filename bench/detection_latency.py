"""Detection latency: from a wash trade's commit to its alert on the `alerts.` topic.

    python bench/detection_latency.py [--rate 10000] [--duration 60] [--scan-interval S]
                                      [--idle] [--json]

Starts `mnode start` on a new home (loopback, CURVE, synced commits, analytics on, integrity scans
every `--scan-interval` seconds, by default the node's own `[integrity] scan_interval_s`), offers
`mnode load` at `--rate` orders/s in all for `--duration` seconds (`THIN_RATE` of it in LAND-ETH,
the rest in the two other markets), and meanwhile runs a wash ring like the demo's: four wallets
passing 3 units round and round in LAND-ETH twice a second, each leg a resting sell and an IOC buy
at the mid of the book. A subscriber on the market-data socket's `alerts.` topic notes when each
alert arrives. Unless `--idle`, a busy loop keeps the other core busy the whole time (the machine
the demo promises to work on).

After the load, the bench waits until the analytics store has caught up and every wash trade (a
trade between two ring wallets) is named by an alert of a wash detector, or `WAIT_S` passes. A wash
trade's latency is the arrival of the first such alert naming its seq minus its commit time (the
`trades.time` the node's commit gave it; one machine, one clock). Printed:
`detection_latency_p50_s`, `detection_latency_p95_s`, `detection_latency_max_s`, the wash trades
flagged and not, and `demo_ring_flagged_s`: from the ring's first trade to the first alert naming
all four of its wallets. Beside them, where the time goes: from a wash trade's commit to the start
of the scan that flagged it (the follower's lag, the wait for the next scan, and any scans that ran
before the detector could tell), from that start to the alert's arrival (the scan and the
publishing), the analytics process's lag behind the journal and its scans' cost (in all and each
detector), asked once a second during the load. Goals (issue 16): p95 <= 10 s at 10,000 orders/s
offered, the ring flagged within 30 s of its first trade with a busy core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import zmq

from marketnode.node.client import AdminClient, Client, ClientError, address_of_home
from marketnode.node.client.address import connect_socket
from marketnode.node.home.keys import OPERATOR, PEERS_FOLDER, create_key_pair, load_key_pair
from marketnode.node.home.peers import Allowlist, Peer, save_allowlist
from marketnode.node.protocol.messages import ALERTS_TOPIC
from marketnode.node.tools.e2e import (
    NODE_COMMAND,
    prepare_home,
    start_node_process,
    stop_node_process,
)

RING = [f"0xbe7c{n}" for n in range(4)]
RING_MARKET = "LAND-ETH"
RING_EVERY_S = 0.5
BUSY_MARKETS = "PUNK-ETH,GOLD-USDC"
THIN_RATE = 200.0
"""Orders/s of the honest flow in the ring's market, out of `--rate`: wash is at home in a thin
market (in a busy one the flow snipes most of the ring's legs before they meet: measured 31% of
its fills inside the ring at 10,000 orders/s over all three markets)."""
LAG_EVERY_S = 1.0
WAIT_S = 90.0
"""After the load: how long the bench waits for the analytics to catch up and flag the ring."""
SCORING_DETECTORS = ("market_statistics", "anomalous_wallets")
"""Detectors whose alerts list every trade they scored: not a finding of wash."""


class LagSampler(threading.Thread):
    """Asks the analytics process's lag and its last scan's cost every `LAG_EVERY_S` during the
    load: where detection time goes (the follower behind the journal, or the scans)."""

    def __init__(self, address, operator) -> None:
        super().__init__(daemon=True)
        self.admin = AdminClient(address, operator)
        self.lags: list[float] = []
        self.scans: dict[tuple[str, int], dict] = {}
        """Each finished scan's cost, by its lane and number."""
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.wait(LAG_EVERY_S):
                try:
                    lag = self.admin.call("analytics")
                except ClientError:  # too busy to answer in time: a lag not read
                    continue
                self.lags.append(lag["lag_s"])
                for lane, scans in lag["scans"].items():
                    if scans["last_scan"]:
                        self.scans[lane, scans["scans"]] = scans["last_scan"]
        finally:
            self.admin.close()

    def report(self) -> dict:
        detectors: dict[str, float] = {}
        lanes: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for (lane, _), scan in self.scans.items():
            lanes.setdefault(lane, []).append(scan["scan_s"])
            cpu.setdefault(lane, []).append(scan["cpu_s"])
            for name, seconds in scan["detectors_s"].items():
                detectors[name] = max(detectors.get(name, 0.0), seconds)
        return {
            "follower_lag_p50_s": _rounded(percentile(self.lags, 0.5)),
            "follower_lag_max_s": _rounded(max(self.lags, default=None)),
            "scans": {
                lane: {
                    "seen": len(seconds),
                    "p50_s": _rounded(percentile(seconds, 0.5)),
                    "max_s": _rounded(max(seconds)),
                    "cpu_p50_s": _rounded(percentile(cpu[lane], 0.5)),
                }
                for lane, seconds in sorted(lanes.items())
            },
            "detector_max_s": {name: round(s, 2) for name, s in sorted(detectors.items())},
        }


class AlertListener(threading.Thread):
    """Notes the arrival (wall clock) of every alert published on the `alerts.` topic."""

    def __init__(self, address, key) -> None:
        super().__init__(daemon=True)
        self.socket = connect_socket(zmq.Context.instance(), zmq.SUB, address.market_data,
                                     address, key)  # fmt: skip
        self.socket.subscribe(ALERTS_TOPIC)
        self.arrivals: list[tuple[float, dict]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            if self.socket.poll(200):
                _topic, payload = self.socket.recv_multipart()
                self.arrivals.append((time.time(), msgspec.msgpack.decode(payload)))
        self.socket.close(linger=0)


def run_ring(address, key, tick: Decimal, stopping: threading.Event) -> None:
    """The demo's ring: every leg a resting sell and an IOC buy at the book's mid."""
    client = Client(address, key)
    number = 0
    try:
        while not stopping.wait(RING_EVERY_S):
            try:
                book = client.snapshot(RING_MARKET)
            except ClientError:
                continue
            if not (book.bids and book.asks):
                continue
            bid, ask = Decimal(book.bids[0].price), Decimal(book.asks[0].price)
            if ask - bid < 2 * tick:
                continue
            price = str(((bid + ask) / 2).quantize(tick))
            for seller, buyer in zip(RING, RING[1:] + RING[:1], strict=True):
                number += 1
                client.submit([
                    {"op": "new", "market": RING_MARKET, "id": f"w{number}s", "owner": seller,
                     "side": "sell", "price": price, "qty": "3", "stp": "none"},
                    {"op": "new", "market": RING_MARKET, "id": f"w{number}b", "owner": buyer,
                     "side": "buy", "price": price, "qty": "3", "tif": "IOC", "stp": "none"},
                ])  # fmt: skip
    finally:
        client.close()


def load_command(home: Path, markets: str, rate: float, duration_s: float, seed: int) -> list:
    """`mnode load` as the `load` peer on `markets`; each seed has order ids of its own."""
    return [*NODE_COMMAND, "load", "--home", str(home), "--as", "load", "--markets", markets,
            "--rate", f"{rate:g}", "--duration", f"{duration_s:g}", "--batch", "10",
            "--seed", str(seed), "--first-id", str(seed * 10**9), "--json"]  # fmt: skip


def ring_fills(admin: AdminClient) -> int | None:
    """Trades with a ring wallet on either side: the ring's legs, met or sniped by the flow
    (None: the analytics process was too busy to answer three times)."""
    wallets = ", ".join(f"'{wallet}'" for wallet in RING)
    query = f"SELECT count(*) FROM trades WHERE seller IN ({wallets}) OR buyer IN ({wallets})"
    for _ in range(3):
        try:
            return admin.call("sql", query=query)["rows"][0][0]
        except ClientError:
            continue
    return None


def wash_trades(admin: AdminClient) -> dict[int, float]:
    """Seq -> commit time (epoch seconds) of every trade between two ring wallets."""
    wallets = ", ".join(f"'{wallet}'" for wallet in RING)
    result = admin.call(
        "sql",
        query=f"SELECT seq, epoch_ns(time) FROM trades WHERE seller IN ({wallets}) "
        f"AND buyer IN ({wallets}) AND seller <> buyer",
    )
    return {seq: time_ns / 1e9 for seq, time_ns in result["rows"]}


def first_flagged(arrivals: list[tuple[float, dict]]) -> dict[int, tuple[float, float]]:
    """Seq -> arrival of the first wash detector's alert naming it, and when the scan that
    found it began (the alert's time, to the second)."""
    flagged: dict[int, tuple[float, float]] = {}
    for arrived, alert in arrivals:
        if alert["detector"] in SCORING_DETECTORS:
            continue
        scan_began = datetime.fromisoformat(alert["time"]).timestamp()
        for seq in alert["trades"]:
            flagged.setdefault(seq, (arrived, scan_began))
    return flagged


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(rate: float, duration_s: float, scan_interval_s: float | None, busy: bool) -> dict:
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        with tempfile.TemporaryDirectory(prefix="mnode-latency-") as folder:
            return _measure(Path(folder), rate, duration_s, scan_interval_s)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def _measure(folder: Path, rate: float, duration_s: float, scan_interval_s: float | None) -> dict:
    home, load_key = prepare_home(folder / "home", analytics=True)
    if scan_interval_s is not None:
        text = home.config_path.read_text()
        scans = f"[integrity]\nscan_interval_s = {scan_interval_s:g}\n\n[[markets]]"
        home.config_path.write_text(text.replace("[[markets]]", scans, 1))
    config = home.config()
    ring_key = create_key_pair(home.keys_path(config) / PEERS_FOLDER, "ring")
    save_allowlist(home.peers_path(config), Allowlist((
        Peer("load", load_key.public_text, relayer=True),
        Peer("ring", ring_key.public_text, relayer=True),
    )))  # fmt: skip
    tick = Decimal(next(m.tick_size for m in config.markets if m.symbol == RING_MARKET))
    process = start_node_process(home)
    try:
        address = address_of_home(home)
        operator = load_key_pair(home.keys_path(config) / f"{OPERATOR}.key_secret")
        admin = AdminClient(address, operator)
        listener = AlertListener(address, ring_key)
        listener.start()
        sampler = LagSampler(address, operator)
        sampler.start()
        stopping = threading.Event()
        ring = threading.Thread(target=run_ring, args=(address, ring_key, tick, stopping))
        ring.start()
        thin = subprocess.Popen(
            load_command(home.path, RING_MARKET, THIN_RATE, duration_s, 2),
            stdout=subprocess.DEVNULL,
        )
        load = subprocess.run(
            load_command(home.path, BUSY_MARKETS, rate - THIN_RATE, duration_s, 1),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        thin.wait()
        stopping.set()
        ring.join()
        sampler.stopping.set()
        sampler.join()
        deadline = time.monotonic() + WAIT_S
        wash: dict[int, float] = {}
        caught_up = False
        while time.monotonic() < deadline:
            try:
                caught_up = admin.call("analytics")["lag_commands"] == 0
                wash = wash_trades(admin)
            except ClientError:  # busy catching up: ask again
                continue
            if caught_up and wash and set(wash) <= set(first_flagged(listener.arrivals)):
                break
            time.sleep(1)
        fills = ring_fills(admin)
        listener.stopping.set()
        listener.join()
        admin.close()
    finally:
        stop_node_process(process)
    report = _report(load, wash, listener.arrivals)
    report.update(
        analytics_caught_up=caught_up,
        ring_fills=fills,
        scan_interval_s=config.integrity.scan_interval_s,
        **sampler.report(),
    )
    return report


def _report(load: subprocess.CompletedProcess, wash: dict, arrivals: list) -> dict:
    flagged = first_flagged(arrivals)
    latencies = [flagged[seq][0] - committed for seq, committed in wash.items() if seq in flagged]
    before_scan = [flagged[seq][1] - committed for seq, committed in wash.items() if seq in flagged]
    in_scan = [flagged[seq][0] - flagged[seq][1] for seq in wash if seq in flagged]
    whole_ring = [arrived for arrived, alert in arrivals if set(RING) <= set(alert["wallets"])]
    first_trade = min(wash.values(), default=None)
    offered = json.loads(load.stdout) if load.returncode == 0 else {"error": load.stderr[-500:]}
    return {
        "load": {key: offered.get(key)
                 for key in ("sent", "orders_per_s", "elapsed_s", "latency_ms", "error")
                 if key in offered},
        "wash_trades": len(wash),
        "wash_trades_flagged": len(latencies),
        "detection_latency_p50_s": _rounded(percentile(latencies, 0.50)),
        "detection_latency_p95_s": _rounded(percentile(latencies, 0.95)),
        "detection_latency_max_s": _rounded(max(latencies, default=None)),
        "commit_to_scan_p50_p95_s": [_rounded(percentile(before_scan, q)) for q in (0.5, 0.95)],
        "scan_to_alert_p50_p95_s": [_rounded(percentile(in_scan, q)) for q in (0.5, 0.95)],
        "demo_ring_flagged_s": _rounded(
            min(whole_ring) - first_trade if whole_ring and first_trade is not None else None
        ),
        "alerts": len(arrivals),
        "alerts_by_detector": dict(Counter(alert["detector"] for _, alert in arrivals)),
    }  # fmt: skip


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument(
        "--scan-interval", type=float, default=None,
        help="seconds between scans (default: the node's own, [integrity] scan_interval_s)",
    )  # fmt: skip
    parser.add_argument("--idle", action="store_true", help="no busy loop on the other core")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {
        "rate_offered": args.rate,
        "duration_s": args.duration,
        "busy_core": not args.idle,
        **measure(args.rate, args.duration, args.scan_interval, busy=not args.idle),
    }
    report.update(
        date=datetime.now(UTC).strftime("%Y-%m-%d"),
        machine=f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    )
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()

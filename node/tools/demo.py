"""`mnode demo`: a node with a realistic flow, a drop and a wash ring, in a home of its own.

The node runs as a process of its own (analytics on, integrity scans every few seconds,
scaling on) on free loopback ports. The demo first measures what the node sustains on this
machine (tools/calibration.py), then a load generator offers a seeded flow at 40% of it with
a drop to 90% for ten seconds a third of the way through (or the operator's `--rate`, the drop
in proportion): busy, never at collapse. Meanwhile a ring of four wallets passes the same
quantity round and round in LAND-ETH, each leg priced inside the spread so that it meets its
partner. At the end, once a final scan has run (tools/final_scan.py), the summary says what
the node did and what it found: orders and trades, alerts raised (the ring among them) and
scaling advice given.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from ..client import AdminClient, Client, ClientError, address_of_home
from ..home.config import NodeConfig
from ..home.keys import OPERATOR, PEERS_FOLDER, create_key_pair, load_key_pair
from ..home.layout import Home
from ..home.peers import Allowlist, Peer, save_allowlist
from ..ops.metrics import Histogram
from ..protocol.wire_events import WireTrade
from .calibration import CALIBRATION_S, DemoRates, given_rates, measure_capacity, rates_for
from .e2e import prepare_home, start_node_process, stop_node_process
from .final_scan import ring_flagged, wait_for_final_scan
from .flow import generate_flow
from .load import LoadProfile, run_load

RING = [f"0xd3m0{n}" for n in range(4)]
RING_MARKET = "LAND-ETH"
WATCHED_ROUND_S = 120
DROP_S = 10.0
PIECE_S = 5.0
ADMIN_TIMEOUT_S = 5.0
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


class Piece(NamedTuple):
    """A stretch of the flow at one rate."""

    seconds: float
    rate: float
    in_drop: bool


@dataclass
class DemoReport:
    orders: int = 0
    trades: int = 0
    ring_trades: int = 0
    orders_per_s_peak: float = 0.0
    alerts: list[dict] = field(default_factory=list)
    final_scan: bool = False
    """Whether `alerts` are what a scan after the last trade found (else: what was kept when
    the wait for it ran out)."""
    recommendations: list[dict] = field(default_factory=list)
    rates: DemoRates | None = None
    ack_us: dict[str, Histogram] = field(
        default_factory=lambda: {"steady": Histogram(), "drop": Histogram()}
    )
    """The flow's orders, from each message's send to its answer, as the load peer saw them:
    outside the drop and during it (microseconds)."""

    def summary(self) -> dict[str, Any]:
        rates = self.rates
        return {
            "orders": self.orders,
            "trades": self.trades,
            "ring_trades": self.ring_trades,
            "orders_per_s_peak": round(self.orders_per_s_peak),
            "rate_chosen": round(rates.steady) if rates else None,
            "rate_drop": round(rates.drop) if rates else None,
            "rate_measured": round(rates.measured) if rates and rates.measured else None,
            "rate_reason": rates.reason() if rates else "",
            "ack_ms": {phase: hist.summary(1000) for phase, hist in self.ack_us.items()},
            "alerts": len(self.alerts),
            "alert_detectors": sorted({a["detector"] for a in self.alerts}),
            "ring_flagged": ring_flagged(self.alerts, RING),
            "final_scan": self.final_scan,
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
    rate: float | None = None,
    on_second: Callable[[float, dict], None] | None = None,
    watch: Callable[[Home, str], None] | None = None,
    on_note: Callable[[str], None] = lambda line: None,
) -> DemoReport:
    """Start the node on a new home at `path`, measure what it sustains (unless `rate` gives
    the steady rate), run the flow, the drop and the ring for `duration_s` (or, with `watch`,
    until `watch(home, why_these_rates)` returns: the dashboard, say, with the flow and its
    drop repeated in rounds of `duration_s` or two minutes, whichever is longer), wait for a
    final scan, and report. `on_note` hears the calibration and the countdown to that scan."""
    home = prepare_demo_home(path)
    config = home.config()
    keys = home.keys_path(config)
    process = start_node_process(home)
    report = DemoReport()
    try:
        address = address_of_home(home)
        operator = load_key_pair(keys / f"{OPERATOR}.key_secret")
        admin = AdminClient(address, operator, timeout_s=ADMIN_TIMEOUT_S)
        load_key = load_key_pair(keys / PEERS_FOLDER / "load.key_secret")
        ring_key = load_key_pair(keys / PEERS_FOLDER / "ring.key_secret")
        if rate is None:
            on_note(f"measuring what this machine sustains ({CALIBRATION_S:g} s)")
            report.rates = rates_for(measure_capacity(address, load_key))
        else:
            report.rates = given_rates(rate)
        on_note(report.rates.reason())
        stop = threading.Event()
        # with a dashboard the rounds repeat: a drop every two minutes at most, which the
        # analytics process catches up with in between
        round_s = duration_s if watch is None else max(duration_s, WATCHED_ROUND_S)
        plan = round_plan(round_s, report.rates)
        rounds = 1 if watch is None else None
        loader = threading.Thread(
            target=_quietly,
            args=(_flow, stop, address, load_key, plan, rounds, stop, report.ack_us),
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
            watch(home, report.rates.reason())
        stop.set()
        ring.join()
        loader.join()
        report.alerts, report.final_scan = wait_for_final_scan(
            admin, config.integrity.scan_interval_s, RING, on_note
        )
        try:
            _count(report, admin.call("metrics"))
        except ClientError:  # a node still busy: the observer's last count stands
            on_note("the node did not answer for its final count: the last second's is shown")
        report.recommendations = list(advice.values())
        admin.close()
    finally:
        stop.set()
        stop_node_process(process)
    return report


def round_plan(round_s: float, rates: DemoRates) -> list[Piece]:
    """One round of the flow in pieces: steady, the drop a third of the
    way in (ten seconds, less in a short round), steady again. Pieces are at most
    `PIECE_S` long, so what a piece sends is generated in a fraction of a second."""
    before = round_s / 3
    drop = min(DROP_S, round_s / 3)
    after = max(0.0, round_s - before - drop)
    steady = rates.steady
    return [*_pieces(before, steady), Piece(drop, rates.drop, True), *_pieces(after, steady)]


def _pieces(seconds: float, rate: float) -> list[Piece]:
    pieces = []
    while seconds > 0:
        pieces.append(Piece(min(PIECE_S, seconds), rate, False))
        seconds -= PIECE_S
    return pieces


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
    address: Any,
    key: Any,
    plan: list[Piece],
    rounds: int | None,
    stop: threading.Event,
    ack_us: dict[str, Histogram],
) -> None:
    """Offer the seeded flow piece by piece of `plan`, `rounds` times (None: until `stop`),
    so trading starts at once and goes on without a pause. Each order's time to its answer
    goes into `ack_us`, by phase."""
    pieces = itertools.chain.from_iterable(
        itertools.repeat(plan) if rounds is None else itertools.repeat(plan, rounds)
    )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-flow") as generator:
        for piece, commands in prepared(pieces, generator):
            if stop.is_set():
                return
            profile = LoadProfile(rate=piece.rate, duration_s=piece.seconds, batch=10)
            result = run_load(address, key, commands, profile, stop=stop)
            record = ack_us["drop" if piece.in_drop else "steady"].record
            for latency_ms in result.latencies_ms:
                record(int(latency_ms * 1000))


def prepared(pieces: Iterable[Piece], generator: Executor) -> Iterator[tuple[Piece, list]]:
    """Each piece with its orders (as many as its rate and seconds call for, with ids that
    follow the piece before's), the next piece's generated by `generator` while this one is
    sent."""
    first_id = 1
    upcoming = None
    for number, piece in enumerate(pieces):
        count = max(10, int(piece.seconds * piece.rate))
        orders = generator.submit(_piece_commands, count, number, first_id)
        first_id += count
        if upcoming is not None:
            yield upcoming[0], upcoming[1].result()
        upcoming = (piece, orders)
    if upcoming is not None:
        yield upcoming[0], upcoming[1].result()


def _piece_commands(count: int, number: int, first_id: int) -> list:
    return list(generate_flow(count, seed=7 + number, first_id=first_id))


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

"""`mnode demo`: a node with a realistic flow, a drop and a wash ring, in a home of its own.

The node runs as a process of its own (analytics on, integrity scans every few seconds,
scaling on) on free loopback ports. The demo first measures what the node alone sustains on
this machine (tools/calibration.py), then a load generator offers a seeded flow, steered every
few seconds toward the node's matching thread 40% busy (at most 40% of the calibrated rate),
with a drop to 2.25 times the steady rate for ten seconds a third of the way through (or the
operator's `--rate`, not steered, the drop in proportion): busy, never at collapse. Meanwhile
a ring of four wallets passes the same quantity round and round in LAND-ETH, each leg priced
inside the spread so that it meets its partner. Beside the flow's markets the home has three
of the demo's own (tools/demo_markets.py): one quoted by a constant-product pool and one by a
market maker (the node's liquidity process runs both from its start; takers trade against
them, faster in the drop), and one of signed orders whose trades settle on the embedded chain
(tools/demo_chain.py, a child started with the node). The flow and its traders
run in a child process (tools/demo_flow.py), so that the dashboard's drawing and the flow's
sending do not share an interpreter; it reports its orders, trades, acknowledgement times and
steering here. At the end, once a final scan has run (tools/final_scan.py) and the signed
trades are settled, the summary says what the node did and what it found: orders and trades,
alerts raised (the ring among them), scaling advice given, how continuously each liquidity
instance quoted (from the journal) and what settled on the chain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..client import AdminClient, ClientError, address_of_home
from ..home.keys import OPERATOR, PEERS_FOLDER, create_key_pair, load_key_pair
from ..home.layout import Home
from ..home.peers import Allowlist, Peer, save_allowlist
from ..ops.metrics import Histogram
from .calibration import (
    CALIBRATION_S,
    DROP_TIMES,
    DemoRates,
    SteeringStep,
    given_rates,
    measure_capacity,
    rates_for,
    steered_outcome,
)
from .demo_chain import ChainProcess
from .demo_flow import PHASES, FlowProcess, FlowProgress
from .demo_markets import (
    LIQUIDITY,
    LIQUIDITY_OWNERS,
    SETTLED_MARKET,
    demo_markets,
    demo_tables,
    quote_coverage,
)
from .demo_traders import RING, RING_MARKET
from .e2e import prepare_home, start_node_process, stop_node_process
from .final_scan import ring_flagged, wait_for_final_scan

# the ring and its market are the flow's; whoever watches a demo finds them here too
__all__ = ["RING", "RING_MARKET", "WATCHED_ROUND_S", "DemoReport", "prepare_demo_home", "run_demo"]

WATCHED_ROUND_S = 120
ADMIN_TIMEOUT_S = 5.0
QUOTES_WAIT_S = 30.0
"""How long the flow waits for the liquidity instances' first quotes (they come within a
second or two of the node's start; a machine that slow is said so, and the figures show it)."""
SETTLE_WAIT_S = 30.0
"""How long the summary waits, after the final scan, for the signed trades' settlement."""
TRADER_PEERS = ("ring", "takers", "dealer")
ANALYTICS_NICE = 5
"""The demo's analytics process yields to the dashboard and the flow (`[analytics] nice`): its
scans took most of a core for seconds every ten beside them, and what the demo is judged by is
its keys and acknowledgements; the store catches up between drops, and the summary waits for
a final scan."""
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
    final_scan: bool = False
    """Whether `alerts` are what a scan after the last trade found (else: what was kept when
    the wait for it ran out)."""
    recommendations: list[dict] = field(default_factory=list)
    rates: DemoRates | None = None
    ack_us: dict[str, Histogram] = field(
        default_factory=lambda: {phase: Histogram() for phase in PHASES}
    )
    """The flow's orders, from each message's send to its answer, as the load peer saw them:
    outside the drop and during it (microseconds)."""
    steered: list[SteeringStep] = field(default_factory=list)
    """The flow's latest steering steps (none with `--rate`)."""
    flow: FlowProgress = field(default_factory=FlowProgress)
    liquidity: dict[str, dict] = field(default_factory=dict)
    """Each liquidity instance's quoting from the journal (demo_markets.quote_coverage) and
    its last state from the node's `status` (halted, fills, position)."""
    settlement: dict[str, Any] = field(default_factory=dict)
    """The demo chain's last report (tools/demo_chain.py)."""

    def take(self, progress: FlowProgress) -> None:
        """The flow process's latest report (its figures run from its start)."""
        self.flow = progress
        self.ring_trades = progress.ring_trades
        self.ack_us = {**self.ack_us, **progress.ack_histograms()}
        self.steered = progress.steered

    def rate_reason(self) -> str:
        """The rates and why, and what the steering made of them."""
        rates = self.rates
        if rates is None:
            return ""
        if rates.steering() is None:
            return rates.reason()
        return f"{rates.reason()}; {steered_outcome(self.steered)}"

    def rate_steered(self) -> dict[str, Any] | None:
        """What the steering did: its bounds, the rate it ended at and its steps (at_s,
        busy, orders_per_s, rate); None when the rate was given."""
        steering = self.rates.steering() if self.rates else None
        if steering is None or self.rates is None:
            return None
        final = self.steered[-1].rate if self.steered else self.rates.steady
        return {
            "target_busy": steering.target,
            "floor": round(steering.floor),
            "ceiling": round(steering.ceiling),
            "final": round(final),
            "final_drop": round(final * DROP_TIMES),
            "history": msgspec.to_builtins(self.steered),  # array-like: lists
        }

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
            "rate_reason": self.rate_reason(),
            "rate_steered": self.rate_steered(),
            "ack_ms": {phase: hist.summary(1000) for phase, hist in self.ack_us.items()},
            "alerts": len(self.alerts),
            "alert_detectors": sorted({a["detector"] for a in self.alerts}),
            "ring_flagged": ring_flagged(self.alerts, RING),
            "final_scan": self.final_scan,
            "recommendations": len(self.recommendations),
            "advice": sorted(
                {f"{r['policy']}: {r['action']} {r['resource']}" for r in self.recommendations}
            ),
            "liquidity": self.liquidity,
            "liquidity_trades": self.flow.liquidity_trades,
            "signed_trades": self.flow.signed_trades,
            **self.settlement_summary(),
        }

    def settlement_summary(self) -> dict[str, Any]:
        """What settled on the embedded chain: the counts of the relayer's last report and its
        figures (a chain that could not be set up says why)."""
        report = self.settlement
        trades = report.get("trades", {})
        return {
            "settled_trades": trades.get("confirmed", 0),
            "settlement_failures": trades.get("failed", 0),
            "settlement": {
                "chain": "embedded", "market": SETTLED_MARKET,
                "phase": report.get("phase", "not started"), "error": report.get("error", ""),
                "pending": trades.get("pending", 0) + trades.get("submitted", 0),
                "all_final": bool(report.get("caught_up")),
                **{key: report.get(key) for key in ("contract", "lag_p50_s", "gas_per_trade")},
                "failures": report.get("failures", []),
            },
        }  # fmt: skip


def prepare_demo_home(path: Path) -> Home:
    """A new home on free ports, analytics on (at ANALYTICS_NICE), scans and scaling quick, the
    demo's markets and liquidity instances, and its peers: `load`, the traders (`ring`,
    `takers`, `dealer`: any owner) and the instances' (`pool`, `maker`: their own owner,
    cancelled on disconnect)."""
    home, load_key = prepare_home(path, analytics=True)
    analytics = "[analytics]\nenabled = true\n"
    text = home.config_path.read_text().replace(
        analytics, f"{analytics}nice = {ANALYTICS_NICE}\n", 1
    )
    settings = DEMO_SETTINGS + demo_tables() + "\n[[markets]]"
    home.config_path.write_text(text.replace("[[markets]]", settings, 1) + demo_markets())
    config = home.config()
    folder = home.keys_path(config) / PEERS_FOLDER
    peers = [Peer("load", load_key.public_text, relayer=True)]
    peers += [Peer(name, create_key_pair(folder, name).public_text, relayer=True)
              for name in TRADER_PEERS]  # fmt: skip
    peers += [Peer(name, create_key_pair(folder, name).public_text, (LIQUIDITY_OWNERS[name],),
                   cancel_on_disconnect=True) for name in LIQUIDITY]  # fmt: skip
    save_allowlist(home.peers_path(config), Allowlist(tuple(peers)))
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
    final scan and for the signed trades' settlement, and report, with how the liquidity
    instances quoted (replayed from the journal once the node has stopped). `on_note` hears
    the calibration, the steering (headless: not over a dashboard) and the countdowns."""
    home = prepare_demo_home(path)
    config = home.config()
    keys = home.keys_path(config)
    process = start_node_process(home)
    report = DemoReport()
    flow: FlowProcess | None = None
    chain = ChainProcess(home)
    flow_started = flow_ended = 0.0
    try:
        address = address_of_home(home)
        operator = load_key_pair(keys / f"{OPERATOR}.key_secret")
        admin = AdminClient(address, operator, timeout_s=ADMIN_TIMEOUT_S)
        chain.start()  # its setup (seconds of py-evm, at nice 10) overlaps the calibration
        if rate is None:
            on_note(f"measuring what this machine sustains ({CALIBRATION_S:g} s)")
            load_key = load_key_pair(keys / PEERS_FOLDER / "load.key_secret")
            report.rates = rates_for(measure_capacity(address, load_key))
        else:
            report.rates = given_rates(rate)
        on_note(report.rates.reason())
        _await_quotes(admin, on_note)
        stop = threading.Event()
        # with a dashboard the rounds repeat: a drop every two minutes at most, which the
        # analytics process catches up with in between
        round_s = duration_s if watch is None else max(duration_s, WATCHED_ROUND_S)
        flow = FlowProcess(home, report.rates, round_s, 1 if watch is None else None)
        flow_started = time.time()
        flow.start()
        advice: dict[tuple, dict] = {}
        if watch is None:
            _observe(admin, report, advice, flow, duration_s, stop, on_second, on_note)
        else:
            observer = threading.Thread(
                target=_observe,
                args=(AdminClient(address, operator), report, advice, flow, 0, stop),
                daemon=True,
            )
            observer.start()
            watch(home, report.rates.reason())
        stop.set()
        report.take(flow.stop())
        flow_ended = time.time()
        if why := flow.ended_badly():
            on_note(f"the flow stopped early: {why}")
        if report.rates.steering() is not None:
            on_note(steered_outcome(report.steered))
        report.alerts, report.final_scan = wait_for_final_scan(
            admin, config.integrity.scan_interval_s, RING, on_note
        )
        report.settlement = chain.wait_settled(SETTLE_WAIT_S, on_note)
        try:
            _count(report, _counters(admin))
            report.liquidity = _instances(admin.call("status"))
        except ClientError:  # a node still busy: the observer's last count stands
            on_note("the node did not answer for its final count: the last second's is shown")
        report.recommendations = list(advice.values())
        admin.close()
    finally:
        try:
            if flow is not None:
                flow.stop()
            report.settlement = chain.stop() or report.settlement
        finally:  # the node is stopped whatever stopping the others raised (a second Ctrl-C)
            stop_node_process(process)
    if flow_ended:
        coverage = quote_coverage(home, flow_started, flow_ended, report.flow.drops)
        report.liquidity = {name: coverage[name] | report.liquidity.get(name, {})
                            for name in LIQUIDITY}  # fmt: skip
    return report


def _await_quotes(admin: AdminClient, on_note: Callable[[str], None]) -> None:
    """Until both liquidity markets have a bid and an ask (their instances quote), or
    `QUOTES_WAIT_S`: the flow starts against a quoted book."""
    markets = {market for _, market in LIQUIDITY.values()}
    deadline = time.monotonic() + QUOTES_WAIT_S
    while time.monotonic() < deadline:
        try:
            rows = admin.call("markets")
        except ClientError:
            rows = []
        quoted = {row["market"] for row in rows if row["best_bid"] and row["best_ask"]}
        if markets <= quoted:
            return
        waiting = ", ".join(sorted(markets - quoted))
        on_note(f"waiting for the liquidity instances' first quotes in {waiting}")
        time.sleep(0.5)
    on_note(f"the liquidity instances did not quote within {QUOTES_WAIT_S:g} s; the flow starts")


def _instances(status: dict[str, Any]) -> dict[str, dict]:
    """Each liquidity instance's last state from the node's `status`."""
    liquidity = status.get("liquidity")
    rows = liquidity.get("instances", []) if isinstance(liquidity, dict) else []
    keys = ("strategy", "state", "halted", "fills", "position_lots", "realized")
    return {row["name"]: {key: row.get(key) for key in keys} for row in rows}


def _observe(
    admin: AdminClient,
    report: DemoReport,
    advice: dict,
    flow: FlowProcess,
    duration_s: float,
    stop: threading.Event,
    on_second: Callable[[float, dict], None] | None = None,
    on_note: Callable[[str], None] = lambda line: None,
) -> None:
    """Once a second: the flow's report (`on_note` hears each steering step), the peak rate
    and every piece of scaling advice, until the flow is done and `duration_s` has passed, or
    `stop`."""
    started = time.monotonic()
    while not stop.wait(1) and (flow.running or time.monotonic() - started < duration_s):
        steps_before = report.steered
        report.take(flow.read())
        for step in report.steered:
            if step not in steps_before:
                on_note(_step_line(step))
        try:
            metrics = _counters(admin)
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


def _step_line(step: SteeringStep) -> str:
    return (f"steady rate {step.rate:,.0f} orders/s: the matching thread was {step.busy:.0%} "
            f"busy at {step.orders_per_s:,.0f} orders/s")  # fmt: skip


def _counters(admin: AdminClient) -> dict:
    """The node's `metrics` counters and latest sample, without its history: the node
    answers from its matching thread, and an hour of samples asked every second would be
    that thread's work."""
    return admin.call("metrics", since=time.time())


def _count(report: DemoReport, metrics: dict) -> None:
    report.orders = metrics["commands"]
    report.trades = sum(metrics["trades"].values())

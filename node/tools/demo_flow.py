"""The demo's flow in a process of its own: the load peer, its piece generator, and the demo's
traders (tools/demo_traders.py: the wash ring, the liquidity takers, the deed dealer).

Generating orders and sending them is steady CPU work; in the demo's process it would compete
with the dashboard's layout and drawing for one interpreter lock, and panel switches would act
late. So the demo starts this module as a child (through `server/supervisor.py`: it dies with
the demo, whatever the timing), which trades on the demo's node and reports back, once a
second and when it ends, what it has done: pieces and orders sent, the traders' trades, when
the drops ran, and the load peer's acknowledgement times, outside the drop and during it
(cumulative histograms, so the last report received is the whole story), and how it steered
its rate: a calibrated flow's pieces are sized from the node's own busy share, read every few
seconds over the admin socket (tools/calibration.py). Reports go over a ZeroMQ ipc socket in a
private temporary folder; the child's keys (the operator's among them) are read from the
demo's home.

    python -m marketnode.node.server.supervisor PID SIGNAL marketnode.node.tools.demo_flow \
        HOME ENDPOINT STEADY DROP MEASURED ROUND_S ROUNDS

SIGTERM ends the flow: what is in flight is awaited (as the load generator drains), the traders
stop, a last report says `done`. A flow that fails says why in that report.
"""

from __future__ import annotations

import itertools
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import zmq

from ..client import AdminClient, ClientError, address_of_home
from ..home.keys import OPERATOR, PEERS_FOLDER, load_key_pair
from ..home.layout import Home
from ..ops.metrics import Histogram
from ..server.supervisor import Supervisor
from .calibration import STEER_S, DemoRates, Steerer, SteeringStep
from .demo_traders import RING_MARKET, deed_dealer, liquidity_takers, ring
from .flow import generate_flow
from .load import DRAIN_S, LoadProfile, run_load

DROP_S = 10.0
PIECE_S = 5.0
PHASES = ("steady", "drop")
REPORT_S = 1.0
STOP_MARGIN_S = 5.0
"""Beyond the load generator's drain, for the child to stop its ring and say it is done."""
LAST_REPORT_S = 2.0
"""How long the demo waits, once the child has ended, for its last report to arrive."""
LAST_REPORT_LINGER_MS = 2000


class Piece(NamedTuple):
    """A stretch of the flow at one rate."""

    seconds: float
    rate: float
    in_drop: bool


class HistogramState(msgspec.Struct, array_like=True):
    """A `Histogram` on the wire: its non-empty buckets and its totals."""

    buckets: dict[int, int]
    count: int
    total: int
    largest: int

    @classmethod
    def of(cls, histogram: Histogram) -> HistogramState:
        buckets = {index: count for index, count in enumerate(histogram.counts) if count}
        return cls(buckets, histogram.count, histogram.total, histogram.largest)

    def histogram(self) -> Histogram:
        histogram = Histogram()
        for index, count in self.buckets.items():
            histogram.counts[index] = count
        histogram.count, histogram.total, histogram.largest = self.count, self.total, self.largest
        return histogram


class FlowProgress(msgspec.Struct):
    """What the flow has done so far (every figure from its start)."""

    pieces: int = 0
    orders_sent: int = 0
    ring_trades: int = 0
    liquidity_trades: int = 0
    """The liquidity takers' trades with the pool and the maker."""
    signed_trades: int = 0
    """DEED-USDC's trades, both orders signed."""
    drops: list[tuple[float, float]] = []
    """When each drop ran, from its start to its last order's (epoch seconds)."""
    ack_us: dict[str, HistogramState] = {}
    """Each order's time from its message's send to the node's answer, by phase."""
    rate: float = 0.0
    """The steady rate now (steered, or as given)."""
    steered: list[SteeringStep] = []
    """The latest steering steps (none when the rate was given)."""
    done: bool = False
    error: str = ""
    """Why the flow stopped before it was told to ("" when it did not)."""

    def ack_histograms(self) -> dict[str, Histogram]:
        return {phase: self.ack_us[phase].histogram() for phase in PHASES if phase in self.ack_us}


_decode_progress = msgspec.msgpack.Decoder(FlowProgress).decode


def round_plan(round_s: float, rates: DemoRates) -> list[Piece]:
    """One round of the flow in pieces at the starting rates: steady, the drop a third of the
    way in (ten seconds, less in a short round), steady again. Pieces are at most
    `PIECE_S` long, so what a piece sends is generated in a fraction of a second, and a
    steered rate takes effect within two of them."""
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


# -- in the demo -------------------------------------------------------------------------------


class FlowProcess:
    """The flow's child process as the demo sees it: `start`, `read` its latest report (from
    any thread), `stop` it and have its last one."""

    def __init__(self, home: Home, rates: DemoRates, round_s: float, rounds: int | None) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="mnode-flow-")
        endpoint = f"ipc://{self._folder.name}/reports"
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PULL)
        self._socket.bind(endpoint)
        self._lock = threading.Lock()
        self._stopped = False
        self.latest = FlowProgress()
        arguments = [str(home.path.resolve()), endpoint, repr(rates.steady), repr(rates.drop),
                     repr(rates.measured or 0.0), repr(round_s), str(rounds or 0)]  # fmt: skip
        self._supervisor = Supervisor("demo flow", __name__, arguments)

    def start(self) -> None:
        self._supervisor.start()

    @property
    def pid(self) -> int | None:
        return self._supervisor.pid

    @property
    def running(self) -> bool:
        return self._supervisor.running

    def read(self, wait_ms: int = 0) -> FlowProgress:
        """The latest report, after taking every one that has come (waiting up to `wait_ms`
        for the first)."""
        with self._lock:
            if self._socket.closed:
                return self.latest
            while self._socket.poll(wait_ms):
                self.latest = _decode_progress(self._socket.recv())
                wait_ms = 0
            return self.latest

    def stop(self) -> FlowProgress:
        """Stop the flow (what is in flight still answered), and return its last report; once
        stopped, the same again."""
        if self._stopped:
            return self.latest
        self._stopped = True
        self._supervisor.stop(within_s=DRAIN_S + STOP_MARGIN_S)
        waited_ms = 0
        while not self.read().done and waited_ms < LAST_REPORT_S * 1000:
            self.read(wait_ms=100)
            waited_ms += 100
        with self._lock:
            self._socket.close(linger=0)
            self._context.term()
        self._folder.cleanup()
        return self.latest

    def ended_badly(self) -> str:
        """Why the flow stopped early, in a line ("" when it did not)."""
        if self.latest.error:
            return self.latest.error
        process = self._supervisor.process
        code = process.returncode if process is not None else None
        if code not in (None, 0, -signal.SIGTERM) and not self.latest.done:
            return f"its process ended with code {code}"
        return ""


# -- in the child ------------------------------------------------------------------------------


class _FlowState:
    """What the flow's threads have done, taken by the reporter under a lock."""

    def __init__(self, steerer: Steerer) -> None:
        self.lock = threading.Lock()
        self.progress = FlowProgress()
        self.ack_us = {phase: Histogram() for phase in PHASES}
        self.steerer = steerer

    def piece_sent(self, piece: Piece, sent: int, latencies_ms: list[float]) -> None:
        with self.lock:
            record = self.ack_us["drop" if piece.in_drop else "steady"].record
            for latency_ms in latencies_ms:
                record(int(latency_ms * 1000))
            self.progress.pieces += 1
            self.progress.orders_sent += sent

    def drop_ran(self, start: float, seconds: float) -> None:
        with self.lock:
            self.progress.drops = [*self.progress.drops, (start, start + seconds)]

    def counter(self, figure: str) -> Callable[[int], None]:
        """Adds a trader's trades to `figure` of the progress."""

        def count(trades: int) -> None:
            with self.lock:
                setattr(self.progress, figure, getattr(self.progress, figure) + trades)

        return count

    def failed(self, why: str) -> None:
        with self.lock:
            self.progress.error = self.progress.error or why

    def report(self, done: bool) -> bytes:
        with self.lock:
            self.progress.ack_us = {p: HistogramState.of(h) for p, h in self.ack_us.items()}
            self.progress.rate = self.steerer.rate_of(in_drop=False)
            self.progress.steered = self.steerer.steps
            self.progress.done = done
            return msgspec.msgpack.encode(self.progress)


def main(arguments: list[str]) -> int:
    """Trade as the demo asked until its rounds are over or SIGTERM; 1 when the flow failed."""
    home_path, endpoint, steady, drop, measured, round_s, rounds = arguments
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the demo's Ctrl-C: the demo stops us
    home = Home(Path(home_path))
    config = home.config()
    address = address_of_home(home, config)
    keys = home.keys_path(config) / PEERS_FOLDER
    tick = Decimal(next(s.tick_size for s in config.markets if s.symbol == RING_MARKET))
    rates = DemoRates(float(steady), float(drop), float(measured) or None)
    plan = round_plan(float(round_s), rates)
    state = _FlowState(Steerer(rates, started=time.time()))

    def thread(task: Callable[..., Any], peer: str, *arguments: Any) -> threading.Thread:
        key = load_key_pair(keys / f"{peer}.key_secret")
        return threading.Thread(target=_guarded, args=(state, stop, task, address, key,
                                                       *arguments), daemon=True)  # fmt: skip

    loader = thread(_flow, "load", plan, int(rounds) or None, stop, state)
    traders = [
        thread(ring, "ring", tick, stop, state.counter("ring_trades")),
        thread(liquidity_takers, "takers", stop, lambda: state.steerer.in_drop(time.time()),
               state.counter("liquidity_trades")),
        thread(deed_dealer, "dealer", config, stop, state.counter("signed_trades")),
    ]  # fmt: skip
    context = zmq.Context()
    reports = context.socket(zmq.PUSH)
    reports.connect(endpoint)
    operator = load_key_pair(home.keys_path(config) / f"{OPERATOR}.key_secret")
    steer = (state, stop, _steer, address, operator, stop, state.steerer)
    steering = threading.Thread(target=_guarded, args=steer, daemon=True)
    try:
        loader.start()
        for trader in traders:
            trader.start()
        if state.steerer.steering is not None:  # --rate: the rate given holds
            steering.start()
        while loader.is_alive():
            loader.join(REPORT_S)
            reports.send(state.report(done=False))
        stop.set()
        for trader in traders:
            trader.join()
        reports.send(state.report(done=True))
    finally:
        reports.close(linger=LAST_REPORT_LINGER_MS)
        context.term()
    return 1 if state.progress.error else 0


def _guarded(
    state: _FlowState, stop: threading.Event, task: Callable[..., Any], *arguments: Any
) -> None:
    """Run `task`; once the flow is stopping, a node gone away is no error; any other failure
    is reported and stops the flow."""
    try:
        task(*arguments)
    except ClientError as error:
        if not stop.is_set():
            state.failed(f"the node stopped answering: {error}")
    except Exception as error:  # whatever it is, the demo says it in a line, not a traceback
        state.failed(f"{type(error).__name__}: {error}")
    finally:
        stop.set()


def _flow(
    address: Any,
    key: Any,
    plan: list[Piece],
    rounds: int | None,
    stop: threading.Event,
    state: _FlowState,
) -> None:
    """Offer the seeded flow piece by piece of `plan`, `rounds` times (None: until `stop`),
    so trading starts at once and goes on without a pause; each piece at the rate steered
    when it is generated (while the piece before it is sent)."""
    planned = itertools.chain.from_iterable(
        itertools.repeat(plan) if rounds is None else itertools.repeat(plan, rounds)
    )
    steerer = state.steerer
    pieces = (piece._replace(rate=steerer.rate_of(piece.in_drop)) for piece in planned)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-flow") as generator:
        for piece, commands in prepared(pieces, generator):
            if stop.is_set():
                return
            if piece.in_drop:
                started = time.time()
                steerer.drop_runs(started, piece.seconds)
                state.drop_ran(started, piece.seconds)
            profile = LoadProfile(rate=piece.rate, duration_s=piece.seconds, batch=10)
            result = run_load(address, key, commands, profile, stop=stop)
            state.piece_sent(piece, result.sent, result.latencies_ms)


def _steer(address: Any, key: Any, stop: threading.Event, steerer: Steerer) -> None:
    """Every `STEER_S`, hand the steerer the node's samples since the last ones seen (a node
    too busy to answer in time is asked again the next time: the answer to an earlier
    question is never taken for a later one's)."""
    since = steerer.started
    with AdminClient(address, key, timeout_s=STEER_S) as admin:
        while not stop.wait(STEER_S):
            try:
                samples = admin.call("metrics", since=since).get("history") or []
            except ClientError:
                continue
            if samples:
                since = samples[-1]["time"]
                steerer.adjust(samples)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

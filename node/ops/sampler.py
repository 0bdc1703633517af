"""The metrics sampler: once a second, off the matching thread, turn the loop's counters into
rates and percentiles, ask psutil about the process and the host, and keep the last hour.

Each sample is a plain dict (what the admin `metrics` request returns, the dashboard plots and
the scaling policies read):

- `time` (epoch seconds), `interval_s`;
- `orders_per_s`, `trades_per_s`, `rejects_per_s` (by reason), and per market `orders_per_s`,
  `trades_per_s`, `volume_per_s` (decimal text, in the market's base unit);
- `ack_ms`, `commit_ms`, `batch_commands`: p50 / p90 / p99 / max / count over the second;
- `matching_busy`: share of the second the matching thread spent serving batches (at most 1:
  past saturation it says nothing of how far past); `backlog`: share of its batches that
  stopped at their budget with more waiting;
- the offered load, what the scaling policies size from: `capacity_per_s` (commands the
  matching thread serves per second of work, from the last second with enough work to tell),
  `waiting_commands` (commands received but not yet read, when the node's intake counts them,
  else None), `arrivals_per_s` (commands served plus the growth of those waiting) and
  `offered_load` (arrivals over capacity: the busy share serving them all would take, above 1
  past saturation; None until the capacity is known);
- `analytics_lag_s`, `analytics_lag_commands` (None when analytics is off or has not answered);
- `lmdb_used_bytes`, `lmdb_map_bytes`, `duckdb_bytes`;
- `process`: CPU percent in all and per thread (matching, metrics, zmq and others), the
  analytics process's CPU, RSS, open files, read and write bytes/s;
- `host`: CPU percent per core, memory used percent and available bytes, disk free bytes of the
  home, disk read/write bytes/s, network sent/received bytes/s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import psutil
import zmq

from .metrics import Histogram, LoopMetrics

log = logging.getLogger(__name__)

HISTORY_S = 3600
"""Samples kept at one a second: the last hour, for the dashboard and the scaling policies."""

Sample = dict[str, Any]
MIN_WORK_S = 0.05
"""The least work in a second (50 ms) that measures the matching thread's capacity."""


class Rates:
    """Per-second rates of monotonically growing counters, from one reading to the next."""

    def __init__(self) -> None:
        self.previous: dict[str, float] = {}

    def of(self, name: str, value: float, seconds: float) -> float:
        before = self.previous.get(name, value)
        self.previous[name] = value
        return round((value - before) / seconds, 3) if seconds > 0 else 0.0


class MetricsSampler(threading.Thread):
    """Samples the node every `interval_s` seconds into `history`; each new sample is handed to
    the `listeners` (the minute rollup, the scaling policies) in this thread."""

    def __init__(
        self,
        loop: LoopMetrics,
        books: Callable[[], dict],
        home: Path,
        lmdb_env: Any,
        duckdb_file: Path | None,
        analytics_lag: Callable[[], dict | None],
        analytics_pid: Callable[[], int | None],
        matching_thread: Callable[[], int | None],
        interval_s: float = 1.0,
        inbox: tuple[zmq.Context, str] | None = None,
        waiting: Callable[[], int | None] | None = None,
    ) -> None:
        super().__init__(name="metrics", daemon=True)
        self.inbox = inbox
        """(context, endpoint) of the node loop's inbox, for what only the loop may send."""
        self._push: zmq.Socket | None = None
        self.loop = loop
        self.books = books
        self.home = home
        self.lmdb_env = lmdb_env
        self.page_size = lmdb_env.stat()["psize"]
        self.duckdb_file = duckdb_file
        self.analytics_lag = analytics_lag
        self.analytics_pid = analytics_pid
        self.matching_thread = matching_thread
        self.waiting = waiting
        """Commands received but not yet read by the loop (None: not counted)."""
        self.capacity_per_s: float | None = None
        self.waiting_before: int | None = None
        self.interval_s = interval_s
        self.history: deque[Sample] = deque(maxlen=HISTORY_S)
        self.totals = {"ack": Histogram(), "commit": Histogram(), "batch": Histogram()}
        """Histograms since the start, merged from the per-second ones."""
        self.listeners: list[Callable[[Sample], None]] = []
        self.stopping = threading.Event()
        self.rates = Rates()
        self.process = psutil.Process()
        self.process.cpu_percent()  # the first reading only starts psutil's interval
        psutil.cpu_percent(percpu=True)
        self.last = time.monotonic()
        self.sample()  # the first readings of every counter: rates start from here

    def stop(self) -> None:
        self.stopping.set()

    def post(self, kind: str, **fields: Any) -> None:
        """Hand the node loop a message to send (from this thread: listeners run here)."""
        if self._push is not None:
            self._push.send(msgspec.msgpack.encode({"kind": kind, **fields}), zmq.NOBLOCK)

    def run(self) -> None:
        if self.inbox is not None:
            context, endpoint = self.inbox
            self._push = context.socket(zmq.PUSH)
            self._push.linger = 0
            self._push.connect(endpoint)
        try:
            self._sample_until_stopped()
        finally:
            if self._push is not None:
                self._push.close()

    def _sample_until_stopped(self) -> None:
        due = time.monotonic() + self.interval_s
        while not self.stopping.wait(max(0.0, due - time.monotonic())):
            due += self.interval_s
            try:
                sample = self.sample()
            except Exception:  # a failed reading must not end the sampling
                log.exception("metrics sample failed")
                continue
            self.history.append(sample)
            for listener in self.listeners:
                try:
                    listener(sample)
                except Exception:
                    log.exception("metrics listener failed")

    def sample(self) -> Sample:
        now = time.monotonic()
        seconds = now - self.last
        self.last = now
        loop = self.loop
        rate = self.rates.of
        histograms = self._swap_histograms()
        batches = rate("batches", loop.batches, seconds) * seconds
        saturated = rate("saturated", loop.saturated_batches, seconds) * seconds
        markets = {}
        books = self.books()
        for symbol in sorted(books):
            lot = books[symbol].market.lot
            volume_lots = rate(f"volume.{symbol}", loop.volume_lots.get(symbol, 0), seconds)
            markets[symbol] = {
                "orders_per_s": rate(f"orders.{symbol}", loop.orders.get(symbol, 0), seconds),
                "trades_per_s": rate(f"trades.{symbol}", loop.trades.get(symbol, 0), seconds),
                "volume_per_s": lot.text_of(round(volume_lots)),
            }
        lag = self.analytics_lag() or {}
        processed = rate("commands", loop.commands, seconds)
        busy_s = rate("busy_ns", loop.busy_ns, seconds) / 1e9 * seconds
        return {
            "time": round(time.time(), 3),
            "interval_s": round(seconds, 3),
            "orders_per_s": processed,
            "trades_per_s": round(sum(m["trades_per_s"] for m in markets.values()), 3),
            "rejects_per_s": {
                reason: rate(f"rejects.{reason}", count, seconds)
                for reason, count in sorted(loop.rejects.items())
            },
            "markets": markets,
            "ack_ms": histograms["ack"].summary(1000),
            "commit_ms": histograms["commit"].summary(1000),
            "batch_commands": histograms["batch"].summary(),
            "matching_busy": round(min(1.0, busy_s / seconds), 4) if seconds > 0 else 0.0,
            # the two counters are read a moment apart while the loop runs: at most all
            "backlog": round(min(1.0, saturated / batches), 4) if batches else 0.0,
            **self._offered(processed, busy_s, seconds),
            "analytics_lag_s": lag.get("lag_s"),
            "analytics_lag_commands": lag.get("lag_commands"),
            **self._store_sizes(),
            "process": self._process(seconds),
            "host": self._host(seconds),
        }

    def _offered(self, processed: float, busy_s: float, seconds: float) -> dict[str, Any]:
        """The offered load: arrivals against the matching thread's capacity. The capacity is
        what it served per second of work, from a second with at least `MIN_WORK_S` of it (a
        few commands are no measure of the rate); arrivals are what it served plus what was
        left waiting on top of the second before."""
        if busy_s >= MIN_WORK_S and processed > 0:
            self.capacity_per_s = processed * seconds / busy_s
        waiting = self.waiting() if self.waiting is not None else None
        arrivals = processed
        if waiting is not None and self.waiting_before is not None and seconds > 0:
            arrivals = max(0.0, processed + (waiting - self.waiting_before) / seconds)
        self.waiting_before = waiting
        capacity = self.capacity_per_s
        return {
            "capacity_per_s": None if capacity is None else round(capacity, 1),
            "waiting_commands": waiting,
            "arrivals_per_s": round(arrivals, 3),
            "offered_load": None if capacity is None else round(arrivals / capacity, 4),
        }

    def _swap_histograms(self) -> dict[str, Histogram]:
        """This second's histograms; the loop records into fresh ones from now on."""
        loop = self.loop
        current = {
            "ack": loop.ack_latency_us,
            "commit": loop.commit_us,
            "batch": loop.batch_commands,
        }
        loop.ack_latency_us = Histogram()
        loop.commit_us = Histogram()
        loop.batch_commands = Histogram()
        for name, histogram in current.items():
            self.totals[name].merge(histogram)
        return current

    def _store_sizes(self) -> dict[str, int | None]:
        info = self.lmdb_env.info()
        used = (info["last_pgno"] + 1) * self.page_size
        duckdb_bytes = None
        if self.duckdb_file is not None:
            duckdb_bytes = sum(
                path.stat().st_size
                for path in (
                    self.duckdb_file,
                    self.duckdb_file.with_name(self.duckdb_file.name + ".wal"),
                )
                if path.exists()
            )
        return {
            "lmdb_used_bytes": used,
            "lmdb_map_bytes": info["map_size"],
            "duckdb_bytes": duckdb_bytes,
        }

    def _process(self, seconds: float) -> dict[str, Any]:
        process = self.process
        rate = self.rates.of
        names = self._thread_names()
        per_thread: dict[str, float] = {}
        for thread in process.threads():
            name = names.get(thread.id, "zmq and other")
            busy = rate(f"thread.{thread.id}", thread.user_time + thread.system_time, seconds)
            per_thread[name] = round(per_thread.get(name, 0.0) + busy * 100, 1)
        with process.oneshot():
            memory = process.memory_info()
            files = process.num_fds()
            io = _io_counters(process)
            cpu = process.cpu_percent()
        analytics_cpu = None
        pid = self.analytics_pid()
        if pid is not None:
            try:
                times = psutil.Process(pid).cpu_times()
                analytics_cpu = round(
                    rate("analytics_cpu", times.user + times.system, seconds) * 100, 1
                )
            except psutil.Error:
                pass
        return {
            "cpu_percent": cpu,
            "threads_cpu_percent": per_thread,
            "analytics_cpu_percent": analytics_cpu,
            "rss_bytes": memory.rss,
            "open_files": files,
            "read_bytes_per_s": rate("proc.read", io[0], seconds) if io else None,
            "write_bytes_per_s": rate("proc.write", io[1], seconds) if io else None,
        }

    def _thread_names(self) -> dict[int, str]:
        """Native thread ids of the threads the node names: the matching thread (the one
        serving the loop) and this one; the rest are ZeroMQ's and helpers."""
        names = {self.native_id: "metrics"} if self.native_id is not None else {}
        matching = self.matching_thread()
        if matching is not None:
            names[matching] = "matching"
        return names

    def _host(self, seconds: float) -> dict[str, Any]:
        rate = self.rates.of
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(str(self.home))
        disk_io = psutil.disk_io_counters()
        net = psutil.net_io_counters()
        return {
            "cpu_percent": psutil.cpu_percent(percpu=True),
            "memory_percent": memory.percent,
            "memory_available_bytes": memory.available,
            "disk_free_bytes": disk.free,
            "disk_total_bytes": disk.total,
            "disk_read_bytes_per_s": rate("disk.read", disk_io.read_bytes, seconds)
            if disk_io
            else None,
            "disk_write_bytes_per_s": rate("disk.write", disk_io.write_bytes, seconds)
            if disk_io
            else None,
            "net_sent_bytes_per_s": rate("net.sent", net.bytes_sent, seconds),
            "net_recv_bytes_per_s": rate("net.recv", net.bytes_recv, seconds),
        }


def _io_counters(process: psutil.Process) -> tuple[int, int] | None:
    """(bytes read, bytes written) by the process; None where the OS does not say."""
    try:
        io = process.io_counters()
    except (psutil.Error, AttributeError):
        return None
    return io.read_bytes, io.write_bytes

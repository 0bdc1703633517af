"""The node's metrics as a Prometheus text endpoint (`[metrics] prometheus = "HOST:PORT"`),
since operators already run Prometheus and Grafana.

A custom collector reads, at each scrape, the loop's counters and the sampler's latest sample;
nothing is computed on the matching thread for it. Latency histograms are exported with fixed
bucket boundaries, read from the log-bucketed histograms since the start.

The endpoint has no authentication (bind it to loopback, as the example does, or to a network
only Prometheus reaches). It runs in the node's process, so it must never take what the node
needs: one thread serves every connection from a selector, at most MAX_CONNECTIONS at once (a
new one closes the oldest still sending its request, or is closed itself when every slot is
answering), and a client that does not send its request head within REQUEST_TIMEOUT_S, or
take its answer within WRITE_TIMEOUT_S, is closed.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .metrics import Histogram, bucket_upper
from .sampler import MetricsSampler

MAX_CONNECTIONS = 16
"""Connections held at once; a Prometheus server opens one per scrape."""
REQUEST_TIMEOUT_S = 5.0
"""A client's whole request head must arrive within this of its connecting."""
WRITE_TIMEOUT_S = 10.0
"""The answer must be taken (and the client's close seen) within this of its start."""
MAX_HEAD_BYTES = 8192
"""A longer request head gets 431 (a GET for /metrics needs well under 1 KiB)."""
LISTEN_BACKLOG = 64
ACCEPTS_PER_TURN = 64
"""Connections accepted before the open ones are served again (a storm cannot starve them)."""
RECEIVE_BYTES = 4096
STOP_TIMEOUT_S = 5.0

log = logging.getLogger("marketnode.node")

LATENCY_BOUNDS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


def seconds_buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """Cumulative counts at LATENCY_BOUNDS_S (and +Inf) of a histogram of microseconds."""
    buckets = []
    for bound in LATENCY_BOUNDS_S:
        limit = bound * 1_000_000
        below = sum(c for index, c in enumerate(histogram.counts) if bucket_upper(index) <= limit)
        buckets.append((repr(bound), below))
    buckets.append(("+Inf", histogram.count))
    return buckets


class NodeCollector:
    """Yields the node's metric families at each scrape."""

    def __init__(self, sampler: MetricsSampler) -> None:
        self.sampler = sampler

    def collect(self) -> Iterator[Metric]:
        loop = self.sampler.loop
        yield _counter("marketnode_commands", "Commands received", loop.commands)
        yield _counter("marketnode_messages", "Peer messages served", loop.messages)
        yield _counter("marketnode_batches", "Batches committed", loop.batches)
        trades = CounterMetricFamily("marketnode_trades", "Trades by market", labels=["market"])
        for market, count in sorted(loop.trades.items()):
            trades.add_metric([market], count)
        yield trades
        rejects = CounterMetricFamily("marketnode_rejects", "Rejects by reason", labels=["reason"])
        for reason, count in sorted(loop.rejects.items()):
            rejects.add_metric([reason], count)
        yield rejects
        for key, name, text in (
            ("ack", "marketnode_ack_latency_seconds", "Receipt to reply, after the commit"),
            ("commit", "marketnode_commit_seconds", "One batch's LMDB write transaction"),
        ):
            histogram = self.sampler.totals[key]
            yield HistogramMetricFamily(
                name, text, buckets=seconds_buckets(histogram), sum_value=histogram.total / 1e6
            )
        latest = self.sampler.history[-1] if self.sampler.history else None
        if latest is not None:
            yield from _gauges(latest)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=value)


def _gauges(sample: dict[str, Any]) -> Iterator[Metric]:
    plain = {
        "marketnode_orders_per_second": ("Commands per second", sample["orders_per_s"]),
        "marketnode_matching_busy_ratio": (
            "Share of time the matching thread serves batches",
            sample["matching_busy"],
        ),
        "marketnode_backlog_ratio": ("Share of batches cut at their budget", sample["backlog"]),
        "marketnode_analytics_lag_seconds": ("Analytics store behind", sample["analytics_lag_s"]),
        "marketnode_lmdb_used_bytes": ("LMDB pages in use", sample["lmdb_used_bytes"]),
        "marketnode_lmdb_map_bytes": ("LMDB map size", sample["lmdb_map_bytes"]),
        "marketnode_duckdb_bytes": ("Analytics file size", sample["duckdb_bytes"]),
        "marketnode_process_cpu_percent": ("Node process CPU", sample["process"]["cpu_percent"]),
        "marketnode_process_rss_bytes": ("Node process RSS", sample["process"]["rss_bytes"]),
        "marketnode_disk_free_bytes": ("Free disk of the home", sample["host"]["disk_free_bytes"]),
    }
    for name, (text, value) in plain.items():
        if value is not None:
            yield GaugeMetricFamily(name, text, value=value)
    per_market = GaugeMetricFamily(
        "marketnode_market_trades_per_second", "Trades per second by market", labels=["market"]
    )
    for market, figures in sample["markets"].items():
        per_market.add_metric([market], figures["trades_per_s"])
    yield per_market


class Stage(enum.Enum):
    READING = "reading"  # the request head is arriving
    WRITING = "writing"  # the answer is leaving
    CLOSING = "closing"  # answered and shut for writing; waiting for the client to close


@dataclass
class Connection:
    sock: socket.socket
    deadline: float
    stage: Stage = Stage.READING
    received: bytearray = field(default_factory=bytearray)
    outgoing: memoryview = field(default_factory=lambda: memoryview(b""))


def http_answer(status: str, body: bytes = b"", content_type: str = "text/plain") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


TIMED_OUT = http_answer("408 Request Timeout", b"request head not received in time\n")


class PrometheusServer:
    """GET /metrics over HTTP/1.1, one request per connection, from one thread; the
    shutdown() and server_close() of a socketserver, so the node stops it as it did before."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.registry = registry
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(address)
            self.listener.listen(LISTEN_BACKLOG)
        except OSError:
            self.listener.close()
            raise
        self.listener.setblocking(False)
        self.server_address = self.listener.getsockname()
        self.selector = selectors.DefaultSelector()
        self.wake_reader, self.wake_writer = socket.socketpair()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wake_reader, selectors.EVENT_READ)
        self.connections: dict[socket.socket, Connection] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="prometheus", daemon=True)
        self.thread.start()

    def shutdown(self) -> None:
        """Stop serving (open connections are closed)."""
        self.stopping.set()
        self.wake_writer.send(b"x")
        self.thread.join(timeout=STOP_TIMEOUT_S)

    def server_close(self) -> None:
        for sock in (self.listener, self.wake_reader, self.wake_writer):
            sock.close()
        self.selector.close()

    # -- the serving thread --------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self.stopping.is_set():
                for key, _events in self.selector.select(self._wait_s()):
                    if key.fileobj is self.listener:
                        self._accept()
                    elif key.fileobj in self.connections:  # not closed earlier this turn
                        self._serve_connection(self.connections[key.fileobj])
                self._expire(time.monotonic())
        finally:
            for connection in list(self.connections.values()):
                self._close(connection)

    def _wait_s(self) -> float | None:
        if not self.connections:
            return None
        earliest = min(connection.deadline for connection in self.connections.values())
        return max(0.0, earliest - time.monotonic())

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, _address = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as error:  # out of file descriptors: the backlog waits
                log.warning("prometheus endpoint: cannot accept: %s", error.strerror)
                return
            if len(self.connections) >= MAX_CONNECTIONS and not self._make_room():
                sock.close()
                continue
            sock.setblocking(False)
            connection = Connection(sock, time.monotonic() + REQUEST_TIMEOUT_S)
            self.connections[sock] = connection
            self.selector.register(sock, selectors.EVENT_READ)

    def _make_room(self) -> bool:
        """Close the oldest connection not being answered; False when all are."""
        for connection in self.connections.values():
            if connection.stage is not Stage.WRITING:
                self._close(connection)
                return True
        return False

    def _serve_connection(self, connection: Connection) -> None:
        try:
            if connection.stage is Stage.WRITING:
                self._write(connection)
                return
            chunk = connection.sock.recv(RECEIVE_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(connection)
            return
        if not chunk:
            self._close(connection)
        elif connection.stage is Stage.READING:
            connection.received += chunk
            head, ended, _ = connection.received.partition(b"\r\n\r\n")
            if ended:
                self._answer(connection, self._response(bytes(head)))
            elif len(connection.received) > MAX_HEAD_BYTES:
                self._answer(connection, http_answer("431 Request Header Fields Too Large"))

    def _response(self, head: bytes) -> bytes:
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return http_answer("400 Bad Request")
        method, target, _version = parts
        if method != b"GET":
            return http_answer("405 Method Not Allowed")
        if target.split(b"?", 1)[0] not in (b"/metrics", b"/"):
            return http_answer("404 Not Found")
        try:
            body = generate_latest(self.registry)
        except Exception as error:  # a collector's bug must not end the endpoint
            log.error("prometheus endpoint: collecting failed: %r", error)
            return http_answer("500 Internal Server Error")
        return http_answer("200 OK", body, CONTENT_TYPE_LATEST)

    def _answer(self, connection: Connection, response: bytes) -> None:
        connection.stage = Stage.WRITING
        connection.outgoing = memoryview(response)
        connection.deadline = time.monotonic() + WRITE_TIMEOUT_S
        self.selector.modify(connection.sock, selectors.EVENT_WRITE)
        self._write(connection)

    def _write(self, connection: Connection) -> None:
        try:
            sent = connection.sock.send(connection.outgoing)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(connection)
            return
        connection.outgoing = connection.outgoing[sent:]
        if not connection.outgoing:
            # shut for writing, then read until the client closes: closing at once with its
            # unread bytes would reset the connection and could lose the answer
            connection.stage = Stage.CLOSING
            try:
                connection.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._close(connection)
                return
            self.selector.modify(connection.sock, selectors.EVENT_READ)

    def _expire(self, now: float) -> None:
        for connection in [c for c in self.connections.values() if c.deadline <= now]:
            if connection.stage is Stage.READING:
                with contextlib.suppress(OSError):
                    connection.sock.send(TIMED_OUT)
            self._close(connection)

    def _close(self, connection: Connection) -> None:
        del self.connections[connection.sock]
        self.selector.unregister(connection.sock)
        connection.sock.close()


def serve_prometheus(address: str, sampler: MetricsSampler) -> PrometheusServer:
    """Start the endpoint on HOST:PORT in a thread of its own; returns its server."""
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry()
    registry.register(NodeCollector(sampler))
    return PrometheusServer(host, int(port), registry)

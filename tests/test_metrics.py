"""The node's metrics: log-bucketed histograms, the per-second sampler on a live node, minute
rollups into the analytics store, and the Prometheus endpoint."""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import socket
import time
import urllib.request

import pytest

from marketnode.node.analytics.service import AnalyticsService
from marketnode.node.client import Client, address_of_home
from marketnode.node.home.layout import Home
from marketnode.node.ops.metrics import SUB_BUCKETS, Histogram, bucket_upper
from marketnode.node.ops.prometheus import MAX_CONNECTIONS, MAX_HEAD_BYTES
from marketnode.node.ops.rollup import MinuteRollup
from marketnode.node.store.lmdb_store import Store
from marketnode.node.tools.e2e import prepare_home, start_node_process, stop_node_process


def test_percentiles_are_within_a_bucket_of_the_truth():
    rng = random.Random(3)
    values = [int(rng.lognormvariate(6, 1.5)) for _ in range(20_000)]
    histogram = Histogram()
    for value in values:
        histogram.record(value)
    values.sort()
    for share in (0.5, 0.9, 0.99):
        truth = values[round(share * len(values)) - 1]
        assert truth <= histogram.percentile(share) <= truth * (1 + 1 / SUB_BUCKETS) + 1
    assert histogram.largest == values[-1] and histogram.count == len(values)
    assert histogram.summary(1000)["max"] == round(values[-1] / 1000, 3)


def test_histograms_merge_by_adding_counts():
    first, second, both = Histogram(), Histogram(), Histogram()
    for value in range(0, 5000, 7):
        (first if value % 2 else second).record(value)
        both.record(value)
    first.merge(second)
    assert first.counts == both.counts and first.total == both.total
    assert first.percentile(0.99) == both.percentile(0.99)


def test_every_value_lands_in_the_bucket_that_holds_it():
    for value in [*range(300), 10**6, 2**40 + 12345]:
        histogram = Histogram()
        histogram.record(value)
        (index,) = [i for i, count in enumerate(histogram.counts) if count]
        assert (bucket_upper(index - 1) if index else -1) < value <= bucket_upper(index)


def sample_at(time_s: float, orders: float) -> dict:
    """A sample with the fields the rollup reads."""
    zero = {"p99": 0.0}
    return {
        "time": time_s, "orders_per_s": orders, "trades_per_s": orders / 2, "ack_ms": zero,
        "commit_ms": zero, "matching_busy": 0.1, "backlog": 0.0, "analytics_lag_s": None,
        "lmdb_used_bytes": 4096, "duckdb_bytes": None,
        "process": {"cpu_percent": 5.0, "rss_bytes": 1000},
        "host": {"memory_percent": 10.0, "disk_free_bytes": 10**9},
        "markets": {
            "PUNK-ETH": {"orders_per_s": orders, "trades_per_s": 1.0, "volume_per_s": "2.5"},
        },
    }  # fmt: skip


def test_a_minute_rollup_is_posted_when_the_next_minute_begins(tmp_path):
    posted = []
    rollup = MinuteRollup(lambda kind, **fields: posted.append((kind, fields)))
    for second in range(60):
        rollup.add(sample_at(1_800_000_000 + second, orders=second))
    assert posted == []
    rollup.add(sample_at(1_800_000_060, orders=5))
    ((kind, fields),) = posted
    rows = {(row[1], row[2]): row for row in fields["rows"]}
    assert kind == "rollup"
    assert rows["orders_per_s", ""] == [1_800_000_000, "orders_per_s", "", 29.5, 59.0, 60]
    assert rows["volume_per_s", "PUNK-ETH"][3:] == [2.5, 2.5, 60]
    assert ("analytics_lag_s", "") not in rows  # not measured: no row, not a zero

    # the analytics process keeps them
    home = Home.create(tmp_path / "home")
    Store(home.store_path(home.config())).close()
    service = AnalyticsService(home, token=b"t")
    try:
        assert service.store_metrics(fields["rows"]) == {"ok": True, "result": len(rows)}
        stored = service.analytics.connection.execute(
            "SELECT epoch(time), mean, max FROM metrics "
            "WHERE metric = 'orders_per_s' AND market = ''"
        ).fetchall()
        assert stored == [(1_800_000_000, 29.5, 59.0)]
        assert service.store_metrics([["not a time"]])["ok"] is False
    finally:
        service.context.destroy(linger=0)
        service.analytics.close()
        service.store.close()


def wait_for(condition, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_live_node_samples_itself_every_second(running_node):
    alice, bob = running_node.client("alice"), running_node.client("bob")
    for n in range(50):  # alice sells, bob buys from her
        client, owner, side = (bob, "0xb0b", "buy") if n % 2 else (alice, "0xa11ce", "sell")
        client.submit(
            [{"op": "new", "market": "PUNK-ETH", "id": n + 1, "owner": owner,
              "side": side, "price": "100", "qty": "1"}]
        )  # fmt: skip
    alice.submit([{"op": "new", "market": "NOPE", "id": 99, "owner": "0xa11ce", "side": "buy",
                    "price": "1", "qty": "1"}])  # fmt: skip
    admin = running_node.admin()
    busy = wait_for(lambda: [s for s in admin.call("metrics")["history"] if s["orders_per_s"] > 0])
    sample = busy[0]
    assert sample["markets"]["PUNK-ETH"]["orders_per_s"] > 0
    assert "NOPE" not in sample["markets"]
    assert 0 < sample["matching_busy"] <= 1
    assert sample["ack_ms"]["count"] > 0 and sample["ack_ms"]["p99"] >= sample["ack_ms"]["p50"]
    assert sample["lmdb_used_bytes"] > 0 and sample["lmdb_map_bytes"] >= sample["lmdb_used_bytes"]
    assert {"matching", "metrics"} <= set(sample["process"]["threads_cpu_percent"])
    assert len(sample["host"]["cpu_percent"]) >= 1 and sample["host"]["disk_free_bytes"] > 0
    # the intake watch counts what waits unread, so the offered load is the node's measure
    assert wait_for(
        lambda: [s for s in admin.call("metrics")["history"] if s["waiting_commands"] is not None]
    )
    metrics = admin.call("metrics")
    assert metrics["commands"] == 51 and metrics["trades"] == {"PUNK-ETH": 25}
    assert metrics["rejects"] == {"unknown_market": 1}
    assert metrics["since_start"]["ack_ms"]["count"] == 51
    latest = metrics["latest"]["time"]
    assert admin.call("metrics", since=latest)["history"] == []


def test_metrics_off_leaves_only_the_counters(node_factory):
    node = node_factory("[metrics]\nenabled = false\n", peers={"alice": ("0xa11ce",)})
    metrics = node.admin().call("metrics")
    assert metrics["sampling"].startswith("off") and "history" not in metrics
    assert node.node.instruments.sampler is None


def test_the_prometheus_endpoint_serves_the_text_format(node_factory):
    node = node_factory('[metrics]\nprometheus = "127.0.0.1:0"\n', peers={"alice": ("0xa11ce",)})
    node.client("alice").submit(
        [{"op": "new", "market": "PUNK-ETH", "id": 1, "owner": "0xa11ce", "side": "buy",
          "price": "100", "qty": "1"}]
    )  # fmt: skip
    url = node.node.endpoints["prometheus"]

    def scrape_once_sampled() -> str | None:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        return body if "marketnode_matching_busy_ratio" in body else None

    text = wait_for(scrape_once_sampled)
    assert "marketnode_commands_total 1.0" in text
    assert 'marketnode_ack_latency_seconds_bucket{le="+Inf"} 1.0' in text
    assert 'marketnode_market_trades_per_second{market="PUNK-ETH"}' in text


def test_a_busy_prometheus_port_stops_the_start_with_one_line(node_factory, tmp_path):
    first = node_factory('[metrics]\nprometheus = "127.0.0.1:0"\n')
    port = first.node.endpoints["prometheus"].rsplit(":", 1)[1].split("/")[0]
    with pytest.raises(Exception, match=f"cannot serve Prometheus on 127.0.0.1:{port}"):
        node_factory(f'[metrics]\nprometheus = "127.0.0.1:{port}"\n')


SLOW_CONNECTIONS = 200
FD_HEADROOM = 100
"""File descriptors the node may open beyond those it holds once started: fewer than the slow
connections, more than the endpoint's bound plus a new peer's connection."""


def prometheus_host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    return host, int(port)


def open_slow_connection(host: str, port: int) -> socket.socket:
    """A connection that starts a request and never finishes its head (the endpoint may
    close it at once, when it holds its bound)."""
    slow = socket.create_connection((host, port), timeout=30)
    with contextlib.suppress(ConnectionError):
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: a")
    return slow


def test_slow_prometheus_connections_lock_out_neither_a_scrape_nor_a_new_peer(tmp_path):
    """The node process may open FD_HEADROOM more files: 200 slow connections held open would
    take them all from an endpoint that kept each one; a bounded endpoint still answers a new
    scrape, and the order socket a new peer's ping."""
    home, key = prepare_home(tmp_path / "home")
    text = home.config_path.read_text()
    home.config_path.write_text(
        text.replace("[metrics]\n", '[metrics]\nprometheus = "127.0.0.1:0"\n', 1)
    )
    process = start_node_process(home)
    slow: list[socket.socket] = []
    try:
        url = json.loads(home.runtime_path.read_text())["endpoints"]["prometheus"]
        host, port = prometheus_host_port(url)
        held = len(os.listdir(f"/proc/{process.pid}/fd"))
        _, hard = resource.prlimit(process.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (held + FD_HEADROOM, hard))
        slow = [open_slow_connection(host, port) for _ in range(SLOW_CONNECTIONS)]
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
            assert b"marketnode_commands_total" in response.read()
        with Client(address_of_home(home), key, timeout_s=30) as peer:
            assert peer.ping() is not None
        assert len(os.listdir(f"/proc/{process.pid}/fd")) < held + FD_HEADROOM
    finally:
        for connection in slow:
            connection.close()
        stop_node_process(process)
    assert "Traceback" not in (home.path / "node.log").read_text()


def read_to_end(connection: socket.socket) -> bytes:
    """What the server sends until it closes the connection (socket time-out: it never did);
    a reset ends it too (a connection closed before its request was read)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := connection.recv(65536):
            received += chunk
    return received


def test_the_prometheus_endpoint_times_out_slow_clients_and_bounds_requests(node_factory):
    node = node_factory('[metrics]\nprometheus = "127.0.0.1:0"\n')
    host, port = prometheus_host_port(node.node.endpoints["prometheus"])
    with (
        socket.create_connection((host, port), timeout=60) as silent,
        open_slow_connection(host, port) as half_a_head,
    ):
        assert read_to_end(silent).startswith(b"HTTP/1.1 408 ")
        assert read_to_end(half_a_head).startswith(b"HTTP/1.1 408 ")
    answers = {}
    for name, request in {
        "oversized": b"GET /metrics HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES,
        "garbage": b"\x00\xff\r\n\r\n",
        "post": b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "elsewhere": b"GET /other HTTP/1.1\r\n\r\n",
        "metrics": b"GET /metrics?x=1 HTTP/1.0\r\n\r\n",
    }.items():
        with socket.create_connection((host, port), timeout=60) as connection:
            connection.sendall(request)
            answers[name] = read_to_end(connection).split(b"\r\n", 1)[0]
    assert answers == {
        "oversized": b"HTTP/1.1 431 Request Header Fields Too Large",
        "garbage": b"HTTP/1.1 400 Bad Request",
        "post": b"HTTP/1.1 405 Method Not Allowed",
        "elsewhere": b"HTTP/1.1 404 Not Found",
        "metrics": b"HTTP/1.1 200 OK",
    }


def test_the_prometheus_endpoint_holds_at_most_its_bound_of_connections(node_factory):
    """Beyond the bound, the oldest unfinished request is closed at once for the new one."""
    node = node_factory('[metrics]\nprometheus = "127.0.0.1:0"\n')
    url = node.node.endpoints["prometheus"]
    host, port = prometheus_host_port(url)
    slow = [open_slow_connection(host, port) for _ in range(MAX_CONNECTIONS + 5)]
    try:
        for oldest in slow[:5]:
            assert read_to_end(oldest) == b""  # closed without waiting for its time-out
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
    finally:
        for connection in slow:
            connection.close()


def test_mnode_metrics_prints_the_latest_sample(running_node):
    from typer.testing import CliRunner

    from marketnode.cli.main import app

    admin = running_node.admin()
    wait_for(lambda: admin.call("metrics")["history"])
    home = str(running_node.home.path)
    result = CliRunner().invoke(app, ["metrics", "--home", home])
    assert result.exit_code == 0, result.stderr
    assert "last second:" in result.stdout and "PUNK-ETH" in result.stdout
    assert "matching thread busy" in result.stdout
    as_json = CliRunner().invoke(app, ["metrics", "--home", home, "--json"])
    assert as_json.exit_code == 0 and '"history"' in as_json.stdout

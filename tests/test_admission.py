"""Connection admission (issue 12, item 8): past `[limits] accept_rate_per_s` new TCP
connections a second, the order socket's listener drops a share of bare SYNs (a kernel filter),
so a storm's handshakes are spread out; connections already open are never touched."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from conftest import until

from marketnode.node.server.admission import (
    MAX_DROP,
    filter_refused,
    listening_descriptor,
    next_drop,
    set_drop,
)

BOB = "0xb0b"
REFUSED = filter_refused()
needs_filters = pytest.mark.skipif(
    REFUSED is not None, reason=f"this kernel refuses this user a TCP socket filter: {REFUSED}"
)


def connects(port: int, timeout_s: float) -> bool:
    with socket.socket() as client:
        client.settimeout(timeout_s)
        try:
            client.connect(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server
    server.close()


def test_the_share_dropped_keeps_attempts_to_the_rate():
    assert next_drop(50, 100) == 0.0  # under the rate: nothing dropped
    assert next_drop(100, 100) == 0.0
    assert next_drop(200, 100) == 0.5
    assert next_drop(300, 100) == 11 / 16  # 2/3 rounded up to a sixteenth
    assert next_drop(1e6, 100) == MAX_DROP  # some always get through
    assert next_drop(1e6, 0) == 0.0  # no bound


def test_the_listener_is_found_among_the_process_descriptors(listener):
    assert listening_descriptor(listener.getsockname()[1]) == listener.fileno()
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))  # bound, not listening
        assert listening_descriptor(other.getsockname()[1]) is None


@needs_filters
def test_the_filter_drops_new_connections_only(listener):
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as established:
        accepted, _ = listener.accept()
        with accepted:
            assert set_drop(listener.fileno(), 1.0)
            assert not connects(port, 0.5)  # its SYN was dropped (the kernel would retry)
            established.sendall(b"still here")  # an open connection is not touched
            accepted.settimeout(5)
            assert accepted.recv(64) == b"still here"
            assert set_drop(listener.fileno(), 0.5)
            assert set_drop(listener.fileno(), 0.0)  # detached
            assert connects(port, 5)


@needs_filters
def test_a_storm_of_connections_is_admitted_at_the_rate(node_factory):
    running = node_factory("[limits]\naccept_rate_per_s = 20\n", {"bob": (BOB,)})
    bob = running.client("bob")
    assert running.admin().call("status")["admission"]["state"] == "on"
    port = int(running.address.orders.rpartition(":")[2])
    stop = threading.Event()
    opened: list[socket.socket] = []

    def storm() -> None:  # about 200 attempts a second, ten times the rate
        while not stop.is_set() and len(opened) < 400:
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            opened.append(client)
            time.sleep(0.005)

    storming = threading.Thread(target=storm)
    storming.start()
    try:
        admission = lambda: running.admin().call("status")["admission"]  # noqa: E731
        until(lambda: admission()["dropping"] > 0, "new connections to be dropped")
        assert bob.ping() is not None  # the connected peer is served during the storm
        until(lambda: admission()["dropped_estimate"] > 0, "attempts to be counted as dropped")
    finally:
        stop.set()
        storming.join()
        for client in opened:
            client.close()
    until(lambda: admission()["dropping"] == 0, "the storm to be over")
    assert running.client("bob").ping() is not None  # a new connection gets in again


def test_no_bound_when_the_rate_is_zero(node_factory):
    running = node_factory("[limits]\naccept_rate_per_s = 0\n")
    assert running.admin().call("status")["admission"]["state"].startswith("off (")

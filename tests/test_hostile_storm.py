"""Connection storms (issue 12, item 8): hundreds of connections opening and closing at once
are booked a slice at a time in constant time each, logged a line a second with a count (not a
line per connection), and another peer is served throughout; cancel-on-disconnect still
cancels exactly when a peer's last connection goes."""

from __future__ import annotations

import logging
import re
import threading
import time

import msgspec
import zmq
from conftest import until

from marketnode.node.home.keys import create_key_pair
from marketnode.node.protocol.messages import PROTOCOL_VERSION, encoder

ALICE = "0xa11ce"
BOB = "0xb0b"
STORM = 300
"""Connections per storm (bounded: well under the test process's 1023 ZeroMQ sockets)."""
PING = encoder.encode({"v": PROTOCOL_VERSION, "type": "ping"})


def told(lines: list[str], prefix: str) -> int:
    """How many events the rate-limited lines starting with `prefix` stand for: a line tells
    its own event and the ones held back before it, a flushed line the ones held back."""
    total = 0
    for line in lines:
        if not line.startswith(prefix):
            continue
        before = re.search(r"\(and (\d+) more like it before\)$", line)
        flushed = re.search(r"\(the last of (\d+) like it\)$", line)
        if flushed:
            total += int(flushed.group(1))
        else:
            total += 1 + (int(before.group(1)) if before else 0)
    return total


def node_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "marketnode.node"]


class HonestPinger:
    """A peer pinging in a loop on its own connection: every ping must be answered."""

    def __init__(self, sock: zmq.Socket) -> None:
        self.sock = sock
        self.answered = 0
        self.lost = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping:
            self.sock.send(PING)
            if self.sock.poll(20_000):
                self.sock.recv()
                self.answered += 1
            else:
                self.lost += 1
            time.sleep(0.005)

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(timeout=30)


def test_a_storm_of_refused_keys_logs_a_line_a_second(node_factory, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="marketnode.node")
    running = node_factory(peers={"bob": (BOB,)})
    pinger = HonestPinger(
        running.raw_socket(zmq.DEALER, running.address.orders, running.keys["bob"])
    )
    stranger = create_key_pair(tmp_path / "unregistered", "stranger")
    started = time.monotonic()
    for _ in range(STORM):
        running.raw_socket(zmq.DEALER, running.address.orders, stranger)
    until(lambda: told(node_lines(caplog), "refused key") >= STORM, "every refusal to be told")
    elapsed = time.monotonic() - started
    pinger.stop()
    lines = [line for line in node_lines(caplog) if line.startswith("refused key")]
    assert len(lines) <= 2 * (elapsed + 2), f"{len(lines)} lines for {STORM} refusals"
    assert told(lines, "refused key") == STORM
    assert pinger.lost == 0 and pinger.answered > 0


def test_a_storm_of_disconnections_is_booked_and_cancels_once(node_factory, caplog):
    caplog.set_level(logging.INFO, logger="marketnode.node")
    running = node_factory(peers={"bob": (BOB,)})
    running.add_peer("alice", (ALICE,), cancel_on_disconnect=True)
    until(lambda: running.node.allowlist.current.named("alice") is not None, "alice registered")
    pinger = HonestPinger(
        running.raw_socket(zmq.DEALER, running.address.orders, running.keys["bob"])
    )
    context = zmq.Context()
    context.max_sockets = STORM + 10
    key = running.keys["alice"]
    storm = []
    for _ in range(STORM):
        sock = context.socket(zmq.DEALER)
        sock.linger = 0
        sock.curve_serverkey = running.address.server_key
        sock.curve_publickey, sock.curve_secretkey = key.public, key.secret
        sock.connect(running.address.orders)
        storm.append(sock)
    order = {"op": "new", "market": "PUNK-ETH", "id": "o1", "owner": ALICE, "side": "buy",
             "type": "limit", "price": "10", "qty": "1"}  # fmt: skip
    storm[0].send(encoder.encode({"v": PROTOCOL_VERSION, "type": "submit", "cmds": [order]}))
    for sock in storm[1:]:
        sock.send(PING)
    for sock in storm:
        assert sock.poll(30_000), "a storm connection got no answer"
        msgspec.msgpack.decode(sock.recv())
    connections = running.node.connections
    assert connections.open_count["alice"] == STORM
    # all but one go: nothing is cancelled while the peer keeps a connection
    for sock in storm[1:]:
        sock.close(0)
    until(lambda: connections.open_count["alice"] == 1, "the disconnections to be booked")
    assert running.admin().call("status")["resting_orders"] == 1
    storm[0].close(0)
    until(lambda: running.admin().call("status")["resting_orders"] == 0, "the cancel")
    context.term()
    until(lambda: told(node_lines(caplog), "peer 'alice' disconnected") >= STORM, "every line")
    pinger.stop()
    lines = node_lines(caplog)
    assert len([line for line in lines if line.startswith("peer 'alice' disconnected")]) < 20
    assert len([line for line in lines if line.startswith("cancelled 1 orders of alice")]) == 1
    assert "alice" not in connections.open_count
    assert all(name != "alice" for name, _ in connections.by_fd.values())
    assert pinger.lost == 0 and pinger.answered > 0

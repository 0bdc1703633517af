"""What one connection can make the node hold (issue 12, item 1): a message of many frames is
answered `malformed` and its frames let go one at a time, or, once more than a frame's worth of
it has arrived, its connection is shut down (tests/test_intake_watch.py); so repeating it does
not add up, and another peer is served meanwhile; the order socket's queues are the configured
bounds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import psutil
import zmq

from marketnode.node.protocol.messages import (
    PROTOCOL_VERSION,
    ErrorReply,
    encoder,
    node_reply_decoder,
)

ALICE = "0xa11ce"
BOB = "0xb0b"
FRAMES = 200
FRAME_BYTES = 64 << 10
MESSAGES = 5
"""Five messages of 200 frames of 64 KiB (12.5 MiB each, 62.5 MiB in all), one after another."""
GROWTH_BOUND = 3 * FRAMES * FRAME_BYTES
"""The node's RSS may grow by the message libzmq holds whole until its last frame (12.5 MiB),
with room for the allocator: never by all the messages sent."""

ATTACKER = """
import json, sys, zmq
spec = json.loads(sys.argv[1])
context = zmq.Context()
sock = context.socket(zmq.DEALER)
sock.linger = 0
sock.curve_serverkey = spec["server"].encode()
sock.curve_publickey = spec["public"].encode()
sock.curve_secretkey = spec["secret"].encode()
sock.sndtimeo = 30_000
monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
sock.connect(spec["endpoint"])
frame = bytes(spec["frame_bytes"])
poller = zmq.Poller()
poller.register(sock, zmq.POLLIN)
poller.register(monitor, zmq.POLLIN)
for n in range(spec["messages"]):
    sock.send_multipart([spec["ping"].encode("latin-1")] + [frame] * (spec["frames"] - 1))
    ready = dict(poller.poll(60_000))
    if sock in ready:
        sys.stdout.write(sock.recv().hex() + "\\n")
    elif monitor in ready:
        monitor.recv_multipart()
        sys.stdout.write("cut\\n")
    else:
        sys.exit("no answer to message %d and no disconnection" % n)
    sys.stdout.flush()
"""


class PeakRss:
    """The highest RSS of this process (the node's) seen while it runs."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self.stopping = False
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def stop(self) -> int:
        self.stopping = True
        self.thread.join()
        return self.peak - self.base


def test_many_frames_are_malformed_and_do_not_add_up(node_factory):
    running = node_factory(peers={"alice": (ALICE,), "bob": (BOB,)})
    bob = running.client("bob", timeout_s=30)
    bob.ping()
    key = running.keys["alice"]
    ping = encoder.encode({"v": PROTOCOL_VERSION, "type": "ping", "ref": 7})
    spec = {
        "server": running.address.server_key.decode(),
        "public": key.public.decode(),
        "secret": key.secret.decode(),
        "endpoint": running.address.orders,
        "frames": FRAMES,
        "frame_bytes": FRAME_BYTES,
        "messages": MESSAGES,
        "ping": ping.decode("latin-1"),
    }
    rss = PeakRss()
    attacker = subprocess.Popen(
        [sys.executable, "-c", ATTACKER, json.dumps(spec)], stdout=subprocess.PIPE, text=True
    )
    served = 0
    while attacker.poll() is None:
        bob.ping()
        served += 1
    growth = rss.stop()
    outcomes = attacker.stdout.read().split()
    assert attacker.returncode == 0
    # per message, one error with ref nil (a message of more than one frame is not read), or
    # its connection shut down while it arrived
    answers = [outcome for outcome in outcomes if outcome != "cut"]
    decoded = [node_reply_decoder.decode(bytes.fromhex(answer)) for answer in answers]
    expected = [(ErrorReply, "malformed", None)] * len(answers)
    assert [(type(a), a.reason, a.ref) for a in decoded] == expected
    assert len(outcomes) == MESSAGES
    # every cut the attacker saw is one the watch made; the watch may also cut a connection
    # whose message the node read (and answered) between the watch's look and its shutdown
    assert outcomes.count("cut") <= running.node.intake_watch.dropped <= MESSAGES
    assert served > 0
    assert growth < GROWTH_BOUND, f"RSS grew by {growth >> 20} MiB"


def test_the_order_socket_queues_are_bounded_as_configured(node_factory):
    running = node_factory(
        "[limits]\nreceive_queue_messages = 64\nsend_queue_messages = 500\n",
        {"alice": (ALICE,)},
    )
    orders = running.node.sockets.orders
    assert (orders.rcvhwm, orders.sndhwm) == (64, 500)
    assert orders.getsockopt(zmq.MAXMSGSIZE) == running.node.config.limits.max_message_bytes + 33

"""The bound on a message that does not end (issue 12, item 1; node/server/intake_watch.py).

libzmq holds a multipart message whole until its last frame, and no option bounds the frames.
An attacker speaking ZMTP itself (here over the NULL mechanism, CURVE off) streams frames with
the "more" flag for ever: the node must shut such a connection down after about a frame's
worth, serve others meanwhile, and never shut down a connection whose messages end, however
fast they come.
"""

from __future__ import annotations

import socket
import struct
import time

from marketnode.node.protocol.messages import (
    PROTOCOL_VERSION,
    ErrorReply,
    Pong,
    encoder,
    node_reply_decoder,
)
from marketnode.node.server.intake_watch import IntakeWatch

CURVE_OFF = "[security]\ncurve = false\n"
LIMITS = "[limits]\nmax_message_bytes = 65536\nreceive_queue_messages = 4\n"
FRAME = bytes(32 << 10)
GIVE_UP_BYTES = 256 << 20
"""What the attacker sends at most: far past the bound, so stopping short of it is the node's
doing."""


def _zmtp_dealer(endpoint: str) -> socket.socket:
    """A TCP connection that has done ZMTP 3.0's NULL handshake as a DEALER."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    greeting = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0")
    sock.sendall(greeting + bytes(32))
    _receive_exactly(sock, 64)
    ready = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    sock.sendall(b"\x04" + bytes([len(ready)]) + ready)
    flags, size = _receive_exactly(sock, 2)
    _receive_exactly(sock, size)  # the node's READY
    assert flags == 0x04
    return sock


def _receive_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "the node closed the connection during the handshake"
        data += chunk
    return data


def _read_message(sock: socket.socket) -> bytes:
    """The next one-frame message from the node (ZMTP commands such as heartbeats skipped)."""
    while True:
        flags = _receive_exactly(sock, 1)[0]
        if flags & 0x02:
            size = struct.unpack(">Q", _receive_exactly(sock, 8))[0]
        else:
            size = _receive_exactly(sock, 1)[0]
        body = _receive_exactly(sock, size)
        if not flags & 0x04:
            return body


def _long_frame(body: bytes, more: bool) -> bytes:
    return bytes([0x02 | (0x01 if more else 0)]) + struct.pack(">Q", len(body)) + body


def _stream_until_shut(sock: socket.socket) -> int:
    """Send frames that never end a message until the node stops taking them (the connection
    fails, or a send makes no progress for a few seconds: the node has shut its side and
    libzmq reads no more); the bytes sent (GIVE_UP_BYTES if it never stopped)."""
    sock.settimeout(5)
    frame = _long_frame(FRAME, more=True)
    sent = 0
    try:
        while sent < GIVE_UP_BYTES:
            sock.sendall(frame)
            sent += len(frame)
    except OSError:
        return sent
    return sent


def _wait_for(condition, bound_s: float = 30.0) -> bool:
    deadline = time.monotonic() + bound_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_message_that_never_ends_is_cut_off_and_others_are_served(node_factory):
    running = node_factory(CURVE_OFF + LIMITS)
    attacker = _zmtp_dealer(running.address.orders)
    sent = _stream_until_shut(attacker)
    attacker.close()
    assert sent < GIVE_UP_BYTES, "the node never cut the connection off"
    assert _wait_for(lambda: running.node.intake_watch.dropped == 1)
    honest = _zmtp_dealer(running.address.orders)
    ping = encoder.encode({"v": PROTOCOL_VERSION, "type": "ping", "ref": 1})
    honest.sendall(_long_frame(ping, more=False))
    assert isinstance(node_reply_decoder.decode(_read_message(honest)), Pong)
    honest.close()


def test_messages_that_end_are_never_cut_off_however_fast_they_come(node_factory):
    running = node_factory(CURVE_OFF + LIMITS)
    peer = _zmtp_dealer(running.address.orders)
    messages = 400  # ~25 MiB of frames each just under max_message_bytes, as fast as TCP goes
    frame = _long_frame(bytes(65536 - 16), more=False)
    for _ in range(messages):
        peer.sendall(frame)
    answers = [node_reply_decoder.decode(_read_message(peer)) for _ in range(messages)]
    assert {(type(answer), answer.reason) for answer in answers} == {(ErrorReply, "malformed")}
    assert running.node.intake_watch.dropped == 0
    peer.close()


def test_what_waits_unread_is_counted_in_commands():
    """`waiting_commands` (the scaling policies' offered load beyond what was served): bytes a
    connection sent that nobody read, at the mean size of what the node read so far."""
    listener = socket.create_server(("127.0.0.1", 0))
    watch = IntakeWatch(f"tcp://127.0.0.1:{listener.getsockname()[1]}", 65536, 4)
    peer = socket.create_connection(listener.getsockname())
    served, _ = listener.accept()
    watch.start()
    try:
        assert watch.waiting_commands(commands_read=10) is None  # nothing read yet: unknown
        watch.accepted(served.fileno())
        peer.sendall(bytes(50_000))  # into the kernel's queue; nothing reads it
        watch.total_read = 1_000  # as if the node had read 10 commands of 100 bytes
        assert _wait_for(lambda: watch.queued_bytes >= 50_000)
        assert watch.waiting_commands(commands_read=10) == 500
    finally:
        watch.close()
        for sock in (peer, served, listener):
            sock.close()

"""ZAP (ZeroMQ RFC 27): libzmq asks, for every CURVE handshake, whether the client's key may
connect; this thread answers from the allowlist.

Why not pyzmq's `ThreadAuthenticator`: it runs an asyncio loop and wraps its socket anew for
every poll, about 400 µs of interpreter time per handshake. The matching thread shares that
interpreter, so a storm of a thousand connections made it wait about 0.4 s in all for the
interpreter lock, in slices of milliseconds, and honest peers' acknowledgements waited with it
(bench/hostile.py's `connection_storm`). Here a request is one blocking receive, a dictionary
lookup and one send: a few tens of µs, with the lock released while waiting.

A request is the frames version, request id, domain, address, identity, mechanism and the
mechanism's credentials (for CURVE, the client's 32-byte public key). Every request gets a
reply, even a malformed one: libzmq holds a handshake until its reply comes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import zmq
from zmq.utils import z85

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
"""Where libzmq sends ZAP requests (fixed by RFC 27)."""
VERSION = b"1.0"
STOP_ENDPOINT = "inproc://marketnode-zap-stop"

Check = Callable[[str, str], bool]
"""(domain, the client's key in Z85 text) -> may it connect?"""


def reply_to(request: list[bytes], check: Check) -> list[bytes]:
    """The reply frames for one request: 200 with the key (Z85) as the user id, which the node
    reads back from each message's `User-Id` property, or 400 (refused) / 500 (malformed)."""
    if len(request) < 6 or request[0] != VERSION:
        request_id = request[1] if len(request) > 1 else b""
        return [VERSION, request_id, b"500", b"malformed ZAP request", b"", b""]
    _, request_id, domain, _address, _identity, mechanism, *credentials = request
    if mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
        return [VERSION, request_id, b"400", b"CURVE required", b"", b""]
    key = z85.encode(credentials[0])
    if not check(domain.decode("ascii", "replace"), key.decode("ascii")):
        return [VERSION, request_id, b"400", b"key not allowed", b"", b""]
    return [VERSION, request_id, b"200", b"OK", key, b""]


class ZapHandler:
    """The ZAP socket, bound by `start` before any CURVE socket binds, and its thread."""

    def __init__(self, context: zmq.Context, check: Check) -> None:
        self.context = context
        self.check = check
        self._thread: threading.Thread | None = None
        self._stop: zmq.Socket | None = None

    def start(self) -> None:
        # both sockets are made here and then used by the thread alone (starting a thread is
        # the memory barrier libzmq asks for when a socket changes threads)
        requests = self.context.socket(zmq.REP)
        requests.linger = 0
        requests.bind(ZAP_ENDPOINT)
        stop_listener = self.context.socket(zmq.PAIR)
        stop_listener.linger = 0
        stop_listener.bind(STOP_ENDPOINT)
        self._stop = self.context.socket(zmq.PAIR)
        self._stop.linger = 0
        self._stop.connect(STOP_ENDPOINT)
        self._thread = threading.Thread(
            target=self._serve, args=(requests, stop_listener), name="zap", daemon=True
        )
        self._thread.start()

    def _serve(self, requests: zmq.Socket, stop_listener: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(requests, zmq.POLLIN)
        poller.register(stop_listener, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if stop_listener in ready:
                    return
                while True:  # every request already queued, before polling again
                    try:
                        request = requests.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    requests.send_multipart(reply_to(request, self.check))
        except zmq.ContextTerminated:
            return
        finally:
            requests.close(linger=0)
            stop_listener.close(linger=0)

    def stop(self) -> None:
        """Ask the thread to end and wait for it (idempotent)."""
        if self._thread is None or self._stop is None:
            return
        self._stop.send(b"")
        self._thread.join(timeout=5)
        self._stop.close(linger=0)
        self._thread = self._stop = None

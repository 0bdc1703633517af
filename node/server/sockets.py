"""The node's sockets: bound with the options libzmq needs before binding, and CURVE with a ZAP
check of every connecting key against the allowlist (the operator's key alone on admin).

Kept apart from the loop because none of it runs per message: it is set up once, and the ZAP
check runs in a thread of its own (zap.py).
"""

from __future__ import annotations

import logging
from typing import Any

import zmq

from ..home.config import NodeConfig
from ..home.keys import OPERATOR, SERVER, load_key_pair
from ..home.layout import Home
from ..home.peers import AllowlistFile
from .errors import NodeError
from .lograte import RateLimitedLog
from .zap import ZapHandler

CURVE_FRAME_OVERHEAD = 33
"""Bytes CURVE adds to a frame (MESSAGE command, nonce, MAC): libzmq's size limit counts them."""
HIGH_WATER_MARK = 100_000
"""Messages queued per market-data subscriber before ZeroMQ drops more (the order socket's
queues are `[limits] receive_queue_messages` / `send_queue_messages`)."""
INBOX = "inproc://node-inbox"
"""Where threads of the node (the metrics sampler) hand the loop what only it may send."""

IO_THREADS = 2

log = logging.getLogger("marketnode.node")


class KeyCheck:
    """ZAP: may this CURVE key connect to this socket? (runs in the ZAP thread). Each socket
    has its own ZAP domain ("orders", "md", "admin"), so the admin socket can take the
    operator's key alone."""

    def __init__(self, allowlist: AllowlistFile, operator_key: str) -> None:
        self.allowlist = allowlist
        self.operator_key = operator_key
        self.refusals = RateLimitedLog(log, logging.WARNING)
        """One line a second at most, however many connections a storm of unknown keys makes."""

    def __call__(self, domain: str, text: str) -> bool:
        """May the key `text` (Z85) connect to the socket of ZAP domain `domain`?"""
        if domain == "admin":
            allowed = text == self.operator_key
        else:
            self.allowlist.refresh()
            allowed = text in self.allowlist.current.by_key or text == self.operator_key
        if not allowed:
            self.refusals.note(f"refused key {text} on {domain} socket")
        return allowed


class NodeSockets:
    """The order (ROUTER), market-data (XPUB) and admin (ROUTER) sockets, the order socket's
    disconnection monitor and the inbox, in one ZeroMQ context; `endpoints` are the addresses
    actually bound."""

    def __init__(self, home: Home, config: NodeConfig, allowlist: AllowlistFile) -> None:
        self.config = config
        # two I/O threads: libzmq gives each connection to the least loaded one, so a peer
        # whose frames keep one busy (decrypting a flood, a message that does not end) does
        # not hold up the others' messages (bench/hostile.py's `oversized`)
        self.context = zmq.Context(io_threads=IO_THREADS)
        self.endpoints: dict[str, str] = {}
        self.server_public_key = ""
        self._zap: ZapHandler | None = None
        self.key_check: KeyCheck | None = None
        self._server_keys: tuple[bytes, bytes] | None = None
        try:
            if config.security.curve:
                self._start_curve(home, allowlist)
            else:
                log.warning(
                    "CURVE is off: any process that reaches the endpoints acts for any owner"
                )
            limits = config.limits
            curve_overhead = CURVE_FRAME_OVERHEAD if config.security.curve else 0
            self.orders = self._bind(
                zmq.ROUTER,
                "orders",
                "orders",
                router_mandatory=1,
                maxmsgsize=limits.max_message_bytes + curve_overhead,
                heartbeat_ivl=limits.heartbeat_ms,
                heartbeat_timeout=limits.heartbeat_timeout_ms,
                sndhwm=limits.send_queue_messages,
                rcvhwm=limits.receive_queue_messages,
            )
            # XPUB, verbose: every subscription reaches the node, with its key (subscribers.py)
            self.market_data = self._bind(
                zmq.XPUB, "md", "market_data", sndhwm=HIGH_WATER_MARK, xpub_verbose=1
            )
            self.admin = self._bind(zmq.ROUTER, "admin", "admin", router_mandatory=1)
            self.monitor = self.orders.get_monitor_socket(
                zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
            )
            self.inbox = self.context.socket(zmq.PULL)
            self.inbox.linger = 0
            self.inbox.bind(INBOX)
        except BaseException:
            self.close()
            raise

    def _start_curve(self, home: Home, allowlist: AllowlistFile) -> None:
        keys = home.keys_path(self.config)
        server = load_key_pair(keys / f"{SERVER}.key_secret")
        operator_key = load_key_pair(keys / f"{OPERATOR}.key_secret").public_text
        self.server_public_key = server.public_text
        self._server_keys = (server.public, server.secret)
        self.key_check = KeyCheck(allowlist, operator_key)
        self._zap = ZapHandler(self.context, self.key_check)
        self._zap.start()

    def _bind(self, kind: int, domain: str, endpoint_name: str, **options: Any) -> zmq.Socket:
        """A bound socket; options are set before binding, since libzmq applies most of them
        (message size, heartbeats, high-water marks) to connections made after."""
        sock = self.context.socket(kind)
        sock.linger = 0
        for name, value in options.items():
            setattr(sock, name, value)
        if self._server_keys is not None:
            sock.curve_server = True
            sock.curve_publickey, sock.curve_secretkey = self._server_keys
            sock.zap_domain = domain.encode()
        endpoint = getattr(self.config.endpoints, endpoint_name)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as error:
            sock.close(linger=0)
            detail = f"cannot bind the {endpoint_name} socket to {endpoint}: {error}"
            raise NodeError(detail) from None
        self.endpoints[endpoint_name] = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return sock

    def close(self) -> None:
        """Stop the ZAP thread and close every socket of the context (idempotent)."""
        if self._zap is not None:
            self._zap.stop()
            self._zap = None
        if not self.context.closed:
            self.context.destroy(linger=0)

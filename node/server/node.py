"""The running node: ZeroMQ sockets around the durable engine, served by one thread.

The hot loop, LMAX style: poll; drain up to a batch of messages from the order socket; decode,
admit (gateway), validate and match each command; commit the whole batch to LMDB in one synced
transaction; only then send the answers, push execution reports and publish market data. The
admin socket is served by the same thread between batches, so nothing needs a lock.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import zmq
import zmq.auth.thread
from zmq.utils.monitor import recv_monitor_message

from .. import __version__
from ..core.commands import (
    BAD_INPUT,
    CANCEL_DISCONNECT,
    CancelOrder,
    NewOrder,
    PeerCommand,
    echo_fields,
)
from ..core.events import Accepted, Cancelled, Rejected, Trade
from ..core.validation import MALFORMED
from ..home.config import NodeConfig
from ..home.keys import OPERATOR, SERVER, load_key_pair
from ..home.layout import Home
from ..home.peers import AllowlistFile, Peer
from ..ops.metrics import LoopMetrics
from ..ops.prometheus import serve_prometheus
from ..ops.rollup import MinuteRollup
from ..ops.sampler import MetricsSampler
from ..ops.scaling import (
    HISTORY_QUERY,
    Scaler,
    ScalingListener,
    minutes_from_rollups,
    policy_settings,
)
from ..protocol.messages import (
    ALERTS_TOPIC,
    BAD_VERSION,
    PROTOCOL_VERSION,
    THROTTLED,
    TOO_MANY_COMMANDS,
    AdminReply,
    AdminRequest,
    DecodedSubmit,
    ErrorReply,
    MarketData,
    OpenOrder,
    OpenOrdersReply,
    Ping,
    Pong,
    Reply,
    Report,
    SnapshotReply,
    SnapshotRequest,
    Submit,
    TapeTrade,
    admin_request_decoder,
    encoder,
    fast_peer_request_decoder,
    market_topic,
    peer_request_decoder,
)
from ..protocol.wire_events import wire_event
from ..store.durable import DurableEngine
from ..store.lmdb_store import Store, StoreError
from .admin import handle_admin
from .gateway import Gateway
from .marketdata import book_levels, level_changes

POLL_MS = 100
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_SNDMORE = int(zmq.NOBLOCK | zmq.SNDMORE)
"""Plain ints: pyzmq's flag enums cost more to combine than a small send does."""
ALLOWLIST_CHECK_S = 0.5
CURVE_FRAME_OVERHEAD = 33
"""Bytes CURVE adds to a frame (MESSAGE command, nonce, MAC): libzmq's size limit counts them."""
ANALYTICS_COMMANDS = {"sql": "sql", "analytics": "lag", "export": "export", "ack": "ack"}
"""Admin commands the analytics process answers (admin name -> its request)."""
ANALYTICS_STOP_S = 10.0
LAG_REF = -1
"""The ref of the node's own periodic lag requests (admin requests get positive tokens)."""
ROLLUP_REF = -2
"""The ref of the metrics rollups the node sends the analytics process."""
HISTORY_REF = -3
"""The ref of the node's start-up request for the rollups of earlier runs (scaling history)."""
INBOX = "inproc://node-inbox"
"""Where threads of the node (the metrics sampler) hand the loop what only it may send."""
HIGH_WATER_MARK = 100_000
"""Messages queued per connection before ZeroMQ drops (PUB) or refuses (ROUTER) more."""
MAX_MESSAGES_PER_BATCH = 1000
"""Messages drained per batch; commands per batch are bounded by `[store] batch_size` too."""

_command_decoder = msgspec.msgpack.Decoder(PeerCommand)
_any_decoder = msgspec.msgpack.Decoder()

log = logging.getLogger("marketnode.node")


class NodeError(RuntimeError):
    """The node cannot start; one line for the operator."""


@dataclass
class Pending:
    """One peer message of the batch in progress. Answers leave after the batch's commit, in
    arrival order, so a peer's replies come back in the order of its requests."""

    identity: bytes
    peer: Peer | None
    name: str
    """The sender's peer name, which its orders carry and its reports are routed by."""
    ref: Any = None
    received_ns: int = 0
    """When the message was taken off the socket (for the acknowledgement latency)."""
    events: list | None = None
    """A submit's events (its answers first); None for other requests."""
    build: Callable[[], Any] | None = None
    """Builds a non-submit reply from committed state."""


class Node:
    """A node serving one home. `start()` binds, `serve()` runs until stopped, then closes."""

    def __init__(self, home: Home, config: NodeConfig) -> None:
        self.home = home
        self.config = config
        self.stopping = False
        self.metrics = LoopMetrics(started=time.time())
        self.endpoints: dict[str, str] = {}
        self.halted: set[str] = set()
        self.peer_identity: dict[str, bytes] = {}
        self.peer_by_fd: dict[int, tuple[str, bytes]] = {}
        """Connections (file descriptors) of registered peers, for cancel-on-disconnect."""
        self.peer_identities: set[bytes] = set()
        """Routing identities already mapped to their connection."""
        self.topic_seq: dict[str, int] = defaultdict(int)
        self.run = time.time_ns() // 1_000_000
        """This run's id (its start, ms since the epoch): market-data seqs count within it."""
        self._auth: zmq.auth.thread.ThreadAuthenticator | None = None
        self.analytics_process: subprocess.Popen | None = None
        self.analytics_waiting: dict[int, tuple[bytes, Any]] = {}
        """Forwarded analytics requests: token -> (admin identity, the admin request's ref)."""
        self._analytics_tokens = itertools.count(1)
        self.analytics_lag: dict | None = None
        """The analytics process's last answer to the node's periodic lag request."""
        self._next_allowlist_check = 0.0
        self.matching_thread: int | None = None
        """Native id of the thread running `serve` (for its CPU in the metrics)."""

    # -- start-up -----------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        try:
            self.store = Store(
                self.home.store_path(config), map_size=config.store.map_size, sync=config.store.sync
            )
        except StoreError as error:
            raise NodeError(f"{error} (is a node already running on {self.home.path}?)") from None
        try:
            self.durable = DurableEngine(self.store)
            self.durable.configure(config.markets)
            self.halted = set(self.store.get_meta_list(b"halted"))
            self.gateway = Gateway(self.durable.engine, config.limits, self.halted)
            self.allowlist = AllowlistFile(self.home.peers_path(config))
            if self.allowlist.error:
                raise NodeError(self.allowlist.error)
            self._open_sockets()
        except BaseException:
            self.close()
            raise
        self._start_analytics()
        self._start_metrics()
        self._write_runtime_file()
        gc.freeze()
        log.info(
            "node %r started (pid %d): orders %s, market data %s, admin %s; server key %s",
            config.node.name,
            os.getpid(),
            self.endpoints["orders"],
            self.endpoints["market_data"],
            self.endpoints["admin"],
            self.server_public_key,
        )

    def _open_sockets(self) -> None:
        config = self.config
        self.context = zmq.Context()
        keys = self.home.keys_path(config)
        self.server_public_key = ""
        if config.security.curve:
            server = load_key_pair(keys / f"{SERVER}.key_secret")
            self.operator_key = load_key_pair(keys / f"{OPERATOR}.key_secret").public
            self.server_public_key = server.public_text
            self._auth = zmq.auth.thread.ThreadAuthenticator(self.context, log=log.getChild("zap"))
            self._auth.start()
            for domain in ("orders", "md", "admin"):
                self._auth.configure_curve_callback(domain, credentials_provider=self)
        else:
            log.warning("CURVE is off: any process that reaches the endpoints acts for any owner")
        limits = config.limits

        def make(kind: int, domain: str, endpoint_name: str, **options: int) -> zmq.Socket:
            """A bound socket; options are set before binding, since libzmq applies most of
            them (message size, heartbeats, high-water marks) to connections made after."""
            sock = self.context.socket(kind)
            sock.linger = 0
            for name, value in options.items():
                setattr(sock, name, value)
            if config.security.curve:
                sock.curve_server = True
                sock.curve_secretkey = server.secret
                sock.curve_publickey = server.public
                sock.zap_domain = domain.encode()
            endpoint = getattr(config.endpoints, endpoint_name)
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as error:
                sock.close(linger=0)
                detail = f"cannot bind the {endpoint_name} socket to {endpoint}: {error}"
                raise NodeError(detail) from None
            self.endpoints[endpoint_name] = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            return sock

        self.orders = make(
            zmq.ROUTER,
            "orders",
            "orders",
            router_mandatory=1,
            maxmsgsize=limits.max_message_bytes
            + (CURVE_FRAME_OVERHEAD if config.security.curve else 0),
            heartbeat_ivl=limits.heartbeat_ms,
            heartbeat_timeout=limits.heartbeat_timeout_ms,
            sndhwm=HIGH_WATER_MARK,
            rcvhwm=HIGH_WATER_MARK,
        )
        self.market_data = make(zmq.PUB, "md", "market_data", sndhwm=HIGH_WATER_MARK)
        self.admin = make(zmq.ROUTER, "admin", "admin", router_mandatory=1)
        self.monitor = self.orders.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.inbox = self.context.socket(zmq.PULL)
        self.inbox.linger = 0
        self.inbox.bind(INBOX)
        self.analytics_link: zmq.Socket | None = None
        if config.analytics.enabled:
            self.analytics_link = self.context.socket(zmq.DEALER)
            self.analytics_link.linger = 0
            self.analytics_link.connect(self.home.analytics_endpoint)
            self.analytics_link.send(encoder.encode({"cmd": "hello", "ref": 0}))

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP: may this CURVE key connect to this socket? (runs in the authenticator thread)"""
        text = key.decode("ascii")
        if domain == "admin":
            allowed = key == self.operator_key
        else:
            self.allowlist.refresh()
            allowed = text in self.allowlist.current.by_key or key == self.operator_key
        if not allowed:
            log.warning("refused key %s on %s socket", text, domain)
        return allowed

    def _write_runtime_file(self) -> None:
        runtime = {
            "pid": os.getpid(),
            "name": self.config.node.name,
            "endpoints": self.endpoints,
            "server_public_key": self.server_public_key,
            "curve": self.config.security.curve,
            "started": self.metrics.started,
        }
        self.home.runtime_path.write_text(json.dumps(runtime, indent=2) + "\n")

    # -- the loop -----------------------------------------------------------------------------

    def serve(self) -> None:
        """Run until SIGINT/SIGTERM (when on the main thread), an admin `shutdown` or `stop()`;
        the batch in flight is committed."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {
                sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
            }
        self.matching_thread = threading.get_native_id()
        poller = zmq.Poller()
        poller.register(self.orders, zmq.POLLIN)
        poller.register(self.admin, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        poller.register(self.inbox, zmq.POLLIN)
        if self.analytics_link is not None:
            poller.register(self.analytics_link, zmq.POLLIN)
        try:
            while not self.stopping:
                ready = dict(poller.poll(POLL_MS))
                # disconnections first: a descriptor they free may already carry a new
                # connection's messages, which must not be taken for the old one's
                if self.monitor in ready:
                    self._on_disconnects()
                if self.orders in ready:
                    self._serve_batch()
                if self.admin in ready:
                    self._serve_admin()
                if self.analytics_link is not None and self.analytics_link in ready:
                    self._relay_analytics_replies()
                if self.inbox in ready:
                    self._serve_inbox()
                self._housekeeping()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("node %r stopping at seq %d", self.config.node.name, self.durable.engine.seq)
            self.close()

    def stop(self) -> None:
        """Ask the loop to stop after the batch in flight (safe from another thread)."""
        self.stopping = True

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("received %s: finishing the batch in flight", signal.Signals(signum).name)
        self.stopping = True

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now < self._next_allowlist_check:
            return
        self._next_allowlist_check = now + ALLOWLIST_CHECK_S
        if self.analytics_link is not None:
            # the answer (ref LAG_REF) lands in analytics_lag, for `status`
            self.analytics_link.send(encoder.encode({"cmd": "lag", "ref": LAG_REF}), zmq.NOBLOCK)
        if self.allowlist.refresh():
            log.info("peer allowlist reloaded: %d peers", len(self.allowlist.current.peers))
        elif self.allowlist.error:
            log.error("%s (keeping the previous allowlist)", self.allowlist.error)

    def _serve_batch(self) -> None:
        """One batch: drain, process, commit, then answer, report and publish."""
        self._on_disconnects()
        started = time.perf_counter_ns()
        metrics = self.metrics
        commands_before = metrics.commands
        budget = self.config.store.batch_size
        pending: list[Pending] = []
        out: list = []
        recv = self.orders.recv
        for _ in range(MAX_MESSAGES_PER_BATCH):
            try:
                identity = recv(_NOBLOCK)
            except zmq.Again:
                break
            frames = [recv(0, copy=False)]
            while frames[-1].more:
                frames.append(recv(0, copy=False))
            message = self._take_message(identity, frames, out)
            message.received_ns = time.perf_counter_ns()
            pending.append(message)
            budget -= len(message.events) if message.events else 1
            if budget <= 0:
                metrics.saturated_batches += 1
                break
        else:
            metrics.saturated_batches += 1
        if not pending:
            return
        metrics.messages += len(pending)
        metrics.batch_commands.record(metrics.commands - commands_before)
        committing = time.perf_counter_ns()
        changed = self.durable.commit()
        metrics.commit_us.record((time.perf_counter_ns() - committing) // 1000)
        metrics.batches += 1
        self._publish(self._answer(pending), changed)
        metrics.busy_ns += time.perf_counter_ns() - started

    def _take_message(self, identity: bytes, frames: list[zmq.Frame], out: list) -> Pending:
        """Decode and process one message; what it is owed waits in the returned Pending."""
        if len(frames) != 1:
            return _failed(identity, None, "", MALFORMED, "a message must be exactly one frame")
        body = frames[0]
        peer = self._peer_of(body)
        name = peer.name if peer is not None else f"anon-{identity.hex()}"
        if name:
            self.peer_identity[name] = identity
        if peer is not None and peer.name and identity not in self.peer_identities:
            self.peer_identities.add(identity)
            self.peer_by_fd[body.get(zmq.SRCFD)] = (peer.name, identity)
        try:
            request = fast_peer_request_decoder.decode(body.buffer)
        except BAD_INPUT:
            try:
                request = peer_request_decoder.decode(body.buffer)
            except BAD_INPUT as error:
                envelope = _envelope_of(body.buffer)
                if envelope is not None and envelope.v != PROTOCOL_VERSION:
                    detail = f"this node speaks v{PROTOCOL_VERSION}"
                    return _failed(identity, peer, name, BAD_VERSION, detail, envelope.ref)
                ref = envelope.ref if envelope is not None else None
                return _failed(identity, peer, name, MALFORMED, str(error), ref)
        if request.v != PROTOCOL_VERSION:
            detail = f"this node speaks v{PROTOCOL_VERSION}"
            return _failed(identity, peer, name, BAD_VERSION, detail, request.ref)
        message = Pending(identity, peer, name, request.ref)
        kind = type(request)
        if kind is DecodedSubmit or kind is Submit:
            limit = self.config.limits.max_commands_per_message
            if len(request.cmds) > limit:
                detail = f"at most {limit} per message"
                return _failed(identity, peer, name, TOO_MANY_COMMANDS, detail, request.ref)
            self._process(message, request.cmds, out)
        elif kind is Ping:
            message.build = lambda: Pong(PROTOCOL_VERSION, request.ref)
        elif kind is SnapshotRequest:
            message.build = lambda: self._snapshot(request.market, request.ref)
        else:
            message.build = lambda: self._open_orders(peer, request.owner, request.ref)
        return message

    def _peer_of(self, body: zmq.Frame) -> Peer | None:
        """The registered peer behind a message, by its CURVE key (None: CURVE is off); a key
        no longer registered (revoked while connected) acts for no one."""
        if not self.config.security.curve:
            return None
        key = body.get("User-Id")
        peer = self.allowlist.current.by_key.get(key)
        if peer is None:
            return _UNREGISTERED
        return peer

    def _process(self, message: Pending, commands: list, out: list) -> None:
        """Admit and apply a submit's commands (decoded, or Raw when one of them did not
        decode). Answers and events are appended to `out` in order; the message keeps its
        slice of them."""
        peer = message.peer
        name = message.name
        engine_process = self.durable.process
        admit = self.gateway.admit
        first = len(out)
        self.metrics.commands += len(commands)
        orders = self.metrics.orders
        books = self.durable.engine.books
        refused, allowed = self.gateway.admit_message(peer, len(commands))
        for index, command in enumerate(commands):
            if type(command) is msgspec.Raw:
                command = _decode_one(command)
                if type(command) is Rejected:
                    out.append(command)
                    continue
            kind = type(command)
            market = command.market
            if type(market) is str and market in books:  # never a key per made-up name
                orders[market] += 1
            if kind is NewOrder:
                command.peer = name
            elif kind is CancelOrder:
                command.reason = None  # only the node cancels for other reasons
            reason = refused or (THROTTLED if index >= allowed else admit(peer, command))
            if reason is None:
                engine_process(command, out)
            else:
                out.append(
                    Rejected(
                        None,
                        command.__struct_config__.tag,
                        command.market,
                        command.id,
                        command.owner,
                        reason,
                    )
                )
        message.events = out[first:]

    # -- after the commit ---------------------------------------------------------------------

    def _answer(self, pending: list[Pending]) -> dict[str, list[TapeTrade]]:
        """Send every reply, then the reports; return the batch's trades for the tape."""
        books = self.durable.engine.books
        reports: dict[str, list] = defaultdict(list)
        trades: dict[str, list[TapeTrade]] = defaultdict(list)
        metrics = self.metrics
        latency = metrics.ack_latency_us
        for message in pending:
            if message.events is None:
                self._send(message.identity, encoder.encode(message.build()))
                continue
            requester = message.name
            metrics.events.update(map(type, message.events))
            reply = []
            for event in message.events:
                kind = type(event)
                if kind is Accepted:
                    reply.append(event)
                    continue
                if kind is Rejected:
                    metrics.rejects[event.reason] += 1
                    reply.append(event)
                    continue
                wire = wire_event(event, books)
                reply.append(wire)
                if kind is Trade:
                    metrics.trades[event.market] += 1
                    metrics.volume_lots[event.market] += event.qty
                    trades[wire.market].append(
                        TapeTrade(wire.seq, wire.price, wire.qty, wire.aggressor)
                    )
                    if event.maker_peer not in (None, requester):
                        reports[event.maker_peer].append(wire)
                    if event.taker_peer not in (None, requester, event.maker_peer):
                        reports[event.taker_peer].append(wire)
                elif event.peer not in (None, requester):
                    reports[event.peer].append(wire)
            reply_message = Reply(PROTOCOL_VERSION, reply, message.ref)
            self._send(message.identity, encoder.encode(reply_message))
            latency.record((time.perf_counter_ns() - message.received_ns) // 1000)
        for name, events in reports.items():
            identity = self.peer_identity.get(name)
            if identity is None or not self._send(
                identity, encoder.encode(Report(PROTOCOL_VERSION, events)), report=True
            ):
                metrics.reports_dropped += 1
        return trades

    def _publish(self, trades: dict[str, list[TapeTrade]], changed: set) -> None:
        """One market-data message per market the batch touched: its trades, its levels."""
        levels = level_changes(self.durable.engine.books, changed)
        for market in sorted(trades.keys() | levels.keys()):
            self.topic_seq[market] += 1
            payload = MarketData(
                PROTOCOL_VERSION,
                market,
                self.topic_seq[market],
                trades.get(market, []),
                levels.get(market, []),
                self.run,
            )
            self.market_data.send_multipart([market_topic(market), encoder.encode(payload)])

    def _send(self, identity: bytes, payload: bytes, report: bool = False) -> bool:
        """Send without ever blocking the loop; a gone or saturated peer loses the message."""
        try:
            self.orders.send(identity, _NOBLOCK_SNDMORE)
            self.orders.send(payload, _NOBLOCK)
            return True
        except zmq.ZMQError as error:
            if error.errno not in (zmq.EHOSTUNREACH, zmq.EAGAIN):
                raise
            if not report:
                self.metrics.answers_dropped += 1
            log.debug("peer %s unreachable (%s): message dropped", identity.hex(), error)
            return False

    def _snapshot(self, market: str, ref: Any) -> SnapshotReply | ErrorReply:
        book = self.durable.engine.books.get(market)
        if book is None:
            return ErrorReply(PROTOCOL_VERSION, "unknown_market", f"no market {market!r}", ref)
        bids, asks = book_levels(book)
        seq = self.topic_seq[market]
        return SnapshotReply(PROTOCOL_VERSION, market, seq, bids, asks, ref, self.run)

    def _open_orders(
        self, peer: Peer | None, owner: str | None, ref: Any
    ) -> OpenOrdersReply | ErrorReply:
        if peer is not None and owner is not None and not peer.may_act_for(owner):
            detail = f"not registered for {owner!r}"
            return ErrorReply(PROTOCOL_VERSION, "not_authorized", detail, ref)
        orders = []
        for order in self.durable.engine.resting_orders():
            if owner is not None and order.owner != owner:
                continue
            if owner is None and peer is not None and not peer.may_act_for(order.owner):
                continue
            market = self.durable.engine.books[order.market].market
            orders.append(
                OpenOrder(
                    order.market,
                    order.id,
                    order.owner,
                    "buy" if order.is_buy else "sell",
                    market.tick.text_of(order.price),
                    market.lot.text_of(order.remaining),
                )
            )
        return OpenOrdersReply(PROTOCOL_VERSION, orders, ref)

    # -- peers going away and being disabled --------------------------------------------------

    def _on_disconnects(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            connection = self.peer_by_fd.pop(int(event["value"]), None)
            if connection is None:
                continue
            name, identity = connection
            self.peer_identities.discard(identity)
            peer = self.allowlist.current.named(name)
            log.info("peer %r disconnected", name)
            still_connected = any(other == name for other, _ in self.peer_by_fd.values())
            if peer is not None and peer.cancel_on_disconnect and not still_connected:
                cancelled = self.cancel_orders_of(name, CANCEL_DISCONNECT)
                log.info("cancelled %d resting orders of peer %r on disconnect", cancelled, name)

    def cancel_orders_of(self, name: str, why: str) -> int:
        """Cancel every resting order placed by peer `name` (journaled like any cancel)."""
        engine = self.durable.engine
        commands = [
            CancelOrder(order.id, order.owner, order.market, reason=why)
            for order in engine.resting_orders()
            if order.peer == name
        ]
        if not commands:
            return 0
        out: list = []
        for command in commands:
            self.durable.process(command, out)
        changed = self.durable.commit()
        books = engine.books
        identity = self.peer_identity.get(name)
        reports = [wire_event(e, books) for e in out if type(e) is Cancelled]
        report = encoder.encode(Report(PROTOCOL_VERSION, reports))
        if identity is None or not self._send(identity, report, report=True):
            self.metrics.reports_dropped += 1
        self._publish({}, changed)
        log.info("cancelled %d orders of peer %r (%s)", len(commands), name, why)
        return len(commands)

    # -- admin --------------------------------------------------------------------------------

    def _serve_admin(self) -> None:
        while True:
            try:
                frames = self.admin.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity, *body = frames
            if len(body) != 1:
                reply = AdminReply(PROTOCOL_VERSION, False, error=f"{MALFORMED}: send one frame")
            else:
                try:
                    request = admin_request_decoder.decode(body[0])
                except BAD_INPUT as error:
                    reply = AdminReply(PROTOCOL_VERSION, False, error=f"{MALFORMED}: {error}")
                else:
                    if request.v != PROTOCOL_VERSION:
                        error = f"{BAD_VERSION}: this node speaks v{PROTOCOL_VERSION}"
                        reply = AdminReply(PROTOCOL_VERSION, False, error=error, ref=request.ref)
                    elif request.cmd in ANALYTICS_COMMANDS:
                        reply = self._forward_to_analytics(identity, request)
                        if reply is None:
                            continue
                    else:
                        reply = handle_admin(self, request)
            self._reply_admin(identity, reply)

    def _reply_admin(self, identity: bytes, reply: AdminReply) -> None:
        """Send an admin answer, the node's own or one relayed from its analytics process."""
        try:
            payload = encoder.encode(reply)
        except (TypeError, msgspec.EncodeError) as error:
            # a value a plugin left in a form msgpack cannot carry: the operator gets an
            # error, and the node goes on
            log.error("admin %s: the answer cannot be encoded: %s", reply.ref, error)
            payload = encoder.encode(AdminReply(
                PROTOCOL_VERSION, False, error=f"internal: cannot encode the answer: {error}",
                ref=reply.ref,
            ))  # fmt: skip
        try:
            self.admin.send_multipart([identity, payload], zmq.NOBLOCK)
        except zmq.ZMQError as error:
            log.debug("admin client gone: %s", error)

    # -- the analytics process ----------------------------------------------------------------

    def _start_analytics(self) -> None:
        if not self.config.analytics.enabled:
            return
        self.analytics_process = subprocess.Popen(
            [sys.executable, "-m", "marketnode.node.analytics.service", str(self.home.path)]
        )
        log.info("analytics process started (pid %d)", self.analytics_process.pid)

    def _forward_to_analytics(self, identity: bytes, request: AdminRequest) -> AdminReply | None:
        """Pass an analytics request on without waiting; the answer is relayed when it comes."""
        process = self.analytics_process
        if process is None or process.poll() is not None:
            state = "off ([analytics] enabled = false)" if process is None else "not running"
            return AdminReply(
                PROTOCOL_VERSION, False, error=f"analytics is {state}", ref=request.ref
            )
        token = next(self._analytics_tokens)
        self.analytics_waiting[token] = (identity, request.ref)
        body = {
            "cmd": ANALYTICS_COMMANDS[request.cmd],
            "query": request.query,
            "path": request.path,
            "alert": request.alert,
            "label": request.label,
            "ref": token,
        }
        if request.params is not None:
            body["params"] = request.params
        self.analytics_link.send(encoder.encode(body), zmq.NOBLOCK)
        return None

    def _relay_analytics_replies(self) -> None:
        while True:
            try:
                payload = self.analytics_link.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                answer = msgspec.msgpack.decode(payload, type=dict)
            except BAD_INPUT:
                continue
            if "alerts" in answer:
                for alert in answer["alerts"]:
                    self.market_data.send_multipart([ALERTS_TOPIC, encoder.encode(alert)])
                log.warning("integrity: %d new alerts published", len(answer["alerts"]))
                continue
            if answer.get("ref") == LAG_REF:
                self.analytics_lag = answer.get("result")
                continue
            if answer.get("ref") == HISTORY_REF:
                if answer.get("ok") and self.scaling_listener is not None:
                    minutes = minutes_from_rollups(answer["result"]["rows"])
                    self.scaling_listener.seed(minutes)
                    log.info("scaling history: %d minutes from earlier runs", len(minutes))
                continue
            if answer.get("ref") == ROLLUP_REF:
                if not answer.get("ok"):
                    log.error("analytics refused a metrics rollup: %s", answer.get("error"))
                continue
            waiting = self.analytics_waiting.pop(answer.get("ref"), None)
            if waiting is None:
                continue
            identity, ref = waiting
            reply = AdminReply(
                PROTOCOL_VERSION,
                bool(answer.get("ok")),
                answer.get("result"),
                answer.get("error"),
                ref,
            )
            self._reply_admin(identity, reply)

    def _start_metrics(self) -> None:
        self.sampler: MetricsSampler | None = None
        self.scaler: Scaler | None = None
        self.scaling_listener: ScalingListener | None = None
        self.prometheus = None
        config = self.config
        if not config.metrics.enabled:
            return
        analytics_file = self.home.path / config.analytics.file
        self.sampler = MetricsSampler(
            self.metrics,
            books=lambda: self.durable.engine.books,
            home=self.home.path,
            lmdb_env=self.store.env,
            duckdb_file=analytics_file if config.analytics.enabled else None,
            analytics_lag=lambda: self.analytics_lag,
            analytics_pid=lambda: self.analytics_process.pid if self.analytics_process else None,
            matching_thread=lambda: self.matching_thread,
            interval_s=config.metrics.interval_ms / 1000,
            inbox=(self.context, INBOX),
        )
        if config.analytics.enabled:
            self.sampler.listeners.append(MinuteRollup(self.sampler.post).add)
        if config.scaling.enabled:
            settings = policy_settings(config.scaling, str(self.home.config_path))
            self.scaler = Scaler(settings, config.scaling.stabilization_s)
            self.scaling_listener = ScalingListener(
                self.scaler, self.sampler.history, self.sampler.post, config.scaling.interval_s
            )
            self.sampler.listeners.append(self.scaling_listener)
            if self.analytics_link is not None:
                request = {"cmd": "sql", "query": HISTORY_QUERY, "ref": HISTORY_REF}
                self.analytics_link.send(encoder.encode(request), zmq.NOBLOCK)
        if config.metrics.prometheus:
            try:
                self.prometheus = serve_prometheus(config.metrics.prometheus, self.sampler)
            except OSError as error:
                self.close()
                detail = f"cannot serve Prometheus on {config.metrics.prometheus}: {error.strerror}"
                raise NodeError(detail) from None
            host, port = self.prometheus.server_address[:2]
            self.endpoints["prometheus"] = f"http://{host}:{port}/metrics"
        self.sampler.start()

    def _serve_inbox(self) -> None:
        """Send what the node's other threads handed over: market-data messages, rollups."""
        while True:
            try:
                message = msgspec.msgpack.decode(self.inbox.recv(zmq.NOBLOCK), type=dict)
            except zmq.Again:
                return
            if message["kind"] == "publish":
                self.market_data.send_multipart([message["topic"], message["payload"]])
            elif message["kind"] == "rollup" and self.analytics_link is not None:
                body = {"cmd": "metrics", "rows": message["rows"], "ref": ROLLUP_REF}
                self.analytics_link.send(encoder.encode(body), zmq.NOBLOCK)

    def _stop_analytics(self) -> None:
        process = self.analytics_process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=ANALYTICS_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def set_halted(self, market: str, halted: bool) -> None:
        (self.halted.add if halted else self.halted.discard)(market)
        self.store.put_meta_list(b"halted", sorted(self.halted))
        log.info("market %s %s", market, "halted" if halted else "resumed")

    def status(self) -> dict[str, Any]:
        engine = self.durable.engine
        return {
            "name": self.config.node.name,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.metrics.started, 3),
            "endpoints": self.endpoints,
            "server_public_key": self.server_public_key,
            "seq": engine.seq,
            "journal_length": self.durable.journal_length,
            "state_hash": f"{self.durable.book_hash.value:016x}",
            "markets": len(engine.books),
            "halted": sorted(self.halted),
            "resting_orders": sum(len(book.orders) for book in engine.books.values()),
            "peers_registered": len(self.allowlist.current.peers),
            "peers_seen": sorted(self.peer_identity),
            "analytics": self.analytics_lag if self.config.analytics.enabled else "off",
        }

    # -- shutdown -----------------------------------------------------------------------------

    def close(self) -> None:
        sampler = getattr(self, "sampler", None)
        if sampler is not None:
            sampler.stop()
            if sampler.is_alive():
                sampler.join(timeout=5)
        if getattr(self, "prometheus", None) is not None:
            self.prometheus.shutdown()
            self.prometheus.server_close()
            self.prometheus = None
        self._stop_analytics()
        if getattr(self, "context", None) is not None:
            if self._auth is not None:
                self._auth.stop()
            self.context.destroy(linger=0)
            self.context = None
        if getattr(self, "store", None) is not None:
            self.store.close()
            self.store = None
        self.home.runtime_path.unlink(missing_ok=True)


_UNREGISTERED = Peer(name="", public_key="", owners=(), disabled=False)
"""A key that got in but is no longer registered (revoked while connected): acts for no one."""


class _Envelope(msgspec.Struct):
    """What can be read of any message: its version and its ref."""

    v: int
    ref: Any = None


_decode_envelope = msgspec.msgpack.Decoder(_Envelope).decode


def _envelope_of(payload: Any) -> _Envelope | None:
    try:
        return _decode_envelope(payload)
    except BAD_INPUT:
        return None


def _decode_one(raw: msgspec.Raw) -> object:
    """One command of a submit that did not decode whole: the command, or its malformed reject."""
    try:
        return _command_decoder.decode(raw)
    except BAD_INPUT as error:
        echo = echo_fields(_any_decoder, raw)
        op, market, order_id, owner = (echo.get(k) for k in ("op", "market", "id", "owner"))
        return Rejected(None, op, market, order_id, owner, MALFORMED, str(error))


def _failed(
    identity: bytes, peer: Peer | None, name: str, reason: str, detail: str, ref: Any = None
) -> Pending:
    """A message answered with an error (nothing of it reached the engine)."""
    error = ErrorReply(PROTOCOL_VERSION, reason, detail, ref)
    return Pending(identity, peer, name, ref, build=lambda: error)

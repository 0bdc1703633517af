"""The running node: one thread serving the order, admin and analytics sockets around the
durable engine.

The hot loop, LMAX style: poll; drain up to a batch of messages from the order socket; decode
each (protocol), admit it (gateway), apply its commands (engine); commit the whole batch to LMDB
in one synced transaction; only then answer, report and publish (answers, market data). The
admin socket and the analytics link are served by the same thread between batches, so nothing
needs a lock. What the loop drives lives in the modules beside this one: sockets (set-up and
CURVE), connections (who is who), gateway, requests (non-submit requests), answers, marketdata,
admin, analytics_link, settlement_link (the relayer) and instruments (metrics and scaling).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import threading
import time
from typing import Any

import zmq

from ..core.compiled import configure_core, writer_classes
from ..core.reasons import CancelReason
from ..home.config import NodeConfig
from ..home.layout import Home
from ..home.peers import AllowlistFile
from ..ops.metrics import LoopMetrics
from ..protocol.decoding import keep_nesting_bounded
from ..store.durable import CommitFailed, DurableEngine
from ..store.lmdb_store import Store, StoreError
from .admin import AdminDesk
from .admission import Admission
from .analytics_link import AnalyticsLink
from .answers import Outbox, Pending
from .cancelling import cancel_expired, cancel_orders
from .connections import Connections
from .departures import Departures
from .errors import NodeError
from .gateway import Gateway
from .instruments import Instruments, relay_inbox, start_instruments
from .intake import FairShare, drain
from .intake_watch import IntakeWatch
from .liquidity_link import LIQUIDITY_CLOSE_S, LiquidityLink
from .marketdata import MarketDataPublisher
from .requests import PeerRequests
from .settlement_link import SettlementLink
from .signed_intake import SignedIntake
from .sockets import NodeSockets
from .store_guard import StoreGuard
from .subscribers import Subscribers
from .taking import MessageTaker
from .view import NodeView

__all__ = ["Node", "NodeError"]

POLL_MS = 20
"""The loop wakes at least this often: a wake with nothing on the order socket is a drain the
intake watch waits for (intake_watch.py), and housekeeping runs on time."""
_NOBLOCK = int(zmq.NOBLOCK)
HOUSEKEEPING_S = 0.5
"""How often the allowlist file is checked, the analytics lag asked and late analytics
requests expired."""

log = logging.getLogger("marketnode.node")


class Node:
    """A node serving one home. `start()` binds, `serve()` runs until stopped, then closes."""

    def __init__(self, home: Home, config: NodeConfig) -> None:
        self.home = home
        self.config = config
        self.stopping = False
        self.metrics = LoopMetrics(started=time.time())
        self.run = time.time_ns() // 1_000_000
        """This run's id (its start, ms since the epoch): market-data seqs count within it."""
        self.endpoints: dict[str, str] = {}
        self.server_public_key = ""
        self.matching_thread: int | None = None
        """Native id of the thread running `serve` (for its CPU in the metrics)."""
        self.store: Store | None = None
        self.sockets: NodeSockets | None = None
        self.analytics: AnalyticsLink | None = None
        self.settlement: SettlementLink | None = None
        self.liquidity: LiquidityLink | None = None
        self.instruments = Instruments()
        self.intake_watch: IntakeWatch | None = None
        self.admission: Admission | None = None
        self.signed: SignedIntake | None = None
        self._next_housekeeping = 0.0

    # -- start-up -----------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        keep_nesting_bounded()
        try:
            self.store = Store(
                self.home.store_path(config), map_size=config.store.map_size, sync=config.store.sync
            )
        except StoreError as error:
            raise NodeError(f"{error} (is a node already running on {self.home.path}?)") from None
        try:
            self._assemble()
        except BaseException:
            self.close()
            raise
        self._write_runtime_file()
        gc.freeze()
        log.info(
            "node %r started (pid %d): orders %s, market data %s, admin %s; server key %s",
            config.node.name, os.getpid(), self.endpoints["orders"], self.endpoints["market_data"],
            self.endpoints["admin"], self.server_public_key,
        )  # fmt: skip

    def _assemble(self) -> None:
        """The engine from the store, the sockets, and the parts the loop drives."""
        config, store = self.config, self.store
        configure_core(config.engine.core)  # before the engine is built: it picks the core
        self.durable = DurableEngine(store)
        self.durable.configure(config.markets)
        halted = set(store.get_meta_list(b"halted"))
        self.gateway = Gateway(self.durable.engine, config.limits, halted)
        allowlist = AllowlistFile(self.home.peers_path(config))
        if allowlist.error:
            raise NodeError(allowlist.error)
        self.allowlist = allowlist
        sockets = self.sockets = NodeSockets(self.home, config, allowlist)
        self.endpoints = sockets.endpoints
        self.server_public_key = sockets.server_public_key
        self.connections = Connections(allowlist, config.security.curve)
        limits = config.limits
        self.intake_watch = IntakeWatch(
            self.endpoints["orders"], limits.max_message_bytes, limits.receive_queue_messages
        )
        self.intake_watch.start()
        self.admission = Admission(self.endpoints["orders"], limits.accept_rate_per_s)
        self.admission.start()
        self.fair_share = FairShare()
        self.departures = Departures(
            sockets.monitor, self.connections, self.intake_watch, self.admission
        )
        self.store_guard = StoreGuard(
            self.durable, self.gateway, self.metrics, config.store.retry_commit_s
        )
        replies, market_data = writer_classes(self.durable.engine)  # None, None: Python engine
        self.outbox = Outbox(sockets.orders, self.metrics, self.connections.identity_of, replies)
        self.market_data = MarketDataPublisher(sockets.market_data, self.run, market_data)
        self.subscribers = Subscribers(sockets.market_data)
        self.view = NodeView(
            config,
            self.durable,
            halted,
            self.market_data,
            self.connections,
            allowlist,
            self.metrics,
            self.endpoints,
            self.server_public_key,
            analytics_status=lambda: self.analytics.status(),
            settlement_status=lambda: self.settlement.status(),
            liquidity_status=lambda: self.liquidity.status(),
            admission_status=self.admission.status,
            cancel_orders_of=self.cancel_orders_of,
            stop=self.stop,
        )
        self.requests = PeerRequests(self.view)
        if any(spec.signatures != "off" for spec in config.markets):
            self.signed = SignedIntake(config.settlement, self.durable.engine.books)
        self.taker = MessageTaker(
            self.connections, self.gateway, self.durable, self.requests, self.metrics, self.signed
        )
        self.admin = AdminDesk(sockets.admin, self.view)
        self.analytics = AnalyticsLink(
            self.home, config.analytics.enabled, sockets.context, self.market_data.send,
            self.admin.reply, nice=config.analytics.nice,
        )  # fmt: skip
        self.admin.analytics = self.analytics
        self.analytics.start()
        self.settlement = SettlementLink(
            self.home, config.settlement, sockets.context, self.durable, self.outbox,
            self.market_data, self.store_guard,
        )  # fmt: skip
        self.settlement.start()
        self.liquidity = LiquidityLink(self.home, config.liquidity.instances)
        self.liquidity.start()
        self.instruments = start_instruments(
            self.home,
            config,
            self.metrics,
            books=lambda: self.durable.engine.books,
            lmdb_env=store.env,
            analytics=self.analytics,
            matching_thread=lambda: self.matching_thread,
            context=sockets.context,
            endpoints=self.endpoints,
            waiting=lambda: self.intake_watch.waiting_commands(self.metrics.commands),
        )
        self.view.sampler = self.instruments.sampler
        self.view.subscribers = self.subscribers
        self.view.scaler = self.instruments.scaler

    def status(self) -> dict[str, Any]:
        """What the admin `status` answers."""
        return self.view.status()

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
        sockets, analytics = self.sockets, self.analytics
        link = analytics.socket
        poller = zmq.Poller()
        market_data = sockets.market_data
        signed = self.signed
        verdicts = signed.pool.socket if signed is not None else None
        notices = self.settlement.socket
        polled = (sockets.orders, sockets.admin, sockets.monitor, sockets.inbox, link, market_data,
                  verdicts, notices)  # fmt: skip
        for sock in polled:
            if sock is not None:
                poller.register(sock, zmq.POLLIN)
        watch = self.intake_watch
        try:
            # after a stop, served on while the liquidity process cancels its quotes
            while not self.stopping or self.liquidity.closes_within(LIQUIDITY_CLOSE_S):
                # held messages whose turn has come are served without waiting for a socket
                ready = dict(poller.poll(0 if signed is not None and signed.ready else POLL_MS))
                # disconnections first, a slice at a time (Departures); a descriptor reused
                # before its old connection's event is read is sorted out by Connections
                if sockets.monitor in ready:
                    self._on_disconnects()
                if verdicts is not None and verdicts in ready:
                    signed.collect()
                if sockets.orders in ready or (signed is not None and signed.ready):
                    self._serve_batch()
                else:
                    watch.drains += 1  # nothing complete waiting (intake_watch)
                if sockets.admin in ready:
                    self.admin.serve()
                if link is not None and link in ready:
                    analytics.serve()
                if market_data in ready:
                    self.subscribers.drain()
                if sockets.inbox in ready:
                    relay_inbox(sockets.inbox, self.market_data, self.analytics)
                if notices is not None and notices in ready:
                    self.settlement.serve()  # trades that failed on chain (settlement_link)
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
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_S
        if self.signed is not None:
            self.signed.collect()  # dead verifier workers are noticed here
            self._cancel_expired()
        self.analytics.ask_lag()  # the answer lands in analytics.lag, for `status`
        self.analytics.expire()
        self.settlement.supervise()
        self.liquidity.supervise()
        self.store_guard.retry()
        self.departures.lines.flush()
        if self.sockets.key_check is not None:
            self.sockets.key_check.refusals.flush()
        if self.allowlist.refresh():
            log.info("peer allowlist reloaded: %d peers", len(self.allowlist.current.peers))
        elif self.allowlist.error:
            log.error("%s (keeping the previous allowlist)", self.allowlist.error)

    def _serve_batch(self) -> None:
        """One batch: held messages whose signatures are checked, then drain, decode, admit
        and apply, commit, then answer, report, publish."""
        self._on_disconnects()
        if self.signed is not None:
            self._cancel_expired()
        started = time.perf_counter_ns()
        metrics = self.metrics
        commands_before = metrics.commands
        budget = self.config.store.batch_size
        out: list = []
        pending: list[Pending] = list(self.taker.release(out))
        take = self.taker.take
        share = self.fair_share
        share.clear()
        for identity, body, frames in drain(self.sockets.orders, self.intake_watch, metrics):
            received_ns = time.perf_counter_ns()
            message = take(identity, body, frames, out)
            if message is None:
                continue  # held (signed_intake): answered in a later batch
            message.received_ns = received_ns
            pending.append(message)
            budget -= len(message.events) if message.events else 1
            if budget <= 0:
                metrics.saturated_batches += 1
                break
            if share.full(identity, message.events is None):
                break
        if not pending:
            return
        metrics.messages += len(pending)
        metrics.batch_commands.record(metrics.commands - commands_before)
        changed = self.store_guard.commit_batch(pending)
        metrics.batches += 1
        books = self.durable.engine.books
        trades = self.outbox.answer(pending, books)
        self.market_data.publish(books, trades, changed)
        metrics.busy_ns += time.perf_counter_ns() - started

    # -- peers going away and being disabled --------------------------------------------------

    def _on_disconnects(self) -> None:
        leaving = self.departures.drain()
        if leaving:
            self._cancel_orders(set(leaving), CancelReason.DISCONNECT)

    def _cancel_expired(self) -> None:
        """Cancel the signed orders whose expiry has come (journaled cancels, `expired`)."""
        next_expiry = self.durable.engine.next_expiry()
        if next_expiry is None or next_expiry > self.taker.clock():
            return
        try:
            cancel_expired(self.durable, self.outbox, self.market_data, self.taker.clock())
        except CommitFailed as error:
            self.store_guard.failed(error)
            log.error("could not cancel expired orders: %s", error)

    def cancel_orders_of(self, name: str, why: str) -> int:
        """Cancel every resting order placed by peer `name` (see `_cancel_orders`)."""
        return self._cancel_orders({name}, why)

    def _cancel_orders(self, names: set[str], why: str) -> int:
        """Cancel every resting order placed by the peers `names`: one batch of its own,
        journaled, reported to each peer and published like any other; the count cancelled
        (0, orders kept, when the store cannot commit: they are not cancelled until it can)."""
        try:
            return cancel_orders(self.durable, self.outbox, self.market_data, names, why)
        except CommitFailed as error:
            self.store_guard.failed(error)
            log.error("could not cancel the orders of %s (%s): %s", sorted(names), why, error)
            return 0

    # -- shutdown -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop what runs beside the loop and release the store (safe after a failed start)."""
        self.instruments.close()
        if self.signed is not None:
            self.signed.close()
            self.signed = None
        for watcher in (self.intake_watch, self.admission):
            if watcher is not None:
                watcher.close()
        for child in (self.analytics, self.settlement, self.liquidity):
            if child is not None:
                child.stop()
        if self.sockets is not None:
            self.sockets.close()
            self.sockets = None
        if self.store is not None:
            self.store.close()
            self.store = None
        self.home.runtime_path.unlink(missing_ok=True)

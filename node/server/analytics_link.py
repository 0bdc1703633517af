"""The node's side of its analytics process: starting and stopping the child, and talking to it
over the typed link (node/analytics/link.py) without ever waiting for it.

Every request that expects an answer gets a token and a deadline. The answer, when it comes, is
handed to what the request was for: the operator's admin request it relays, or one of the
node's own (the lag `status` shows, a metrics rollup, the scaling history at start-up). A
request not answered within `answer_within_s` (a stopped, hung or very busy process) is
forgotten; an operator waiting on it is told so.

The process is kept by a `Supervisor` (it dies with the node, and is restarted with a backoff
when it dies alone); `status` says what is really running. Every message carries the link's
token, a random secret the process gets on its stdin: another local process reaching the ipc
socket without it gets nothing. A send never waits and never fails the loop: a full or absent
process loses the message (counted in `dropped`, logged once per episode), and the request is
answered at once as not taken.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from ..analytics.link import (
    AckRequest,
    AlertsPush,
    Answer,
    ExportRequest,
    Hello,
    HistoryRequest,
    LagRequest,
    MetricsRollup,
    SqlRequest,
    TokenRequest,
    answer_decoder,
    link_encoder,
)
from ..core.commands import BAD_INPUT
from ..home.layout import Home
from ..protocol.messages import ALERTS_TOPIC, PROTOCOL_VERSION, AdminReply, AdminRequest, encoder
from .supervisor import Supervisor

ANALYTICS_COMMANDS = ("sql", "analytics", "export", "ack")
"""Admin commands the analytics process answers."""
ANSWER_WITHIN_S = 10.0
"""How long a request waits for the analytics process: longer than an operator's tools wait
(the CLI 3 s, the dashboard a few), so only a process that is stopped or stuck misses it."""
SERVICE_MODULE = "marketnode.node.analytics.service"
LINK_HWM = 1000
"""Messages queued for the analytics process before sends are dropped (and counted)."""
NOT_TAKEN = "the analytics process is not taking requests (its queue is full)"

log = logging.getLogger("marketnode.node")


@dataclass(slots=True)
class _Waiting:
    deadline: float
    answered: Callable[[Answer], None]
    expired: Callable[[], None] | None = None


class AnalyticsLink:
    """The analytics process (when `[analytics] enabled`) and the DEALER socket to it."""

    def __init__(
        self,
        home: Home,
        enabled: bool,
        context: zmq.Context,
        publish: Callable[[bytes, bytes], None],
        reply_admin: Callable[[bytes, AdminReply], None],
        nice: int = 0,
    ) -> None:
        """`nice`: the process's niceness above the node's (`[analytics] nice`)."""
        self.home = home
        self.enabled = enabled
        self.publish = publish
        """Sends a market-data message (topic, payload): where alerts go."""
        self.reply_admin = reply_admin
        self.answer_within_s = ANSWER_WITHIN_S
        self.token = secrets.token_hex(32).encode()
        """Sent with every message; the process refuses anything without it."""
        self.supervisor = Supervisor(
            "analytics", SERVICE_MODULE, [str(home.path)], secret=self.token, nice=nice
        )
        self.lag: dict[str, Any] | None = None
        """The running process's last answer to the node's periodic lag request."""
        self.waiting: dict[int, _Waiting] = {}
        self.dropped = 0
        """Messages the process could not take (full queue, or no process)."""
        self._dropping = False
        self._deaths_seen = 0
        self._tokens = itertools.count(1)
        self._lag_token = 0
        self.socket: zmq.Socket | None = None
        if enabled:
            self.socket = context.socket(zmq.DEALER)
            self.socket.linger = 0
            self.socket.sndhwm = LINK_HWM
            self.socket.connect(home.analytics_endpoint)
            self._send(Hello())

    # -- the process ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.enabled:
            self.supervisor.start()

    @property
    def process(self) -> subprocess.Popen | None:
        return self.supervisor.process

    @property
    def pid(self) -> int | None:
        return self.supervisor.pid

    def status(self) -> Any:
        """For the admin `status`: "off"; the process's state and its last lag while it runs
        and has answered; else its state ("running since ...", "died at ..., restarting ...")."""
        if not self.enabled:
            return "off"
        state = self.supervisor.status()
        self._forget_the_dead()
        if self.lag is not None:
            return {"state": state, **self.lag}
        return state

    def supervise(self) -> None:
        """Notice the process's death and restart it when due (it is told who to push alerts
        to)."""
        if not self.enabled:
            return
        restarted = self.supervisor.tend()
        self._forget_the_dead()
        if restarted:
            self._send(Hello())

    def _forget_the_dead(self) -> None:
        """After a death: its lag is forgotten, what it was asked answered as failed."""
        if self.supervisor.deaths != self._deaths_seen:
            self._deaths_seen = self.supervisor.deaths
            self.lag = None
            cause = self.supervisor.death.cause if self.supervisor.death else "restarted"
            self._fail_waiting(f"the analytics process died ({cause})")

    def stop(self) -> None:
        self.supervisor.stop()

    # -- asking ---------------------------------------------------------------------------------

    def forward(self, identity: bytes, request: AdminRequest) -> AdminReply | None:
        """Pass an operator's analytics request on without waiting (None: its answer is
        relayed when it comes, or it expires); an immediate refusal otherwise."""
        if not self.enabled:
            return _refused("analytics is off ([analytics] enabled = false)", request.ref)
        if not self.supervisor.running:
            return _refused(f"analytics is not running: {self.supervisor.status()}", request.ref)
        token = next(self._tokens)
        if request.cmd == "sql":
            if request.query is None:
                return _refused("sql: send a query", request.ref)
            asked: TokenRequest = SqlRequest(token, request.query, request.params)
        elif request.cmd == "export":
            if request.path is None:
                return _refused("export: send a path", request.ref)
            asked = ExportRequest(token, request.path)
        elif request.cmd == "ack":
            asked = AckRequest(token, request.alert, request.label)
        else:
            asked = LagRequest(token)
        ref = request.ref

        def answered(answer: Answer) -> None:
            reply = AdminReply(PROTOCOL_VERSION, answer.ok, answer.result, answer.error, ref)
            self.reply_admin(identity, reply)

        def expired() -> None:
            error = f"analytics did not answer within {self.answer_within_s:g} s"
            self.reply_admin(identity, _refused(error, ref))

        self._ask(asked, answered, expired)
        return None

    def ask_lag(self) -> None:
        """The node's periodic look at its process: supervise it, then ask its lag (one
        request at a time: a stalled process is not piled on)."""
        self.supervise()
        if self.supervisor.running and self._lag_token not in self.waiting:
            self._lag_token = next(self._tokens)
            self._ask(LagRequest(self._lag_token), self._lag_answered)

    def _lag_answered(self, answer: Answer) -> None:
        self.lag = answer.result

    def store_rollup(self, rows: list[list[Any]]) -> None:
        """A minute of the node's metrics for the analytics store."""
        if self.socket is not None:
            self._ask(MetricsRollup(next(self._tokens), rows), _rollup_answered)

    def ask_history(self, query: str, seed: Callable[[list], None]) -> None:
        """The rows of `query` over the rollups of earlier runs, for `seed`, when they come."""
        if self.socket is None:
            return

        def answered(answer: Answer) -> None:
            if answer.ok:
                seed(answer.result["rows"])

        self._ask(HistoryRequest(next(self._tokens), query), answered)

    def _ask(
        self,
        request: TokenRequest,
        answered: Callable[[Answer], None],
        expired: Callable[[], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + self.answer_within_s
        self.waiting[request.token] = _Waiting(deadline, answered, expired)
        if not self._send(request):
            self.waiting.pop(request.token)
            answered(Answer(request.token, False, error=NOT_TAKEN))

    def _send(self, message: Hello | TokenRequest) -> bool:
        """Send without waiting: a full or absent process loses the message (counted; logged
        once until a send succeeds again). False when lost."""
        try:
            self.socket.send_multipart(  # type: ignore[union-attr]
                [self.token, link_encoder.encode(message)], zmq.NOBLOCK
            )
        except zmq.ZMQError as error:
            self.dropped += 1
            if not self._dropping:
                log.warning("analytics link: cannot send (%s); dropping until it can", error)
            self._dropping = True
            return False
        if self._dropping:
            log.info("analytics link: sending again (%d messages dropped)", self.dropped)
        self._dropping = False
        return True

    def _fail_waiting(self, error: str) -> None:
        """Answer every waiting request as failed with `error` (operators are told it)."""
        waiting, self.waiting = self.waiting, {}
        for token, one in waiting.items():
            one.answered(Answer(token, False, error=error))

    # -- hearing --------------------------------------------------------------------------------

    def serve(self) -> None:
        """Hand over every answer that has come, and publish pushed alerts."""
        while True:
            try:
                payload = self.socket.recv(zmq.NOBLOCK)  # type: ignore[union-attr]
            except zmq.Again:
                return
            try:
                message = answer_decoder.decode(payload)
            except BAD_INPUT as error:
                log.error("analytics sent an unreadable message: %s", error)
                continue
            if type(message) is AlertsPush:
                for alert in message.alerts:
                    self.publish(ALERTS_TOPIC, encoder.encode(alert))
                log.warning("integrity: %d new alerts published", len(message.alerts))
                continue
            waiting = self.waiting.pop(message.token, None)
            if waiting is not None:  # else: expired already
                waiting.answered(message)

    def expire(self) -> None:
        """Forget the requests past their deadline, telling the operators waiting on them."""
        now = time.monotonic()
        late = [token for token, waiting in self.waiting.items() if waiting.deadline <= now]
        for token in late:
            expired = self.waiting.pop(token).expired
            if expired is not None:
                expired()
        if self._lag_token in late:
            self.lag = None  # a process that does not answer is not known to be 0 behind
        if late:
            log.warning("analytics did not answer %d requests in time", len(late))


def _refused(error: str, ref: Any) -> AdminReply:
    return AdminReply(PROTOCOL_VERSION, False, error=error, ref=ref)


def _rollup_answered(answer: Answer) -> None:
    if not answer.ok and answer.error != NOT_TAKEN:  # a lost send is logged once per episode
        log.error("analytics refused a metrics rollup: %s", answer.error)

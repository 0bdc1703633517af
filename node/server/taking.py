"""Taking one message of a batch: who sent it, what it asks, admission and the engine, or a
place in its connection's queue while signatures are checked (signed_intake).

The answer of every message waits in its `Pending` until the batch's commit. A message that
must wait for signature checks, or that arrives behind one that does, is held; `release`
applies the held messages whose turn it is, in their connection's order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import msgspec
import zmq

from ..core.commands import Clock
from ..core.compiled import intake_function
from ..core.events import Rejected
from ..core.reasons import Reason
from ..ops.metrics import LoopMetrics
from ..protocol.decoding import NOT_ONE_FRAME, decode_command, decode_request
from ..protocol.messages import DecodedSubmit, ErrorReply, Submit
from ..store.durable import DurableEngine
from .answers import Pending
from .connections import Connections
from .gateway import Gateway
from .requests import PeerRequests
from .signed_intake import Held, SignedIntake, check_reject, signed_commands


class MessageTaker:
    """Decodes, admits and applies the order socket's messages (matching thread only)."""

    def __init__(
        self,
        connections: Connections,
        gateway: Gateway,
        durable: DurableEngine,
        requests: PeerRequests,
        metrics: LoopMetrics,
        signed: SignedIntake | None,
    ) -> None:
        self.connections = connections
        self.gateway = gateway
        self.durable = durable
        self.requests = requests
        self.metrics = metrics
        self.signed = signed
        """None when no market takes signed orders (no verifier processes, no holding)."""
        self._clock = 0
        self._admit_and_apply = intake_function(durable.engine)
        """The compiled core's `apply` of a message not held, if the engine is of that core."""

    def clock(self) -> int:
        """The node's clock for signed orders, unix seconds. It never goes back, even if the
        system's does: an order the checks found expired (and whose signature they then did
        not check) is still expired when the engine sees it, by a later reading."""
        self._clock = max(int(time.time()), self._clock, self.durable.engine.now)
        return self._clock

    def take(self, identity: bytes, body: zmq.Frame, frames: int, out: list) -> Pending | None:
        """Decode and process one message; what it is owed waits in the returned Pending, or
        None when the message is held (signed_intake)."""
        signed = self.signed
        if frames != 1:
            return self._answer(Pending(identity, None, "", build=lambda: NOT_ONE_FRAME))
        connections = self.connections
        peer = connections.peer_of(body)
        name = peer.name if peer is not None else f"anon-{identity.hex()}"
        if name:
            connections.identity_of[name] = identity
            if peer is not None and identity not in connections.known:
                connections.register(name, identity, body.get(zmq.SRCFD))
        request = decode_request(body.buffer)
        kind = type(request)
        if kind is DecodedSubmit or kind is Submit:
            refusal = self.gateway.refuse_message(len(request.cmds), request.ref) or (
                None if request.cmds else self.gateway.refuse_request(peer, request)
            )
            if refusal is not None:
                return self._answer(
                    Pending(identity, peer, name, refusal.ref, build=lambda: refusal)
                )
            message = Pending(identity, peer, name, request.ref)
            if signed is not None and (signed.holding(identity) or _has_signed(request)):
                self._hold(message, request.cmds)
                return None
            self.apply(message, request.cmds, out)
            return message
        if kind is ErrorReply:
            return self._answer(Pending(identity, peer, name, request.ref, build=lambda: request))
        throttled = self.gateway.refuse_request(peer, request)
        if throttled is not None:
            return self._answer(Pending(identity, peer, name, request.ref, build=lambda: throttled))
        build = self.requests.answer_of(request, peer, name)
        return self._answer(Pending(identity, peer, name, request.ref, build=build))

    def _answer(self, message: Pending) -> Pending | None:
        """A message answered from committed state: now, or in its place behind held ones."""
        if self.signed is not None and self.signed.holding(message.identity):
            message.received_ns = time.perf_counter_ns()
            self.signed.queue(Held(message))
            return None
        return message

    def _hold(self, message: Pending, raw: list) -> None:
        """Hold a submit: its message-level admission now (its tokens, as for any message),
        its commands' once its turn comes."""
        commands = [decode_command(command) if type(command) is msgspec.Raw else command
                    for command in raw]  # fmt: skip
        refused, allowed = self.gateway.admit_message(message.peer, len(commands))
        message.received_ns = time.perf_counter_ns()
        held = Held(message, commands, refused, allowed)
        self.signed.hold(held, self.durable.engine.books, self.clock())

    def release(self, out: list) -> Iterator[Pending]:
        """Apply the held messages whose turn it is, each before the next is looked at."""
        if self.signed is None:
            return
        books = self.durable.engine.books
        for held in self.signed.release(books, self.clock()):
            if held.commands is not None:
                self.apply(held.pending, held.commands, out, held)
            yield held.pending

    def apply(self, message: Pending, commands: list, out: list, held: Held | None = None) -> None:
        """Admit and apply a submit's commands (decoded, or Raw when one of them did not
        decode). Answers and events are appended to `out` in order; the message keeps its
        slice of them. A held message brings its admission and its signature checks. With the
        compiled core, a message not held takes the same steps in its `admit_and_apply`."""
        peer = message.peer
        name = message.name
        durable = self.durable
        first = len(out)
        self.metrics.commands += len(commands)
        orders = self.metrics.orders
        decoded = message.commands = []
        if held is None:
            refused, allowed = self.gateway.admit_message(peer, len(commands))
            checks = {}
            if self._admit_and_apply is not None:
                self._admit_and_apply(
                    durable.engine, durable.uncommitted_commands, commands, out, decoded, orders,
                    name, *self.gateway.rules_for(peer), refused, allowed, decode_command,
                )  # fmt: skip
                message.events = out[first:]
                return
        else:
            refused, allowed, checks = held.refused, held.allowed, held.verdicts
        past_allowed = refused or Reason.THROTTLED
        engine_process = durable.process
        admit = self.gateway.admit
        books = durable.engine.books
        for index, command in enumerate(commands):
            if type(command) is msgspec.Raw:
                command = decode_command(command)
            if type(command) is Rejected:
                decoded.append(command)
                out.append(command)
                continue
            decoded.append(command)
            market = command.market
            if type(market) is str and market in books:  # never a key per made-up name
                orders[market] += 1
            check = checks.get(index) if checks else None
            if check is not None and check.reason not in (None, Reason.EXPIRED):
                out.append(check_reject(command, check))
                continue
            if check is not None:
                now = self.clock()
                if durable.engine.now != now:
                    engine_process(Clock(now), [])
            rejected = admit(
                peer,
                name,
                command,
                refused if index < allowed else past_allowed,
                check.order_hash if check is not None else None,
            )
            if rejected is None:
                engine_process(command, out)
            else:
                out.append(rejected)
        message.events = out[first:]


def _has_signed(request: DecodedSubmit | Submit) -> bool:
    """Does the submit carry a signed command? (One whose commands did not all decode is
    looked at command by command.)"""
    if type(request) is DecodedSubmit:
        return signed_commands(request.cmds)
    decoded = [decode_command(command) for command in request.cmds]
    return signed_commands(decoded)

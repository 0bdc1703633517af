"""The gateway: what the node checks about a peer's message and commands before the engine sees
them.

These checks depend on who sent the command and on node state outside the books (the allowlist,
halted markets, rate buckets), so they are answered here, with `seq` null, and never journaled:
a replay of the journal needs none of them to reproduce the books. Every request takes tokens
from its peer's bucket, not only commands (`request_cost`), so no request is free to flood
with. The gateway also stamps what
only the node may say about a command: which peer placed a new order, and that a peer's cancel
is the peer's own (reason `user`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from ..core.commands import CancelOrder, NewOrder, PeerCommand, ReplaceOrder
from ..core.engine import Engine
from ..core.events import Rejected
from ..core.reasons import Reason
from ..home.config import LimitsConfig
from ..home.peers import Peer
from ..protocol.messages import PROTOCOL_VERSION, ErrorReply, SnapshotRequest

REQUEST_COST = 1
"""Tokens a `ping`, `open_orders`, `markets`, `whoami` or empty `submit` takes: about what one
command costs the loop (a decode, an answer)."""
SNAPSHOT_COST = 10
"""Tokens a `snapshot` takes on top of one per `SNAPSHOT_LEVELS_PER_TOKEN` price levels: its
answer encodes the whole book, so a peer asking for it in a loop pays for what it makes the loop
build."""
SNAPSHOT_LEVELS_PER_TOKEN = 10
ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}")
_monotonic = time.monotonic


class TokenBucket:
    """`rate` tokens a second up to `burst`; one command takes one token, another request
    its cost (all of it or none)."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: int, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, wanted: int) -> int:
        """Take up to `wanted` tokens; return how many were available. (Once per message:
        conditionals rather than `min`, which costs a call each.)"""
        now = _monotonic()
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        granted = int(tokens)
        if granted > wanted:
            granted = wanted
        self.tokens = tokens - granted
        return granted

    def take_all(self, wanted: int) -> bool:
        """Take `wanted` tokens if there are that many (then True), else none."""
        granted = self.take(wanted)
        if granted == wanted:
            return True
        self.tokens += granted
        return False


class Gateway:
    """Admission of peers' messages and commands, in the documented order (docs/protocol.md
    §10): a message with too many commands is refused whole; then, once per message, a store
    that cannot commit, a disabled peer and the peer's rate; then per command: the node-set
    fields, authorization, halted markets (new orders and replaces only: a cancel is always
    taken) and open-order limits.

    `peer` None means CURVE is off: every owner is allowed and nothing is rate-limited (a
    closed test box).
    """

    def __init__(self, engine: Engine, limits: LimitsConfig, halted: set[str]) -> None:
        self.engine = engine
        self.limits = limits
        self.halted = halted
        self.buckets: dict[str, TokenBucket] = {}
        self.store_available = True
        """False while the store cannot commit: every command is refused `store_unavailable`."""
        self.signing = {symbol for symbol, book in engine.books.items()
                        if book.market.signatures != "off"}  # fmt: skip
        """Markets taking signed orders, where an owner that is an address is one wallet
        however it is spelled: written in lowercase, as a signed order's owner is."""

    def refuse_message(self, commands: int, ref: Any) -> ErrorReply | None:
        """The `error` refusing a whole submit of `commands` commands, if it has too many."""
        limit = self.limits.max_commands_per_message
        if commands <= limit:
            return None
        detail = f"at most {limit} per message"
        return ErrorReply(PROTOCOL_VERSION, Reason.TOO_MANY_COMMANDS, detail, ref)

    def admit_message(self, peer: Peer | None, commands: int) -> tuple[Reason | None, int]:
        """For a message of `commands` commands: a reason refusing all of them, and how many of
        them the peer's rate allows (the rest are `throttled`)."""
        if not self.store_available:
            return Reason.STORE_UNAVAILABLE, 0
        if peer is None:
            return None, commands
        if peer.disabled:
            return Reason.PEER_DISABLED, 0
        return None, self._bucket(peer).take(commands)

    def refuse_request(self, peer: Peer | None, request: Any) -> ErrorReply | None:
        """The `throttled` error for a request other than a submit with commands (a ping, an
        empty submit...) when its peer's bucket lacks its cost; None: it is answered."""
        if peer is None:
            return None
        # never more than the burst: a request dearer than a full bucket could never be served
        cost = min(self.request_cost(request), self.limits.peer_burst)
        if self._bucket(peer).take_all(cost):
            return None
        detail = f"this request takes {cost} tokens of peer_rate_per_s"
        return ErrorReply(PROTOCOL_VERSION, Reason.THROTTLED, detail, request.ref)

    def request_cost(self, request: Any) -> int:
        """Tokens a request takes: REQUEST_COST, or for a snapshot SNAPSHOT_COST plus one per
        SNAPSHOT_LEVELS_PER_TOKEN levels of the book as it stands."""
        if type(request) is not SnapshotRequest:
            return REQUEST_COST
        book = self.engine.books.get(request.market)
        levels = len(book.bids.levels) + len(book.asks.levels) if book is not None else 0
        return SNAPSHOT_COST + levels // SNAPSHOT_LEVELS_PER_TOKEN

    def _bucket(self, peer: Peer) -> TokenBucket:
        bucket = self.buckets.get(peer.name)
        if bucket is None:
            limits = self.limits
            bucket = self.buckets[peer.name] = TokenBucket(
                limits.peer_rate_per_s, limits.peer_burst
            )
        return bucket

    def admit(
        self,
        peer: Peer | None,
        name: str,
        command: PeerCommand,
        refused: Reason | None,
        order_hash: str | None = None,
    ) -> Rejected | None:
        """None if the engine may take `command` from peer `name`, else its reject. `refused`
        is what the message-level checks decided for this command (a reason, or None), and
        `order_hash` the digest its signature was verified over (signed_intake), if any.

        Stamps the command on the way: a new order carries `name`, a cancel no reason of its
        own (only the node cancels for other reasons), either the verified digest or none. A
        `peer`, `reason` or `order_hash` sent by the client is replaced (the decoder has
        already refused one of the wrong type).
        """
        kind = type(command)
        if kind is NewOrder:
            command.peer = name
            command.order_hash = order_hash
        elif kind is CancelOrder:
            command.reason = None
            command.order_hash = order_hash
        market = command.market
        if (
            self.signing
            and type(market) is str
            and market in self.signing
            and ADDRESS.fullmatch(command.owner)
        ):
            command.owner = command.owner.lower()
        reason = refused or self._reason(peer, command)
        if reason is None:
            return None
        return Rejected(
            None, kind.__struct_config__.tag, command.market, command.id, command.owner, reason
        )

    def rules_for(self, peer: Peer | None) -> tuple[Any, set[str], set[str], Callable, int]:
        """What the compiled core's intake (core/compiled/_intake.pxi) applies of `admit` to a
        message of `peer`: whom it may act for (None: anyone), the halted and the signing
        markets, the pattern of an owner that is an address, the open-order limit."""
        owners = None if peer is None or peer.relayer else peer.owners
        limit = self.limits.max_open_orders_per_owner
        return owners, self.halted, self.signing, ADDRESS.fullmatch, limit

    def _reason(self, peer: Peer | None, command: Any) -> Reason | None:
        if peer is not None and not peer.relayer and command.owner not in peer.owners:
            return Reason.NOT_AUTHORIZED
        if self.halted and type(command) is not CancelOrder:
            market = command.market
            if type(market) is str and market in self.halted:
                return Reason.MARKET_HALTED
        if (
            type(command) is NewOrder
            and self.engine.open_orders.get(command.owner, 0)
            >= self.limits.max_open_orders_per_owner
        ):
            return Reason.TOO_MANY_ORDERS
        return self._signature_reason(command)

    def _signature_reason(self, command: Any) -> Reason | None:
        """`bad_signature` for a `replace` of a signed order (its price and quantity are
        signed), and in a market that requires signatures for an unsigned `new` and a cancel
        of a signed order without a verified signature. (A signed `new` the checks could not
        encode, its price off the tick say, is the engine's to refuse.)"""
        market = command.market
        book = self.engine.books.get(market) if type(market) is str else None
        if book is None:
            return None
        kind = type(command)
        if kind is ReplaceOrder:
            resting = book.orders.get((command.owner, command.id))
            return Reason.BAD_SIGNATURE if resting is not None and resting.expiry else None
        if book.market.signatures != "required":
            return None
        if kind is NewOrder:
            return Reason.BAD_SIGNATURE if command.sig is None else None
        resting = book.orders.get((command.owner, command.id))
        if resting is not None and resting.expiry and command.order_hash is None:
            return Reason.BAD_SIGNATURE
        return None

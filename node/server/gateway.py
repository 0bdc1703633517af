"""The gateway: what the node checks about a peer's command before the engine sees it.

These checks depend on who sent the command and on node state outside the books (the allowlist,
halted markets, rate buckets), so they are answered here, with `seq` null, and never journaled:
a replay of the journal needs none of them to reproduce the books.
"""

from __future__ import annotations

import time

from ..core.commands import CancelOrder, NewOrder
from ..core.engine import Engine
from ..home.config import LimitsConfig
from ..home.peers import Peer
from ..protocol.messages import (
    MARKET_HALTED,
    NOT_AUTHORIZED,
    PEER_DISABLED,
    TOO_MANY_ORDERS,
)


class TokenBucket:
    """`rate` tokens a second up to `burst`; one command takes one token."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: int, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, wanted: int) -> int:
        """Take up to `wanted` tokens; return how many were available."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted


class Gateway:
    """Admission of peers' commands: disabled peers and rates (per message), then authorization,
    halted markets (new orders and replaces only: a cancel is always taken) and open-order
    limits."""

    def __init__(self, engine: Engine, limits: LimitsConfig, halted: set[str]) -> None:
        self.engine = engine
        self.limits = limits
        self.halted = halted
        self.buckets: dict[str, TokenBucket] = {}

    def admit_message(self, peer: Peer | None, commands: int) -> tuple[str | None, int]:
        """For a message of `commands` commands: a reason refusing all of them, and how many of
        them the peer's rate allows (the rest are `throttled`)."""
        if peer is None:
            return None, commands
        if peer.disabled:
            return PEER_DISABLED, 0
        bucket = self.buckets.get(peer.name)
        if bucket is None:
            limits = self.limits
            bucket = self.buckets[peer.name] = TokenBucket(
                limits.peer_rate_per_s, limits.peer_burst
            )
        return None, bucket.take(commands)

    def admit(self, peer: Peer | None, command: object) -> str | None:
        """None if the engine may take `command` from `peer`, else the reject reason.

        `peer` None means CURVE is off: every owner is allowed (a closed test box).
        """
        if peer is not None and not peer.relayer and command.owner not in peer.owners:  # type: ignore[attr-defined]
            return NOT_AUTHORIZED
        if self.halted and type(command) is not CancelOrder:
            market = command.market  # type: ignore[attr-defined]
            if type(market) is str and market in self.halted:
                return MARKET_HALTED
        if (
            type(command) is NewOrder
            and self.engine.open_orders.get(command.owner, 0)
            >= self.limits.max_open_orders_per_owner
        ):
            return TOO_MANY_ORDERS
        return None

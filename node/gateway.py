"""The gateway: what the node checks about a peer's command before the engine sees it.

These checks depend on who sent the command and on node state outside the books (the allowlist,
halted markets, rate buckets), so they are answered here, with `seq` null, and never journaled:
a replay of the journal needs none of them to reproduce the books.
"""

from __future__ import annotations

import time

from .commands import NewOrder
from .config import LimitsConfig
from .engine import Engine
from .peers import Peer
from .protocol import (
    MARKET_HALTED,
    NOT_AUTHORIZED,
    PEER_DISABLED,
    THROTTLED,
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

    def take(self) -> bool:
        if self.tokens < 1:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1:
                return False
        self.tokens -= 1
        return True


class Gateway:
    """Admission of peers' commands: authorization, disabled peers, halted markets, rates and
    open-order limits, in that order."""

    def __init__(self, engine: Engine, limits: LimitsConfig, halted: set[str]) -> None:
        self.engine = engine
        self.limits = limits
        self.halted = halted
        self.buckets: dict[str, TokenBucket] = {}

    def admit(self, peer: Peer | None, command: object) -> str | None:
        """None if the engine may take `command` from `peer`, else the reject reason.

        `peer` None means CURVE is off: every command is taken (a closed test box).
        """
        if peer is not None:
            if peer.disabled:
                return PEER_DISABLED
            if not peer.may_act_for(command.owner):  # type: ignore[attr-defined]
                return NOT_AUTHORIZED
            bucket = self.buckets.get(peer.name)
            if bucket is None:
                bucket = self.buckets[peer.name] = TokenBucket(
                    self.limits.peer_rate_per_s, self.limits.peer_burst
                )
            if not bucket.take():
                return THROTTLED
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

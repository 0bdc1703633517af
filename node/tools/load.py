"""Load generation against a running node: paced (open loop) or as fast as a window allows.

Messages are built and encoded before the clock starts, so the generator spends its time
sending and receiving. Paced runs are open loop: what is due is sent whatever the node does, in
ticks of a millisecond, so a stalled node cannot slow the offered load and its stall shows in
the latency (measured from each message's send). A "drop" multiplies the rate for a few
seconds, as a popular mint or sale does.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import zmq

from ..chain.eip712 import Domain, address_from_text
from ..chain.orders import Wallet, chain_settings, sign_command
from ..client import Client, NodeAddress, encode_submit
from ..core.commands import NewOrder
from ..core.markets import Market, MarketSpec
from ..home.config import SettlementConfig
from ..home.keys import KeyPair
from .flow import FlowMix, generate_flow

DRAIN_S = 10.0
"""How long answers still in flight are awaited after the last send."""


@dataclass(frozen=True)
class LoadProfile:
    """What to offer: `rate` orders/s (0: as fast as `window` messages in flight allow) for
    `duration_s` or until `max_orders`, `batch` commands per message, and an optional drop."""

    rate: float = 1000.0
    duration_s: float = 10.0
    batch: int = 1
    window: int = 512
    max_orders: int | None = None
    burst_at_s: float | None = None
    burst_for_s: float = 3.0
    burst_x: float = 10.0

    def rate_at(self, elapsed: float) -> float:
        if self.burst_at_s is not None and 0 <= elapsed - self.burst_at_s < self.burst_for_s:
            return self.rate * self.burst_x
        return self.rate

    def orders_needed(self) -> int:
        """An upper bound on the orders this profile can send (what to generate)."""
        if self.max_orders is not None:
            return self.max_orders
        seconds = self.duration_s
        if self.burst_at_s is not None:
            seconds += self.burst_for_s * (self.burst_x - 1)
        return max(self.batch, int(self.rate * seconds) + self.batch)


@dataclass
class LoadResult:
    sent: int = 0
    messages: int = 0
    answered: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    reports: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.latencies_ms)
        return {
            "sent": self.sent,
            "answered": self.answered,
            "accepted": self.accepted,
            "rejected": sum(self.rejected.values()),
            "rejects": dict(self.rejected),
            "errors": dict(self.errors),
            "reports": self.reports,
            "messages": self.messages,
            "elapsed_s": round(self.elapsed_s, 3),
            "orders_per_s": round(self.answered / self.elapsed_s) if self.elapsed_s else 0,
            "latency_ms": {
                name: round(percentile(latencies, q), 3)
                for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999))
            }
            | {"max": round(latencies[-1], 3) if latencies else 0.0},
        }


SIGNED_MIX = FlowMix(limit=0.55, post_only=0.05, cancel=0, replace=0, ioc=0.3, fok=0.1, market=0)
"""A signed flow's default kinds: a signed order is a limit order (never a market order), and
cancels and replaces, which a signer would have to sign too, are left out; the IOC and FOK
share is larger than the unsigned flow's so that about a third of the orders trade."""
SIGNED_KINDS = ("limit", "post_only", "ioc", "fok")
SIGNED_EXPIRY_S = 86_400
"""How long a signed load's orders stay valid."""


def signed_flow(count: int, seed: int, markets: list[MarketSpec], settlement: SettlementConfig,
                wallets: list[Wallet], mix: FlowMix | None = None, first_id: int = 1,
                ) -> list[NewOrder]:  # fmt: skip
    """`count` orders of the seeded flow over `markets` (each taking signed orders) by
    `wallets`, each signed by its owner for `settlement`'s chain and contract. An order's nonce
    is its id (ids from `first_id` up: new ones for each run, as for any load), its expiry a
    day away and its fee cap its market's fee. Signing takes a few seconds per 10,000 orders,
    before the clock starts."""
    domain = Domain(settlement.chain_id, address_from_text(settlement.contract))
    rules = {spec.symbol: Market(spec) for spec in markets}
    settings = {symbol: chain_settings(market) for symbol, market in rules.items()}
    by_owner = {wallet.text: wallet for wallet in wallets}
    expiry = int(time.time()) + SIGNED_EXPIRY_S
    flow = generate_flow(count, seed=seed, markets=markets, mix=mix or SIGNED_MIX,
                         owner_names=list(by_owner), first_id=first_id)  # fmt: skip
    signed = []
    for command in flow:
        market = rules[command.market]
        terms = msgspec.structs.replace(
            command, chain_id=settlement.chain_id, nonce=command.id, expiry=expiry,
            max_fee_bps=int(market.spec.fee_bps),
        )  # fmt: skip
        signed.append(sign_command(terms, settings[command.market], domain,  # type: ignore[arg-type]
                                   by_owner[command.owner], market))  # fmt: skip
    return signed


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


class _Head(msgspec.Struct):
    event: str
    reason: str | None = None


class _Answer(msgspec.Struct):
    """Just what the generator counts of a node message."""

    type: str
    ref: Any = None
    events: list[_Head] = []
    reason: str | None = None


_decode_answer = msgspec.msgpack.Decoder(_Answer).decode


def encode_messages(commands: Iterable[Any], batch: int) -> Iterator[tuple[int, int, bytes]]:
    """(ref, commands in it, encoded submit) for consecutive batches of `commands`."""
    chunk: list[Any] = []
    ref = 0
    for command in commands:
        chunk.append(command)
        if len(chunk) == batch:
            ref += 1
            yield ref, len(chunk), encode_submit(chunk, ref)
            chunk = []
    if chunk:
        ref += 1
        yield ref, len(chunk), encode_submit(chunk, ref)


def run_load(
    address: NodeAddress,
    key: KeyPair | None,
    commands: Iterable[Any],
    profile: LoadProfile,
    on_progress: Callable[[LoadResult, float], None] | None = None,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Offer `commands` to the node as `profile` says (or until `stop` is set); count answers
    and time them."""
    messages = list(encode_messages(commands, profile.batch))
    # the generator's own collector pauses would be counted as the node's latency
    gc.collect()
    gc.freeze()
    client = Client(address, key)
    socket = client.socket
    result = LoadResult()
    due: dict[int, tuple[float, int]] = {}
    index = 0
    try:
        client.ping()
        start = time.perf_counter()
        next_send = start
        next_progress = start
        stop_sending = start + profile.duration_s
        while True:
            now = time.perf_counter()
            sending = index < len(messages) and now < stop_sending
            if stop is not None and stop.is_set():
                sending, stop_sending = False, min(stop_sending, now)
            if sending:
                if profile.rate <= 0:
                    while index < len(messages) and len(due) < profile.window:
                        ref, count, payload = messages[index]
                        socket.send(payload)
                        due[ref] = (time.perf_counter(), count)
                        index += 1
                        result.sent += count
                else:
                    while index < len(messages) and next_send <= now:
                        ref, count, payload = messages[index]
                        socket.send(payload)
                        due[ref] = (time.perf_counter(), count)
                        index += 1
                        result.sent += count
                        next_send += count / profile.rate_at(next_send - start)
            elif not due or now > stop_sending + DRAIN_S:
                break
            if not sending or (profile.rate <= 0 and len(due) >= profile.window):
                wait_ms = 50  # nothing to send until an answer comes: sleep in poll, not spin
            elif profile.rate <= 0:
                wait_ms = 0
            else:
                # whole milliseconds: what is due within a tick leaves together at its end,
                # rather than spinning on the core the node needs
                wait_ms = max(1, int((next_send - now) * 1000))
            if socket.poll(wait_ms):
                _receive_all(socket, due, result)
            if on_progress is not None and now >= next_progress:
                on_progress(result, now - start)
                next_progress = now + 0.25
        result.elapsed_s = time.perf_counter() - start
        result.messages = index
    finally:
        client.close()
        gc.unfreeze()
    return result


def _receive_all(socket: zmq.Socket, due: dict[int, tuple[float, int]], result: LoadResult) -> None:
    while True:
        try:
            payload = socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        answer = _decode_answer(payload)
        if answer.type == "report":
            result.reports += 1
            continue
        sent_at, count = due.pop(answer.ref, (None, 0))
        if sent_at is None:
            continue
        received = time.perf_counter()
        if answer.type == "error":
            result.errors[answer.reason] += count
            continue
        kinds = [head.event for head in answer.events]
        accepted = kinds.count("accepted")
        rejected = kinds.count("rejected")
        if rejected:
            result.rejected.update(h.reason for h in answer.events if h.event == "rejected")
        result.accepted += accepted
        result.answered += accepted + rejected
        result.latencies_ms.extend([(received - sent_at) * 1000] * (accepted + rejected))

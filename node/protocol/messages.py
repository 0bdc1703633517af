"""The wire protocol: msgpack messages on ZeroMQ sockets, each carrying protocol version `v`.

docs/protocol.md describes it for client authors; this module is its one implementation on the
node's side and the client's. Messages are maps tagged by `type`; commands inside a `submit` are
decoded one by one, so one bad command gets its own `malformed` answer and the rest go on.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..core.commands import PeerCommand
from .settlement import SettlementEvent
from .wire_events import WireEvent

PROTOCOL_VERSION = 1

MARKET_DATA_PREFIX = b"md."
ALERTS_TOPIC = b"alerts."
SCALING_TOPIC = b"scaling."


def market_topic(symbol: str) -> bytes:
    """A market's topic: `md.SYMBOL.` (the trailing dot keeps PUNK-ETH from matching PUNK-ETHX)."""
    return MARKET_DATA_PREFIX + symbol.encode("ascii") + b"."


# -- peer -> node, order socket -------------------------------------------------------------


class Submit(msgspec.Struct, tag="submit", tag_field="type"):
    v: int
    cmds: list[msgspec.Raw]
    ref: Any = None
    """Anything the client likes; echoed in the reply to correlate it."""


class DecodedSubmit(msgspec.Struct, tag="submit", tag_field="type"):
    """A `submit` whose commands all decode: read in one pass (the common case)."""

    v: int
    cmds: list[PeerCommand]
    ref: Any = None


class SnapshotRequest(msgspec.Struct, tag="snapshot", tag_field="type"):
    v: int
    market: str
    ref: Any = None


class OpenOrdersRequest(msgspec.Struct, tag="open_orders", tag_field="type"):
    v: int
    owner: str | None = None
    ref: Any = None


class Ping(msgspec.Struct, tag="ping", tag_field="type"):
    v: int
    ref: Any = None


class MarketsRequest(msgspec.Struct, tag="markets", tag_field="type"):
    """Which markets exist, their rules, and the limits that apply to the asking peer."""

    v: int
    ref: Any = None


class WhoamiRequest(msgspec.Struct, tag="whoami", tag_field="type"):
    """Who the node takes the asking connection for: its peer and what it may do."""

    v: int
    ref: Any = None


OtherRequest = SnapshotRequest | OpenOrdersRequest | Ping | MarketsRequest | WhoamiRequest
"""The requests answered from committed state rather than by the engine."""
PeerRequest = Submit | OtherRequest
FastPeerRequest = DecodedSubmit | OtherRequest


# -- node -> peer -----------------------------------------------------------------------------


class Reply(msgspec.Struct, tag="reply", tag_field="type"):
    """Answer to a `submit`: one `accepted`/`rejected` per command, in command order, each
    followed by the other events of that command that concern the sender's orders."""

    v: int
    events: list[WireEvent]
    ref: Any = None


class Report(msgspec.Struct, tag="report", tag_field="type"):
    """Execution reports pushed to a peer: fills and cancellations of its resting orders caused
    by other peers' commands or by the operator, and what became of its trades on chain."""

    v: int
    events: list[WireEvent | SettlementEvent]


class BookLevel(msgspec.Struct, array_like=False):
    price: str
    qty: str
    orders: int


class SnapshotReply(msgspec.Struct, tag="snapshot", tag_field="type"):
    """A market's full level-2 book as of market-data sequence `seq` of its topic."""

    v: int
    market: str
    seq: int
    bids: list[BookLevel]
    asks: list[BookLevel]
    ref: Any = None
    run: int = 0


class OpenOrder(msgspec.Struct):
    market: str
    id: Any
    owner: str
    side: str
    price: str
    qty: str


class OpenOrdersReply(msgspec.Struct, tag="open_orders", tag_field="type"):
    v: int
    orders: list[OpenOrder]
    ref: Any = None


class Pong(msgspec.Struct, tag="pong", tag_field="type"):
    v: int
    ref: Any = None


class MarketRules(msgspec.Struct):
    """One market as a peer needs to know it: decimals as canonical text, nil for no bound."""

    market: str
    base: str
    quote: str
    tick: str
    lot: str
    min_qty: str
    max_qty: str | None
    max_notional: str | None
    stp: str
    """The self-trade prevention mode of an order that names none."""
    halted: bool
    signatures: str = "off"
    """Whether orders are signed here: "off", "optional" or "required" (docs/signing.md)."""
    chain_id: int | None = None
    contract: str | None = None
    """The EIP-712 domain a signer signs for; nil when no settlement contract is set."""
    base_token: str | None = None
    base_token_id: str = "0"
    quote_token: str | None = None
    lot_units: str | None = None
    tick_units: str | None = None
    fee_bps: int = 0


class PeerLimits(msgspec.Struct):
    """The `[limits]` that apply to the asking peer; nil where none applies (CURVE off: no
    rate limit)."""

    rate_per_s: int | None
    burst: int | None
    max_open_orders_per_owner: int
    max_commands_per_message: int
    max_message_bytes: int


class MarketsReply(msgspec.Struct, tag="markets", tag_field="type"):
    v: int
    markets: list[MarketRules]
    limits: PeerLimits
    ref: Any = None


class WhoamiReply(msgspec.Struct, tag="whoami", tag_field="type"):
    """The peer behind the connection. With CURVE off (`curve` false) every connection is an
    anonymous peer that may act for any owner (`relayer` true)."""

    v: int
    curve: bool
    name: str
    registered: bool
    """False for a key revoked while connected: it acts for no one."""
    owners: list[str]
    relayer: bool
    disabled: bool
    cancel_on_disconnect: bool
    ref: Any = None


class ErrorReply(msgspec.Struct, tag="error", tag_field="type"):
    """A message that could not be taken at all (not a command's answer)."""

    v: int
    reason: str
    detail: str = ""
    ref: Any = None


NodeReply = (
    Reply
    | Report
    | SnapshotReply
    | OpenOrdersReply
    | Pong
    | MarketsReply
    | WhoamiReply
    | ErrorReply
)


# -- market data (PUB) ------------------------------------------------------------------------


class TapeTrade(msgspec.Struct):
    seq: int
    price: str
    qty: str
    aggressor: str


class LevelChange(msgspec.Struct):
    """A price level's new total; qty "0" and orders 0 mean the level is gone."""

    side: str
    price: str
    qty: str
    orders: int


class MarketData(msgspec.Struct, tag="md", tag_field="type"):
    """One market's changes from one batch. `seq` counts this topic's messages from 1 with no
    gaps within a `run` of the node: a subscriber that sees a jump, or a new `run` (the node
    restarted and counts from 1 again), has missed messages and asks for a snapshot."""

    v: int
    market: str
    seq: int
    trades: list[TapeTrade]
    levels: list[LevelChange]
    run: int = 0


# -- admin socket -----------------------------------------------------------------------------


class AdminRequest(msgspec.Struct, tag="admin", tag_field="type"):
    v: int
    cmd: str
    market: str | None = None
    peer: str | None = None
    depth: int | None = None
    query: str | None = None
    params: list[Any] | None = None
    path: str | None = None
    alert: str | None = None
    label: str | None = None
    since: float | None = None
    keep_orders: bool = False
    ref: Any = None


class AdminReply(msgspec.Struct, tag="admin", tag_field="type", omit_defaults=True):
    v: int
    ok: bool
    result: Any = None
    error: str | None = None
    ref: Any = None


encoder = msgspec.msgpack.Encoder()
peer_request_decoder = msgspec.msgpack.Decoder(PeerRequest)
fast_peer_request_decoder = msgspec.msgpack.Decoder(FastPeerRequest)
node_reply_decoder = msgspec.msgpack.Decoder(NodeReply)
market_data_decoder = msgspec.msgpack.Decoder(MarketData)
admin_request_decoder = msgspec.msgpack.Decoder(AdminRequest)
admin_reply_decoder = msgspec.msgpack.Decoder(AdminReply)

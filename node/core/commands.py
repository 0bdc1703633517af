"""Commands: what peers ask of the engine, decoded at the edge into typed structs.

Fields whose content the engine validates (side, type, price, …) are typed `Any` on purpose: a
wrong value there is answered with its own reject reason (`bad_side`, `bad_qty`, …) by the
validation step, not lost in a generic decode error. Only what is needed to address an answer
at all (the op, the client's order id and the owner) makes a command `malformed` when missing
or of the wrong type.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec

from .markets import MarketSpec

OrderId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | int
Owner = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Signature = Annotated[str, msgspec.Meta(pattern="^0[xX][0-9a-fA-F]{130}$")]
"""65 bytes r || s || v as `0x` and 130 hex digits (docs/signing.md §4)."""
Uint64 = Annotated[int, msgspec.Meta(ge=0)]
"""At most 2**64 - 1: checked where the order is encoded (msgspec bounds stop at int64)."""
DecimalNonce = Annotated[str, msgspec.Meta(pattern="^[0-9]{1,78}$")]
Nonce = Uint64 | DecimalNonce
"""An int, or a decimal str for nonces of 2**64 and above (below 2**256: checked where the
order is encoded, as 78 digits allow more)."""
FeeBps = Annotated[int, msgspec.Meta(ge=0, le=65535)]
OrderHash = Annotated[str, msgspec.Meta(pattern="^0x[0-9a-f]{64}$")]


class NewOrder(msgspec.Struct, tag="new", tag_field="op", omit_defaults=True, gc=False):
    """Place an order: limit (with price) or market (no price)."""

    id: OrderId
    owner: Owner
    market: Any = None
    side: Any = None
    type: Any = "limit"
    price: Any = None
    qty: Any = None
    tif: Any = "GTC"
    stp: Any = None
    peer: str | None = None
    """Set by the node to the authenticated peer's name; whatever the input says is replaced
    (but a value of another type than str or nil makes the command malformed, like any field
    of the wrong type)."""
    sig: Signature | None = None
    """The owner's EIP-712 signature of the order (docs/signing.md); with it come the signed
    fields below, and the order is checked before the engine sees it."""
    chain_id: Uint64 | None = None
    nonce: Nonce | None = None
    expiry: Uint64 | None = None
    max_fee_bps: FeeBps | None = None
    order_hash: OrderHash | None = None
    """Set by the node to the order's digest once its signature is verified (journaled with
    the signature); whatever the input says is cleared. The engine takes an order as signed
    only with it."""

    @property
    def signed(self) -> bool:
        return self.sig is not None


class CancelOrder(msgspec.Struct, tag="cancel", tag_field="op", omit_defaults=True, gc=False):
    """Remove a resting order of `owner` with client id `id` from `market`."""

    id: OrderId
    owner: Owner
    market: Any = None
    reason: str | None = None
    """Set by the node when it cancels on its own (a CancelReason); whatever the input says is
    replaced, so a peer's or a file's cancel is always `user` (a value of another type than
    str or nil makes the command malformed)."""
    sig: Signature | None = None
    """The owner's EIP-712 signature of `Cancel(owner, orderHash)` (docs/signing.md §6)."""
    order_hash: OrderHash | None = None
    """Set by the node to the cancelled order's digest once `sig` is verified (journaled, so
    the cancel can be brought on chain); whatever the input says is cleared."""

    @property
    def signed(self) -> bool:
        return self.sig is not None


class ReplaceOrder(msgspec.Struct, tag="replace", tag_field="op", omit_defaults=True, gc=False):
    """Change a resting order's price and/or remaining quantity."""

    id: OrderId
    owner: Owner
    market: Any = None
    price: Any = None
    qty: Any = None


class ConfigureMarkets(msgspec.Struct, tag="markets", tag_field="op"):
    """The operator's market list taking effect; journaled, never accepted from a peer."""

    markets: list[MarketSpec]


class Clock(msgspec.Struct, tag="clock", tag_field="op", gc=False):
    """The node's clock (unix seconds) from here on in the journal: the engine has no clock of
    its own, so the node journals one before the signed orders of a batch, and a replay reads
    the same time at the same point (signed orders' `expired`). Never accepted from a peer."""

    now: int


class MovedOrder(msgspec.Struct, array_like=True, gc=False):
    """A resting order as a market's move carries it, in engine units (ticks, lots); a move
    lists them in time priority, which the destination keeps."""

    owner: str
    id: str | int
    is_buy: bool
    price: int
    remaining: int
    stp: int
    peer: str | None = None
    expiry: int = 0
    order_hash: str | None = None
    nonce: str | None = None
    """A signed order's nonce as decimal text (nonces go up to 2**256); None in a move
    journaled before resting orders kept their nonce."""
    placed: NewOrder | None = None
    """A signed order's journaled `new` (its signature and signed fields, the signed quantity
    among them): the destination's journal then holds what its relayer needs to settle the
    order's trades there. None for an unsigned order, and in a move journaled before signed
    markets moved."""


class ExportMarket(msgspec.Struct, tag="export_market", tag_field="op"):
    """A market's book leaves this node for node `to`: every resting order of `market` is taken
    off (reported `cancelled`, reason `moved`), the book's last state being what the node
    exports. Journaled, never accepted from a peer; the node halts the market first."""

    market: str
    to: str


class MovedNonces(msgspec.Struct, array_like=True, gc=False):
    """An owner's used nonces as a move of a signed market carries them (node/core/nonces.py):
    every nonce below `floor`, and those in `above`, as decimal text."""

    owner: str
    floor: DecimalNonce
    above: list[DecimalNonce]


class ImportMarket(msgspec.Struct, tag="import_market", tag_field="op", omit_defaults=True):
    """A market's book arriving from node `source`: `orders` rest in the order given, each
    taking the next seq as its priority (reported `rested`). Journaled, never accepted from a
    peer; the market must be configured here with the same rules and an empty book."""

    market: str
    source: str
    orders: list[MovedOrder]
    nonces: list[MovedNonces] | None = None
    """A signed market's move: the used nonces of every owner the source knows, merged into
    this node's first (node/core/moving.py says why); None for a market taking no signed
    orders, and in a move journaled before signed markets moved."""


class RaiseMinNonce(msgspec.Struct, tag="min_nonce", tag_field="op", gc=False):
    """The owner raised its minimum nonce on the settlement contract (its `MinNonceRaised`
    log, heard by the relayer under the confirmations): every nonce of `owner` below
    `min_nonce` is used from here on, and its resting signed orders with a nonce below it are
    cancelled (reason `min_nonce`). Only upward: a minimum at or below the owner's floor
    leaves the floor as it is. Journaled, never accepted from a peer."""

    owner: str
    min_nonce: Nonce
    """An int, or decimal text for a minimum of 2**64 and above (msgpack's integers stop
    there)."""


PeerCommand = NewOrder | CancelOrder | ReplaceOrder
JournalCommand = (
    NewOrder
    | CancelOrder
    | ReplaceOrder
    | ConfigureMarkets
    | Clock
    | ExportMarket
    | ImportMarket
    | RaiseMinNonce
)


BAD_INPUT = (msgspec.DecodeError, ValueError, RecursionError)
"""What decoding hostile bytes can raise: msgspec's errors, UnicodeDecodeError for strings that
are not UTF-8, RecursionError for absurd nesting. Each is a `malformed` answer, never a crash."""


class MalformedCommand(ValueError):
    """Input that cannot be read as a command; `echo` holds the id/owner/op we could recover."""

    def __init__(self, detail: str, echo: dict[str, Any]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.echo = echo


_json_command = msgspec.json.Decoder(PeerCommand, float_hook=Decimal)
_json_any = msgspec.json.Decoder(float_hook=Decimal)


def decode_json_command(line: bytes | str) -> PeerCommand:
    """Decode one JSON command; raise MalformedCommand with a readable detail if impossible."""
    try:
        command = _json_command.decode(line)
    except BAD_INPUT as error:
        raise MalformedCommand(str(error), echo_fields(_json_any, line)) from None
    return normalise_numbers(command)


def normalise_numbers(command: PeerCommand) -> PeerCommand:
    """Turn JSON numbers given for price/qty into their exact decimal text, and clear the
    fields only the node sets.

    The journal stores text, so a replay reads exactly what the live engine read.
    """
    if type(command) is NewOrder:
        command.peer = None
        command.order_hash = None
    elif type(command) is CancelOrder:
        command.reason = None
        command.order_hash = None
    if isinstance(command, NewOrder | ReplaceOrder):
        for field in ("price", "qty"):
            value = getattr(command, field)
            if isinstance(value, Decimal):
                setattr(command, field, format(value, "f") if value.is_finite() else str(value))
    return command


def echo_fields(decoder: msgspec.json.Decoder | msgspec.msgpack.Decoder, data: Any) -> dict:
    """The op, market, id and owner that can be read from input that is not a valid command,
    so its `malformed` answer can still be correlated by the sender."""
    try:
        raw = decoder.decode(data)
    except BAD_INPUT:
        return {}
    if not isinstance(raw, dict):
        return {}
    echo = {}
    for key in ("op", "market", "id", "owner"):
        value = raw.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            echo[key] = value
    return echo


journal_encoder = msgspec.msgpack.Encoder()
journal_decoder = msgspec.msgpack.Decoder(JournalCommand)

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


class CancelOrder(msgspec.Struct, tag="cancel", tag_field="op", omit_defaults=True, gc=False):
    """Remove a resting order of `owner` with client id `id` from `market`."""

    id: OrderId
    owner: Owner
    market: Any = None
    reason: str | None = None
    """Set by the node when it cancels on its own (a CancelReason); whatever the input says is
    replaced, so a peer's or a file's cancel is always `user` (a value of another type than
    str or nil makes the command malformed)."""


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


PeerCommand = NewOrder | CancelOrder | ReplaceOrder
JournalCommand = NewOrder | CancelOrder | ReplaceOrder | ConfigureMarkets


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
    elif type(command) is CancelOrder:
        command.reason = None
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

"""Reading a peer's message off the order socket: the request it is, or why it is refused.

What a client may rely on (docs/protocol.md §3, §10) is decided here, in this order:

1. The envelope, the part every version of the protocol shares: a MessagePack map with str
   keys, an int `v` and a str `type`. A message without one is `malformed` in any version.
2. The version: a `v` other than 1 is `bad_version`, whatever the rest holds, since a node of
   version 1 cannot judge the shape of another version's message.
3. The version-1 shape of its `type`: an unknown `type`, a missing or mistyped key is
   `malformed`.

An `error` carries the message's `ref` whenever the message is a map with str keys (its `ref`
can be read, even if the rest is wrong); otherwise its `ref` is nil.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec

from ..core.commands import BAD_INPUT, PeerCommand, echo_fields
from ..core.events import Rejected
from ..core.reasons import Reason
from .messages import (
    PROTOCOL_VERSION,
    DecodedSubmit,
    ErrorReply,
    OtherRequest,
    Submit,
    fast_peer_request_decoder,
    peer_request_decoder,
)

OTHER_VERSION = f"this node speaks v{PROTOCOL_VERSION}"
NOT_ONE_FRAME = ErrorReply(
    PROTOCOL_VERSION, Reason.MALFORMED, "a message must be exactly one frame", None
)


class _Readable(msgspec.Struct):
    """Any map with str keys: its `ref`, if it has one."""

    ref: Any = None


class _Envelope(msgspec.Struct):
    """What every version's messages carry."""

    v: int
    type: str
    ref: Any = None


_decode_readable = msgspec.msgpack.Decoder(_Readable).decode
_decode_envelope = msgspec.msgpack.Decoder(_Envelope).decode
_decode_fast = fast_peer_request_decoder.decode
_decode_full = peer_request_decoder.decode
_command_decoder = msgspec.msgpack.Decoder(PeerCommand)
_any_decoder = msgspec.msgpack.Decoder()

log = logging.getLogger("marketnode.node")

NESTING_RECURSION_LIMIT = 1000
"""The interpreter's recursion limit a node decodes under. msgspec refuses nesting deeper than
that limit (it counts levels as the interpreter counts calls), which is what bounds a message's
nesting; but a library may raise the limit for the whole process (py_ecc, which eth-account
imports, sets 100,000), and nesting that deep would overflow the decoding thread's C stack
instead of being refused `malformed`."""


def keep_nesting_bounded() -> None:
    """Lower the process's recursion limit to NESTING_RECURSION_LIMIT if a library raised it
    (said once in the log): the node decodes peers' bytes in this process."""
    limit = sys.getrecursionlimit()
    if limit > NESTING_RECURSION_LIMIT:
        log.warning(
            "recursion limit %d lowered to %d: deeper nesting in a message is refused, "
            "not decoded", limit, NESTING_RECURSION_LIMIT,
        )  # fmt: skip
        sys.setrecursionlimit(NESTING_RECURSION_LIMIT)


def decode_request(buffer: Any) -> DecodedSubmit | Submit | OtherRequest | ErrorReply:
    """The request in one frame's bytes, or the `error` refusing it.

    The common case decodes in one pass (every command of a submit typed); a submit with a bad
    command is decoded again with its commands left raw, for `decode_command` one by one.
    """
    try:
        request = _decode_fast(buffer)
    except BAD_INPUT:
        try:
            request = _decode_full(buffer)
        except BAD_INPUT as error:
            return _refusal(buffer, str(error))
    if request.v != PROTOCOL_VERSION:
        return ErrorReply(PROTOCOL_VERSION, Reason.BAD_VERSION, OTHER_VERSION, request.ref)
    return request


def _refusal(buffer: Any, shape_error: str) -> ErrorReply:
    """Why a message that is not a version-1 request is refused (the module's rules)."""
    try:
        ref = _decode_readable(buffer).ref
    except BAD_INPUT:
        ref = None
    try:
        envelope = _decode_envelope(buffer)
    except BAD_INPUT as error:
        return ErrorReply(PROTOCOL_VERSION, Reason.MALFORMED, str(error), ref)
    if envelope.v != PROTOCOL_VERSION:
        return ErrorReply(PROTOCOL_VERSION, Reason.BAD_VERSION, OTHER_VERSION, ref)
    return ErrorReply(PROTOCOL_VERSION, Reason.MALFORMED, shape_error, ref)


def decode_command(raw: msgspec.Raw) -> PeerCommand | Rejected:
    """One command of a submit that did not decode whole: the command, or its `malformed`
    answer (echoing the op, market, id and owner that can be read)."""
    try:
        return _command_decoder.decode(raw)
    except BAD_INPUT as error:
        echo = echo_fields(_any_decoder, raw)
        op, market, order_id, owner = (echo.get(k) for k in ("op", "market", "id", "owner"))
        return Rejected(None, op, market, order_id, owner, Reason.MALFORMED, str(error))

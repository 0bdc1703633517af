"""Every reason a peer can be told, defined once: why a command or message was refused, and
why an order was cancelled.

The engine's reject reasons come first, in validation order (validation stops at the first that
holds); then the node's own, answered before a command reaches the engine (`seq` null, never
journaled); then the reasons a whole message is refused with (an `error` reply). docs/protocol.md
§10 and docs/engine.md list the same codes, and tests/test_protocol_doc.py checks that they agree.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """A reason code as it travels on the wire (the member's value)."""

    # the engine, in validation order
    UNKNOWN_MARKET = "unknown_market"
    BAD_SIDE = "bad_side"
    BAD_TYPE = "bad_type"
    BAD_TIF = "bad_tif"
    BAD_STP = "bad_stp"
    BAD_QTY = "bad_qty"
    BAD_PRICE = "bad_price"
    OFF_TICK = "off_tick"
    OFF_LOT = "off_lot"
    QTY_BELOW_MIN = "qty_below_min"
    QTY_ABOVE_MAX = "qty_above_max"
    NOTIONAL_ABOVE_MAX = "notional_above_max"
    DUPLICATE_ID = "duplicate_id"
    WOULD_CROSS = "would_cross"
    FOK_UNFILLABLE = "fok_unfillable"
    EXPIRED = "expired"
    NONCE_USED = "nonce_used"
    UNKNOWN_ORDER = "unknown_order"
    MALFORMED = "malformed"
    # the node, before the engine (the gateway)
    STORE_UNAVAILABLE = "store_unavailable"
    PEER_DISABLED = "peer_disabled"
    THROTTLED = "throttled"
    NOT_AUTHORIZED = "not_authorized"
    MARKET_HALTED = "market_halted"
    TOO_MANY_ORDERS = "too_many_orders"
    WRONG_CHAIN = "wrong_chain"
    BAD_SIGNATURE = "bad_signature"
    # a whole message refused
    BAD_VERSION = "bad_version"
    TOO_MANY_COMMANDS = "too_many_commands"


ENGINE_REASONS = tuple(Reason)[: list(Reason).index(Reason.MALFORMED) + 1]
"""The reasons validation gives, in the order it checks them."""
GATEWAY_REASONS = (
    Reason.STORE_UNAVAILABLE,
    Reason.PEER_DISABLED,
    Reason.THROTTLED,
    Reason.NOT_AUTHORIZED,
    Reason.MARKET_HALTED,
    Reason.TOO_MANY_ORDERS,
    Reason.WRONG_CHAIN,
    Reason.BAD_SIGNATURE,
)
"""The reasons the node gives before the engine sees a command, in the order it checks them
(the last two are the signature checks', docs/signing.md §7). `expired` and `nonce_used` are
the engine's: they depend on its journaled clock and on the nonces it keeps, so a replay gives
the same answers."""
MESSAGE_REASONS = (
    Reason.MALFORMED,
    Reason.BAD_VERSION,
    Reason.TOO_MANY_COMMANDS,
    Reason.THROTTLED,
)
"""The reasons of an `error` reply that refuses a whole message (`throttled`: a request other
than a submit of commands, or an empty submit, when its peer's bucket lacks its tokens)."""


class CancelReason(StrEnum):
    """Why a `cancelled` event took quantity off an order (the member's value on the wire)."""

    USER = "user"
    """The owner's own cancel."""
    EXPIRED = "expired"
    """The node cancels a signed order whose `expiry` has come while it rests."""
    IOC = "ioc"
    """The unfilled rest of an order that never rests (IOC, FOK, market)."""
    STP = "stp"
    """Self-trade prevention."""
    PEER_DISABLED = "peer_disabled"
    """The node cancels a disabled peer's orders."""
    PEER_REVOKED = "peer_revoked"
    """The node cancels a revoked peer's orders (`mnode peers revoke` without --keep-orders)."""
    DISCONNECT = "disconnect"
    """The node cancels the orders of a peer registered with `--cancel-on-disconnect` when its
    last connection goes."""
    SETTLEMENT_FAILED = "settlement_failed"
    """The node cancels the resting orders of an owner whose trade failed to settle on chain
    (its balance or approval gone, its nonce cancelled there) in the trade's market."""
    MIN_NONCE = "min_nonce"
    """The node cancels a resting signed order whose nonce is below the minimum its owner
    raised on the settlement contract (`set_min_nonce`, `increment_min_nonce`), which would
    refuse to settle it."""
    MOVED = "moved"
    """The order left this node with its market's book (`mnode markets move`): it rests on the
    destination node, in the same time priority, and is not cancelled for its owner."""

"""The admin socket: the operator's view of, and hand on, the running node.

Served by the matching thread between batches, every request answered at once, the bad ones
included (docs/protocol.md §13); the analytics commands are passed on to the analytics process
and answered when it answers (or when it does not, in time). The handlers see the node through
its `NodeView` only.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import zmq

from ..core.commands import BAD_INPUT
from ..core.markets import ConfigError
from ..core.reasons import CancelReason, Reason
from ..home.peers import save_allowlist
from ..protocol.messages import (
    PROTOCOL_VERSION,
    AdminReply,
    AdminRequest,
    admin_request_decoder,
    encoder,
)
from ..store.lmdb_store import StoreError
from .analytics_link import ANALYTICS_COMMANDS, AnalyticsLink
from .market_moves import market_export, market_import
from .marketdata import book_levels
from .revocation import RevocationRefused, revoke_peer
from .settlement_link import settlement_metrics
from .view import NodeView

log = logging.getLogger("marketnode.node")


class AdminDesk:
    """The admin socket's requests and answers."""

    def __init__(self, socket: zmq.Socket, view: NodeView) -> None:
        self.socket = socket
        self.view = view
        self.analytics: AnalyticsLink | None = None
        """Where analytics commands go (set once the link exists)."""

    def serve(self) -> None:
        """Answer every request waiting on the socket."""
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity, *body = frames
            reply = self._answer(identity, body)
            if reply is not None:
                self.reply(identity, reply)

    def _answer(self, identity: bytes, body: list[bytes]) -> AdminReply | None:
        """The answer to one request (None: the analytics process will give it)."""
        if len(body) != 1:
            return AdminReply(PROTOCOL_VERSION, False, error=f"{Reason.MALFORMED}: send one frame")
        try:
            request = admin_request_decoder.decode(body[0])
        except BAD_INPUT as error:
            return AdminReply(PROTOCOL_VERSION, False, error=f"{Reason.MALFORMED}: {error}")
        if request.v != PROTOCOL_VERSION:
            error = f"{Reason.BAD_VERSION}: this node speaks v{PROTOCOL_VERSION}"
            return AdminReply(PROTOCOL_VERSION, False, error=error, ref=request.ref)
        if request.cmd in ANALYTICS_COMMANDS and self.analytics is not None:
            return self.analytics.forward(identity, request)
        return handle_admin(self.view, request)

    def reply(self, identity: bytes, reply: AdminReply) -> None:
        """Send an admin answer, the node's own or one relayed from its analytics process."""
        try:
            payload = encoder.encode(reply)
        except (TypeError, msgspec.EncodeError) as error:
            # a value a plugin left in a form msgpack cannot carry: the operator gets an
            # error, and the node goes on
            log.error("admin %s: the answer cannot be encoded: %s", reply.ref, error)
            payload = encoder.encode(AdminReply(
                PROTOCOL_VERSION, False, error=f"internal: cannot encode the answer: {error}",
                ref=reply.ref,
            ))  # fmt: skip
        try:
            self.socket.send_multipart([identity, payload], zmq.NOBLOCK)
        except zmq.ZMQError as error:
            log.debug("admin client gone: %s", error)


def handle_admin(view: NodeView, request: AdminRequest) -> AdminReply:
    handler = _HANDLERS.get(request.cmd)
    if handler is None:
        known = ", ".join(_HANDLERS)
        error = f"unknown admin command {request.cmd!r} (known: {known})"
        return AdminReply(PROTOCOL_VERSION, False, error=error, ref=request.ref)
    try:
        result = handler(view, request)
    except (AdminRefused, RevocationRefused) as refusal:
        return AdminReply(PROTOCOL_VERSION, False, error=str(refusal), ref=request.ref)
    except StoreError as error:  # a full disk: the operator is told, the node goes on
        detail = f"store_unavailable: {error}"
        return AdminReply(PROTOCOL_VERSION, False, error=detail, ref=request.ref)
    return AdminReply(PROTOCOL_VERSION, True, result=result, ref=request.ref)


class AdminRefused(ValueError):
    """An admin request that cannot be carried out (unknown market or peer, …)."""


def _status(view: NodeView, _request: AdminRequest) -> dict[str, Any]:
    return view.status()


def _metrics(view: NodeView, request: AdminRequest) -> dict[str, Any]:
    """Counters since the start, and with the sampler on: the latest per-second sample, the
    samples after `since` (epoch seconds; all of the last hour without it) and latency
    percentiles since the start; the settlement relayer's lag, gas and fee per trade."""
    loop = view.metrics
    result: dict[str, Any] = {
        "started": loop.started,
        "messages": loop.messages,
        "commands": loop.commands,
        "batches": loop.batches,
        "events": {kind.__struct_config__.tag: n for kind, n in loop.events.items()},
        "rejects": dict(loop.rejects),
        "trades": dict(loop.trades),
        "answers_dropped": loop.answers_dropped,
        "reports_dropped": loop.reports_dropped,
        "settlement": settlement_metrics(view.settlement_status()),
    }
    sampler = view.sampler
    if sampler is None:
        result["sampling"] = "off ([metrics] enabled = false)"
        return result
    history = list(sampler.history)
    since = request.since
    result.update(
        sampling=f"every {sampler.interval_s:g} s",
        latest=history[-1] if history else None,
        history=[s for s in history if since is None or s["time"] > since],
        since_start={
            "ack_ms": sampler.totals["ack"].summary(1000),
            "commit_ms": sampler.totals["commit"].summary(1000),
            "batch_commands": sampler.totals["batch"].summary(),
        },
    )
    return result


def _scale(view: NodeView, _request: AdminRequest) -> dict[str, Any]:
    """The current scaling recommendations (stabilized), or why there are none, and the load
    outlook (the forecast against its target)."""
    if view.scaler is None:
        why = "[scaling] enabled = false" if view.sampler else "[metrics] enabled = false"
        return {"scaling": f"off ({why})", "recommendations": [], "outlook": None}
    return {
        "scaling": "on",
        "recommendations": [msgspec.to_builtins(r) for r in view.scaler.current],
        "outlook": view.scaler.outlook,
    }


def _markets(view: NodeView, _request: AdminRequest) -> list[dict[str, Any]]:
    rows = []
    for symbol, book in view.books.items():
        bids, asks = book_levels(book, 1)
        rows.append(
            {
                "market": symbol,
                "halted": symbol in view.halted,
                "best_bid": bids[0].price if bids else None,
                "best_ask": asks[0].price if asks else None,
                "resting_orders": len(book.orders),
                "md_seq": view.md_seq(symbol),
            }
        )
    return rows


def _market_of(view: NodeView, request: AdminRequest) -> str:
    if request.market not in view.books:
        raise AdminRefused(f"unknown market {request.market!r}")
    return request.market  # type: ignore[return-value]


def _halt(view: NodeView, request: AdminRequest) -> dict[str, Any]:
    view.set_halted(_market_of(view, request), True)
    return {"halted": sorted(view.halted)}


def _resume(view: NodeView, request: AdminRequest) -> dict[str, Any]:
    view.set_halted(_market_of(view, request), False)
    return {"halted": sorted(view.halted)}


def _peers(view: NodeView, _request: AdminRequest) -> list[dict[str, Any]]:
    return [
        {**peer.as_record(), "seen": view.peer_seen(peer.name)}
        for peer in view.allowlist.current.peers
    ]


def _set_disabled(view: NodeView, request: AdminRequest, disabled: bool) -> dict[str, Any]:
    name = request.peer or ""
    try:
        allowlist = view.allowlist.current.with_disabled(name, disabled)
    except ConfigError as error:
        raise AdminRefused(str(error)) from None
    save_allowlist(view.allowlist.path, allowlist)
    view.allowlist.refresh()
    cancelled = view.cancel_orders_of(name, CancelReason.PEER_DISABLED) if disabled else 0
    return {"peer": name, "disabled": disabled, "orders_cancelled": cancelled}


def _book(view: NodeView, request: AdminRequest) -> dict[str, Any]:
    market = _market_of(view, request)
    if request.depth is not None and request.depth < 1:
        raise AdminRefused(f"depth must be at least 1, got {request.depth}")
    bids, asks = book_levels(view.books[market], request.depth)
    return {
        "market": market,
        "md_seq": view.md_seq(market),
        "bids": msgspec.to_builtins(bids),
        "asks": msgspec.to_builtins(asks),
    }


def _shutdown(view: NodeView, _request: AdminRequest) -> dict[str, Any]:
    view.stop()
    return {"stopping": True, "seq": view.seq}


_HANDLERS = {
    "status": _status,
    "metrics": _metrics,
    "scale": _scale,
    "markets": _markets,
    "halt": _halt,
    "resume": _resume,
    "peers": _peers,
    "disable_peer": lambda view, request: _set_disabled(view, request, True),
    "enable_peer": lambda view, request: _set_disabled(view, request, False),
    "book": _book,
    "revoke_peer": revoke_peer,
    "shutdown": _shutdown,
    "market_export": lambda view, request: market_export(view, request, AdminRefused),
    "market_import": lambda view, request: market_import(view, request, AdminRefused),
}

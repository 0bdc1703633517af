"""The admin socket's requests: the operator's view of, and hand on, the running node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ..core.commands import CANCEL_PEER_DISABLED
from ..core.markets import ConfigError
from ..home.peers import save_allowlist
from ..protocol.messages import PROTOCOL_VERSION, AdminReply, AdminRequest
from .marketdata import book_levels

if TYPE_CHECKING:
    from .node import Node


def handle_admin(node: Node, request: AdminRequest) -> AdminReply:
    handler = _HANDLERS.get(request.cmd)
    if handler is None:
        known = ", ".join(_HANDLERS)
        error = f"unknown admin command {request.cmd!r} (known: {known})"
        return AdminReply(PROTOCOL_VERSION, False, error=error, ref=request.ref)
    try:
        result = handler(node, request)
    except AdminRefused as refusal:
        return AdminReply(PROTOCOL_VERSION, False, error=str(refusal), ref=request.ref)
    return AdminReply(PROTOCOL_VERSION, True, result=result, ref=request.ref)


class AdminRefused(ValueError):
    """An admin request that cannot be carried out (unknown market or peer, …)."""


def _status(node: Node, _request: AdminRequest) -> dict[str, Any]:
    return node.status()


def _metrics(node: Node, request: AdminRequest) -> dict[str, Any]:
    """Counters since the start, and with the sampler on: the latest per-second sample, the
    samples after `since` (epoch seconds; all of the last hour without it) and latency
    percentiles since the start."""
    loop = node.metrics
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
    }
    sampler = node.sampler
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


def _scale(node: Node, _request: AdminRequest) -> dict[str, Any]:
    """The current scaling recommendations (stabilized), or why there are none, and the load
    outlook (the forecast against its target)."""
    if node.scaler is None:
        why = "[scaling] enabled = false" if node.sampler else "[metrics] enabled = false"
        return {"scaling": f"off ({why})", "recommendations": [], "outlook": None}
    return {
        "scaling": "on",
        "recommendations": [msgspec.to_builtins(r) for r in node.scaler.current],
        "outlook": node.scaler.outlook,
    }


def _markets(node: Node, _request: AdminRequest) -> list[dict[str, Any]]:
    rows = []
    for symbol, book in node.durable.engine.books.items():
        bids, asks = book_levels(book, 1)
        rows.append(
            {
                "market": symbol,
                "halted": symbol in node.halted,
                "best_bid": bids[0].price if bids else None,
                "best_ask": asks[0].price if asks else None,
                "resting_orders": len(book.orders),
                "md_seq": node.topic_seq[symbol],
            }
        )
    return rows


def _market_of(node: Node, request: AdminRequest) -> str:
    if request.market not in node.durable.engine.books:
        raise AdminRefused(f"unknown market {request.market!r}")
    return request.market  # type: ignore[return-value]


def _halt(node: Node, request: AdminRequest) -> dict[str, Any]:
    node.set_halted(_market_of(node, request), True)
    return {"halted": sorted(node.halted)}


def _resume(node: Node, request: AdminRequest) -> dict[str, Any]:
    node.set_halted(_market_of(node, request), False)
    return {"halted": sorted(node.halted)}


def _peers(node: Node, _request: AdminRequest) -> list[dict[str, Any]]:
    return [
        {**peer.as_record(), "seen": peer.name in node.peer_identity}
        for peer in node.allowlist.current.peers
    ]


def _set_disabled(node: Node, request: AdminRequest, disabled: bool) -> dict[str, Any]:
    name = request.peer or ""
    try:
        allowlist = node.allowlist.current.with_disabled(name, disabled)
    except ConfigError as error:
        raise AdminRefused(str(error)) from None
    save_allowlist(node.allowlist.path, allowlist)
    node.allowlist.refresh()
    cancelled = node.cancel_orders_of(name, CANCEL_PEER_DISABLED) if disabled else 0
    return {"peer": name, "disabled": disabled, "orders_cancelled": cancelled}


def _book(node: Node, request: AdminRequest) -> dict[str, Any]:
    market = _market_of(node, request)
    if request.depth is not None and request.depth < 1:
        raise AdminRefused(f"depth must be at least 1, got {request.depth}")
    bids, asks = book_levels(node.durable.engine.books[market], request.depth)
    return {
        "market": market,
        "md_seq": node.topic_seq[market],
        "bids": msgspec.to_builtins(bids),
        "asks": msgspec.to_builtins(asks),
    }


def _shutdown(node: Node, _request: AdminRequest) -> dict[str, Any]:
    node.stopping = True
    return {"stopping": True, "seq": node.durable.engine.seq}


_HANDLERS = {
    "status": _status,
    "metrics": _metrics,
    "scale": _scale,
    "markets": _markets,
    "halt": _halt,
    "resume": _resume,
    "peers": _peers,
    "disable_peer": lambda node, request: _set_disabled(node, request, True),
    "enable_peer": lambda node, request: _set_disabled(node, request, False),
    "book": _book,
    "shutdown": _shutdown,
}

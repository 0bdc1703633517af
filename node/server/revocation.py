"""Revoking a peer: its key leaves the allowlist, its resting orders are cancelled (journaled,
reason `peer_revoked`) unless the operator keeps them, and its connections to the order socket
and its market-data subscriptions are dropped.

Two ways, one outcome: the admin command `revoke_peer`, which the running node's matching thread
serves between batches (`revoke_peer`), and, with no node running, `save_allowlist_without` and
`cancel_in_store`, which cancel in the store itself, so the orders are gone before any start.
Once the allowlist is saved, ZAP refuses the key on every socket, so a dropped peer that
reconnects gets nowhere. Its market-data connections are dropped too: the node knows the key
behind each of them from its subscriptions (`subscribers`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..core.markets import ConfigError
from ..core.reasons import CancelReason
from ..home.peers import load_allowlist, save_allowlist
from ..protocol.messages import AdminRequest
from ..store.durable import DurableEngine
from ..store.lmdb_store import Store
from .cancelling import cancels_of
from .descriptors import shut_down
from .view import NodeView

log = logging.getLogger("marketnode.node")


class RevocationRefused(ValueError):
    """A revocation that cannot be done (no such peer); one line for the operator."""


def revoke_peer(view: NodeView, request: AdminRequest) -> dict[str, Any]:
    """The admin command `revoke_peer` (`peer`, `keep_orders`): on the matching thread."""
    name = request.peer or ""
    keep_orders = bool(request.keep_orders)
    try:
        view.allowlist.refresh()  # a peer added a moment ago is known before the next reload
        allowlist = view.allowlist.current.without(name)
    except ConfigError as error:
        raise RevocationRefused(str(error)) from None
    key = view.allowlist.current.named(name).public_key
    save_allowlist(view.allowlist.path, allowlist)
    view.allowlist.refresh()
    cancelled = 0 if keep_orders else view.cancel_orders_of(name, CancelReason.PEER_REVOKED)
    connections = view.connections
    dropped = sum(
        shut_down(fd, inode) for fd, (peer, _) in list(connections.by_fd.items())
        if peer == name and (inode := connections.inodes.get(fd)) is not None
    )  # fmt: skip
    subscriptions = view.subscribers.drop(key) if view.subscribers is not None else 0
    log.info(
        "peer %r revoked: %d resting orders cancelled%s, %d connections and %d market-data "
        "connections dropped",
        name, cancelled, " (kept)" if keep_orders else "", dropped, subscriptions,
    )  # fmt: skip
    return {
        "peer": name,
        "orders_cancelled": cancelled,
        "orders_kept": keep_orders,
        "connections_dropped": dropped,
        "market_data_connections_dropped": subscriptions,
    }


def save_allowlist_without(peers_file: Path, name: str) -> None:
    """With no node running: take `name` out of the allowlist file (ConfigError if absent)."""
    save_allowlist(peers_file, load_allowlist(peers_file).without(name))


def cancel_in_store(store: Store, name: str, keep_orders: bool) -> int:
    """With no node running: cancel peer `name`'s resting orders in the store, in one journaled
    batch as a node would (reason `peer_revoked`), unless `keep_orders`; how many."""
    if keep_orders:
        return 0
    durable = DurableEngine(store)
    commands = cancels_of(durable.engine, {name}, CancelReason.PEER_REVOKED)
    if commands:
        durable.submit(commands)
    return len(commands)

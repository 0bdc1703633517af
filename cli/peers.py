"""`mnode peers`: the allowlist of CURVE keys that may connect, and for which owners they act."""

from __future__ import annotations

from typing import Annotated

import typer

from marketnode.node.client import ClientError
from marketnode.node.home.keys import PEERS_FOLDER, create_key_pair
from marketnode.node.home.peers import Peer, check_peer, load_allowlist, save_allowlist
from marketnode.node.server.revocation import cancel_in_store, save_allowlist_without
from marketnode.node.store.lmdb_store import Store, StoreError

from .common import (
    EXIT_STORE,
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    operator_errors,
    print_json,
    require_home,
    why_no_node_runs,
)
from .node import admin_call, admin_result

app = typer.Typer(
    help="Register, list and revoke peers (reloaded by a running node).", no_args_is_help=True
)


@app.command("add", context_settings={"ignore_unknown_options": True})
def add_command(
    name: Annotated[str, typer.Argument(help="A name for the peer.", show_default=False)],
    public_key: Annotated[
        str | None,
        typer.Argument(
            help="The peer's CURVE public key (40 Z85 characters, quoted for the shell; one "
            "that begins with '-' is still the key). Omitted: a key pair is made in the home's "
            "keys/peers/ folder.",
            show_default=False,
        ),
    ] = None,
    owner: Annotated[
        list[str] | None,
        typer.Option("--owner", help="An owner (wallet) it may act for; repeatable."),
    ] = None,
    relayer: Annotated[bool, typer.Option("--relayer", help="May act for any owner.")] = False,
    cancel_on_disconnect: Annotated[
        bool,
        typer.Option("--cancel-on-disconnect", help="Cancel its resting orders when it goes away."),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Allow a peer's key on the order and market-data sockets."""
    node_home = require_home(home)
    with operator_errors():
        config = node_home.config()
        path = node_home.peers_path(config)
        allowlist = load_allowlist(path)
        generated = None
        if public_key is None:
            check_peer(Peer(name, "0" * 40, tuple(owner or ()), relayer))
            folder = node_home.keys_path(config) / PEERS_FOLDER
            generated = folder / f"{name}.key_secret"
            public_key = create_key_pair(folder, name).public_text
        peer = check_peer(Peer(name, public_key, tuple(owner or ()), relayer, cancel_on_disconnect))
        save_allowlist(path, allowlist.with_peer(peer))
    if generated is not None:
        typer.echo(f"made a key pair for {name}: {generated}", err=True)
    typer.echo(f"added peer {name} ({public_key})", err=True)


@app.command("list")
def list_command(home: HomeOption = None, json: JsonOption = False) -> None:
    """The registered peers."""
    node_home = require_home(home)
    with operator_errors():
        allowlist = load_allowlist(node_home.peers_path(node_home.config()))
    rows = [peer.as_record() for peer in allowlist.peers]
    if json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no peers registered (nobody can connect)")
    for row in rows:
        acts_for = "any owner (relayer)" if row["relayer"] else ", ".join(row["owners"])
        flags = "".join(
            [
                " [disabled]" if row["disabled"] else "",
                " [cancel on disconnect]" if row["cancel_on_disconnect"] else "",
            ]
        )
        typer.echo(f"{row['name']}  {row['public_key']}  for {acts_for}{flags}")


@app.command("revoke")
def revoke_command(
    name: Annotated[str, typer.Argument(help="The peer to remove.", show_default=False)],
    keep_orders: Annotated[
        bool, typer.Option("--keep-orders", help="Leave its resting orders on the books.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Remove a peer: its key is refused from now on, its resting orders are cancelled
    (peer_revoked; --keep-orders leaves them) and a running node drops its connections, market
    data included.

    With no node running, the orders are cancelled in the store at once (journaled as the node
    would), so none of them is on the books when the node starts.
    """
    node_home = require_home(home)
    with operator_errors():
        config = node_home.config()
    if why_no_node_runs(node_home) is None:
        try:
            result = admin_result(node_home, "revoke_peer", peer=name, keep_orders=keep_orders)
        except ClientError as error:
            if not error.unreachable:
                fail(str(error), EXIT_USAGE)
        else:
            dropped = result["connections_dropped"]
            feeds = result.get("market_data_connections_dropped", 0)
            typer.echo(
                f"revoked peer {name}: {_orders_text(result['orders_cancelled'], keep_orders)}; "
                f"{dropped} connection{'s' if dropped != 1 else ''} dropped; {feeds} market-data "
                f"connection{'s' if feeds != 1 else ''} dropped; its key is refused",
                err=True,
            )
            return
    store_path = node_home.store_path(config)
    with operator_errors():
        if load_allowlist(node_home.peers_path(config)).named(name) is None:
            fail(f"no peer named {name!r}", EXIT_USAGE)  # as the running node says it
        save_allowlist_without(node_home.peers_path(config), name)
    if not (store_path / "data.mdb").exists():
        typer.echo(f"revoked peer {name} (no node running, nothing stored yet)", err=True)
        return
    try:
        with Store(store_path, map_size=config.store.map_size, sync=config.store.sync) as store:
            cancelled = cancel_in_store(store, name, keep_orders)
    except StoreError as error:
        fail(f"revoked peer {name} (its key is refused), but its orders stay: {error}", EXIT_STORE)
    typer.echo(
        f"revoked peer {name} (no node running): {_orders_text(cancelled, keep_orders)} in the "
        "store",
        err=True,
    )


def _orders_text(cancelled: int, kept: bool) -> str:
    if kept:
        return "resting orders kept (--keep-orders)"
    return f"{cancelled} resting order{'s' if cancelled != 1 else ''} cancelled (peer_revoked)"


@app.command("disable")
def disable_command(
    name: Annotated[str, typer.Argument(help="The peer to disable.", show_default=False)],
    home: HomeOption = None,
) -> None:
    """Refuse a connected peer's commands (peer_disabled) and cancel its resting orders; the
    running node does it at once."""
    result = admin_call(require_home(home), "disable_peer", peer=name)
    typer.echo(
        f"disabled peer {name}; {result['orders_cancelled']} resting orders cancelled", err=True
    )


@app.command("enable")
def enable_command(
    name: Annotated[str, typer.Argument(help="The peer to enable.", show_default=False)],
    home: HomeOption = None,
) -> None:
    """Take a disabled peer's commands again."""
    admin_call(require_home(home), "enable_peer", peer=name)
    typer.echo(f"enabled peer {name}", err=True)

"""`mnode peers`: the allowlist of CURVE keys that may connect, and for which owners they act."""

from __future__ import annotations

from typing import Annotated

import typer

from marketnode.node.home.keys import PEERS_FOLDER, create_key_pair
from marketnode.node.home.peers import Peer, check_peer, load_allowlist, save_allowlist

from .common import HomeOption, JsonOption, operator_errors, print_json, require_home
from .node import admin_call

app = typer.Typer(
    help="Register, list and revoke peers (reloaded by a running node).", no_args_is_help=True
)


@app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="A name for the peer.", show_default=False)],
    public_key: Annotated[
        str | None,
        typer.Argument(
            help="The peer's CURVE public key (40 Z85 characters). Omitted: a key pair is made "
            "in the home's keys/peers/ folder.",
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
    home: HomeOption = None,
) -> None:
    """Remove a peer: new connections with its key are refused, and a running node stops
    taking its commands (not_authorized) without a restart."""
    node_home = require_home(home)
    with operator_errors():
        path = node_home.peers_path(node_home.config())
        save_allowlist(path, load_allowlist(path).without(name))
    typer.echo(f"revoked peer {name}", err=True)


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

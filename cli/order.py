"""`mnode order submit|cancel|replace`: act as a peer over the order socket."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from marketnode.node.client import Client, ClientError, address_of_home
from marketnode.node.home.config import NodeConfig
from marketnode.node.home.keys import PEERS_FOLDER, KeyPair, load_key_pair
from marketnode.node.home.layout import Home
from marketnode.node.home.peers import Peer, load_allowlist

from .common import (
    EXIT_NOT_RUNNING,
    EXIT_REJECTED,
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    operator_errors,
    print_json,
    require_home,
    require_running_node,
)

app = typer.Typer(
    help="Submit, cancel and replace orders as a registered peer.", no_args_is_help=True
)

AsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Act as this peer, with its key from the home's keys/peers/.",
        show_default=False,
    ),
]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key", help="Act with this secret key file (NAME.key_secret).", show_default=False
    ),
]
OwnerOption = Annotated[
    str | None,
    typer.Option(
        "--owner", help="The owner (wallet); default: the peer's only owner.", show_default=False
    ),
]


def peer_key(
    node_home: Home, as_peer: str | None, key_file: Path | None
) -> tuple[KeyPair | None, str | None]:
    """The key to connect with, and the owner to default to (the peer's only owner)."""
    with operator_errors():
        config = node_home.config()
        if not config.security.curve:
            return None, None
        if key_file is not None:
            key = load_key_pair(key_file)
            peer = load_allowlist(node_home.peers_path(config)).by_key.get(key.public_text)
        elif as_peer is not None:
            key, peer = registered_peer_key(node_home, config, as_peer)
        else:
            fail("say which peer you are: --as NAME or --key FILE", EXIT_USAGE)
    default_owner = peer.owners[0] if peer is not None and len(peer.owners) == 1 else None
    return key, default_owner


def registered_peer_key(node_home: Home, config: NodeConfig, name: str) -> tuple[KeyPair, Peer]:
    """Peer `name`'s key pair (from the home's keys/peers/) and its allowlist entry. A name the
    allowlist lacks is one line and exit 2, and says whether the peer was never there or is no
    longer (revoking leaves its key file), before any connection is tried."""
    key_file = node_home.keys_path(config) / PEERS_FOLDER / f"{name}.key_secret"
    peer = load_allowlist(node_home.peers_path(config)).named(name)
    if peer is None and key_file.exists():
        fail(
            f"{name} is not (or no longer) a registered peer: its key is in {key_file.parent} "
            "but the allowlist has no peer of that name (revoked?); `mnode peers list` shows "
            "the registered ones",
            EXIT_USAGE,
        )
    if peer is None:
        fail(f"no peer named {name!r} (`mnode peers list` shows them)", EXIT_USAGE)
    if not key_file.exists():
        fail(
            f"peer {name!r} was registered with its public key only ({key_file} is not in this "
            "home): act with --key FILE",
            EXIT_USAGE,
        )
    return load_key_pair(key_file), peer


def event_text(event: dict[str, Any]) -> str:
    """One event for a person: a reject as its order and reason in words, any other event as
    its fields (those it has: an event not sequenced has no seq to show)."""
    if event["event"] == "rejected":
        detail = f" ({event['detail']})" if event.get("detail") else ""
        return f"rejected {event['id']} ({event['market']}): {event['reason']}{detail}"
    return " ".join(f"{key}={value}" for key, value in event.items() if value is not None)


def send(node_home: Home, key: KeyPair | None, command: dict[str, Any], json: bool) -> None:
    """Send one command, print its answer and any events, exit 6 if it was rejected."""
    require_running_node(node_home)
    try:
        with operator_errors(), Client(address_of_home(node_home), key, timeout_s=5.0) as client:
            reply = client.submit([command])
    except ClientError as error:
        fail(str(error), EXIT_NOT_RUNNING if error.unreachable else EXIT_USAGE)
    events = msgspec.to_builtins(reply.events)
    if json:
        print_json(events)
    else:
        for event in events:
            typer.echo(event_text(event))
    if any(event["event"] == "rejected" for event in events):
        raise typer.Exit(EXIT_REJECTED)


def _owner(owner: str | None, default: str | None) -> str:
    chosen = owner or default
    if chosen is None:
        fail("say for which owner: --owner ADDR", EXIT_USAGE)
    return chosen


@app.command("submit")
def submit_command(
    market: Annotated[str, typer.Argument(help="Market symbol.", show_default=False)],
    side: Annotated[str, typer.Argument(help="buy or sell.", show_default=False)],
    qty: Annotated[str, typer.Argument(help="Quantity, a decimal.", show_default=False)],
    price: Annotated[
        str | None, typer.Option("--price", help="Limit price (omit for market).")
    ] = None,
    tif: Annotated[str, typer.Option("--tif", help="GTC, IOC, FOK or POST_ONLY.")] = "GTC",
    stp: Annotated[str | None, typer.Option("--stp", help="Self-trade prevention mode.")] = None,
    order_id: Annotated[
        str | None, typer.Option("--id", help="Client order id (default: generated).")
    ] = None,
    owner: OwnerOption = None,
    as_peer: AsOption = None,
    key: KeyOption = None,
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Place an order: a limit order with --price, else a market order."""
    node_home = require_home(home)
    key_pair, default_owner = peer_key(node_home, as_peer, key)
    command: dict[str, Any] = {
        "op": "new",
        "market": market,
        "id": order_id or f"cli-{time.time_ns()}",
        "owner": _owner(owner, default_owner),
        "side": side,
        "type": "limit" if price is not None else "market",
        "qty": qty,
        "tif": tif,
    }
    if price is not None:
        command["price"] = price
    if stp is not None:
        command["stp"] = stp
    send(node_home, key_pair, command, json)


@app.command("cancel")
def cancel_command(
    market: Annotated[str, typer.Argument(help="Market symbol.", show_default=False)],
    order_id: Annotated[str, typer.Argument(help="Client order id.", show_default=False)],
    owner: OwnerOption = None,
    as_peer: AsOption = None,
    key: KeyOption = None,
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Cancel a resting order."""
    node_home = require_home(home)
    key_pair, default_owner = peer_key(node_home, as_peer, key)
    command = {
        "op": "cancel",
        "market": market,
        "id": order_id,
        "owner": _owner(owner, default_owner),
    }
    send(node_home, key_pair, command, json)


@app.command("replace")
def replace_command(
    market: Annotated[str, typer.Argument(help="Market symbol.", show_default=False)],
    order_id: Annotated[str, typer.Argument(help="Client order id.", show_default=False)],
    price: Annotated[str | None, typer.Option("--price", help="New price.")] = None,
    qty: Annotated[str | None, typer.Option("--qty", help="New remaining quantity.")] = None,
    owner: OwnerOption = None,
    as_peer: AsOption = None,
    key: KeyOption = None,
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Change a resting order's price and/or remaining quantity."""
    node_home = require_home(home)
    key_pair, default_owner = peer_key(node_home, as_peer, key)
    command: dict[str, Any] = {
        "op": "replace", "market": market, "id": order_id, "owner": _owner(owner, default_owner),
    }  # fmt: skip
    if price is not None:
        command["price"] = price
    if qty is not None:
        command["qty"] = qty
    send(node_home, key_pair, command, json)

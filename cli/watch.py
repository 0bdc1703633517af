"""`mnode watch`: follow a market's trades and top of book from the market-data socket."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from marketnode.node.client import Client, ClientError, Subscriber, address_of_home
from marketnode.node.home.keys import OPERATOR, KeyPair, load_key_pair
from marketnode.node.home.layout import Home

from .common import (
    EXIT_NOT_RUNNING,
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    operator_errors,
    print_json,
    require_home,
    require_running_node,
)
from .order import registered_peer_key


class LocalBook:
    """A market's levels rebuilt from a snapshot and absolute level changes."""

    def __init__(self) -> None:
        self.bids: dict[str, tuple[str, int]] = {}
        self.asks: dict[str, tuple[str, int]] = {}

    def reset(self, bids, asks) -> None:
        self.bids = {level.price: (level.qty, level.orders) for level in bids}
        self.asks = {level.price: (level.qty, level.orders) for level in asks}

    def apply(self, change) -> None:
        side = self.bids if change.side == "buy" else self.asks
        if change.orders == 0:
            side.pop(change.price, None)
        else:
            side[change.price] = (change.qty, change.orders)

    def top(self) -> dict:
        def best(side: dict, highest: bool) -> dict | None:
            if not side:
                return None
            price = (max if highest else min)(side, key=lambda text: float(text))
            return {"price": price, "qty": side[price][0]}

        return {"best_bid": best(self.bids, True), "best_ask": best(self.asks, False)}


def watch_command(
    market: Annotated[str, typer.Argument(help="Market symbol.", show_default=False)],
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Stop after this many updates.")
    ] = None,
    as_peer: Annotated[
        str | None, typer.Option("--as", help="Watch as this peer (default: the operator key).")
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="Watch with this secret key file.")
    ] = None,
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Follow a market's trades and top of book as they happen.

    A gap in the topic's sequence is repaired with a fresh snapshot. Ctrl-C stops.
    """
    node_home = require_home(home)
    key_pair = _watch_key(node_home, as_peer, key)
    require_running_node(node_home)
    book = LocalBook()
    try:
        address = address_of_home(node_home)
        with Client(address, key_pair, timeout_s=5.0) as client:
            subscriber = Subscriber(address, key_pair, [market])
            try:
                _resync(client, subscriber, book, market)
                _show(market, None, [], book, json)
                shown = 0
                while count is None or shown < count:
                    message = subscriber.receive(1000)
                    if message is None:
                        continue
                    if subscriber.gaps:
                        typer.echo(f"mnode: gap in {market} market data; resynchronising", err=True)
                        subscriber.gaps = 0
                        _resync(client, subscriber, book, market)
                    else:
                        for change in message.levels:
                            book.apply(change)
                    _show(market, message.seq, message.trades, book, json)
                    shown += 1
            finally:
                subscriber.close()
    except ClientError as error:
        fail(str(error), EXIT_NOT_RUNNING if error.unreachable else EXIT_USAGE)
    except KeyboardInterrupt:
        return


def _resync(client: Client, subscriber: Subscriber, book: LocalBook, market: str) -> None:
    snapshot = client.snapshot(market)
    book.reset(snapshot.bids, snapshot.asks)
    subscriber.resynchronised(snapshot)


def _show(market: str, seq: int | None, trades: list, book: LocalBook, json: bool) -> None:
    top = book.top()
    if json:
        print_json({"market": market, "seq": seq, "trades": trades, **top})
        return
    for trade in trades:
        typer.echo(f"{market} trade {trade.qty} @ {trade.price} ({trade.aggressor})")
    bid, ask = top["best_bid"], top["best_ask"]
    bid_text = f"{bid['qty']} @ {bid['price']}" if bid else "-"
    ask_text = f"{ask['qty']} @ {ask['price']}" if ask else "-"
    typer.echo(f"{market} bid {bid_text} | ask {ask_text}")


def _watch_key(node_home: Home, as_peer: str | None, key: Path | None) -> KeyPair | None:
    with operator_errors():
        config = node_home.config()
        if not config.security.curve:
            return None
        keys = node_home.keys_path(config)
        if key is not None:
            return load_key_pair(key)
        if as_peer is not None:
            return registered_peer_key(node_home, config, as_peer)[0]
        return load_key_pair(keys / f"{OPERATOR}.key_secret")

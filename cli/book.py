"""`mnode book`: a market's book by price level, read from the store without writing to it."""

from __future__ import annotations

from typing import Annotated

import typer
from msgspec import to_builtins

from marketnode.node.core.book import OrderBook
from marketnode.node.core.engine import Engine
from marketnode.node.server.marketdata import book_levels
from marketnode.node.store.child_read import read_in_child
from marketnode.node.store.statehash import order_from_record
from marketnode.node.store.verify import checked_snapshot

from .common import (
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    operator_errors,
    print_json,
    require_home,
)


def book_command(
    symbol: Annotated[
        str, typer.Argument(help="Market symbol, e.g. PUNK-ETH.", show_default=False)
    ],
    home: HomeOption = None,
    depth: Annotated[int, typer.Option("--depth", min=1, help="Price levels per side.")] = 10,
    json: JsonOption = False,
) -> None:
    """Print SYMBOL's book, best price first. Safe while another process writes the store."""
    node_home = require_home(home)
    with operator_errors():
        config = node_home.config()
        store_path = node_home.store_path(config)
        engine = Engine()
        if (store_path / "data.mdb").exists():
            state, records = read_in_child(store_path, checked_snapshot)
            engine.configure(state.markets)
            engine.restore(state.seq, (order_from_record(key, value) for key, value in records))
        else:
            engine.configure(config.markets)
    book = engine.books.get(symbol)
    if book is None:
        known = ", ".join(engine.books) or "none"
        fail(f"unknown market {symbol!r} (markets: {known})", EXIT_USAGE)
    view = book_view(book, depth)
    if json:
        print_json(view)
    else:
        typer.echo(_render(view))


def book_view(book: OrderBook, depth: int) -> dict:
    """The book as `{"market", "bids", "asks"}` with levels `{"price", "qty", "orders"}`."""
    bids, asks = book_levels(book, depth)
    return {"market": book.symbol, "bids": to_builtins(bids), "asks": to_builtins(asks)}


def _render(view: dict) -> str:
    rows = [f"{view['market']}", f"{'side':<5}{'price':>16}{'qty':>16}{'orders':>8}"]
    for level in reversed(view["asks"]):
        rows.append(f"{'ask':<5}{level['price']:>16}{level['qty']:>16}{level['orders']:>8}")
    if not view["asks"] and not view["bids"]:
        rows.append("(empty book)")
    else:
        rows.append("-" * 45)
    for level in view["bids"]:
        rows.append(f"{'bid':<5}{level['price']:>16}{level['qty']:>16}{level['orders']:>8}")
    return "\n".join(rows)

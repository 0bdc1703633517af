"""A market's move from the node serving it to another, driven from the directory.

1. The directory marks the move (`moving_to`), a compare-and-set on its version: of two moves
   of the same directory at once one wins, the other is refused before touching a node.
2. The source halts the market and exports its book (journaled: `market_export`).
3. The book is kept in the cluster folder (moves/), then imported on the destination
   (journaled: `market_import`), which answers the hash of the book now resting there; it must
   equal the exported one.
4. The destination resumes the market, then the directory names it (compare-and-set again):
   peers following the directory find it trading when they get there. The source exported the
   book, so it cannot trade the market meanwhile: there is never a second writer.

If the destination refuses or cannot be reached, the book goes back to the source, which
resumes, and the directory's mark is taken off: the market trades where it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..client import ClientError
from .directory import Directory, DirectoryError, MarketEntry, with_directory
from .local import ClusterError, LocalCluster


@dataclass(frozen=True)
class MoveReport:
    market: str
    source: str
    destination: str
    orders: int
    hash: str
    version: int
    """The directory's version naming the destination."""


def move_market(cluster: LocalCluster, market: str, destination: str) -> MoveReport:
    """Move `market` to node `destination` (see the module's docstring); ClusterError, with
    the market back where it was, if it cannot."""
    urls = cluster.record().urls
    directory = with_directory(urls, lambda store: store.read())
    entry = directory.markets.get(market)
    if entry is None:
        known = ", ".join(sorted(directory.markets)) or "none"
        raise ClusterError(f"market {market!r} is not in the directory (markets: {known})")
    source = entry.node
    if entry.moving_to is not None:
        raise ClusterError(f"{market} is being moved to {entry.moving_to} already")
    if destination not in directory.nodes:
        raise ClusterError(f"no node {destination!r} in the directory "
                           f"(nodes: {', '.join(sorted(directory.nodes))})")  # fmt: skip
    if destination == source:
        raise ClusterError(f"{market} is served by {source} already")
    marked = _write(urls, directory, market, MarketEntry(source, moving_to=destination))
    try:
        with cluster.admin(source) as admin:
            book = admin.call("market_export", market=market, params=[destination])
    except ClientError as error:
        _write(urls, marked, market, MarketEntry(source))
        raise ClusterError(f"{source} did not export {market}: {error}") from None
    kept = cluster.path / "moves" / f"{market}-{marked.version}.json"
    kept.parent.mkdir(exist_ok=True)
    kept.write_text(json.dumps(book) + "\n")
    book.pop("seq", None)
    try:
        with cluster.admin(destination) as admin:
            imported = admin.call("market_import", market=market, params=[book])
        if imported["hash"] != book["hash"]:
            raise ClientError(f"the book arrived as {imported['hash']}, left as {book['hash']}")
    except ClientError as error:
        try:
            _back_to_source(cluster, urls, marked, market, source, book)
        except (ClientError, ClusterError) as undo:
            raise ClusterError(
                f"{destination} did not import {market} ({error}), nor did {source} take its "
                f"book back ({undo}): the book is kept in {kept}"
            ) from None
        raise ClusterError(f"{destination} did not import {market} ({error}); it trades on "
                           f"{source} again") from None  # fmt: skip
    with cluster.admin(destination) as admin:
        admin.call("resume", market=market)
    try:
        moved = _write(urls, marked, market, MarketEntry(destination))
    except ClusterError as error:
        raise ClusterError(f"{market} trades on {destination} now, but the directory still "
                           f"says it is moving there from {source}: {error}") from None  # fmt: skip
    return MoveReport(market, source, destination, len(book["orders"]), book["hash"],
                      moved.version)  # fmt: skip


def _write(urls: list[str], directory: Directory, market: str, entry: MarketEntry) -> Directory:
    changed = Directory(directory.nodes, {**directory.markets, market: entry}, directory.version)
    try:
        return with_directory(urls, lambda store: store.write(changed))
    except DirectoryError as error:
        raise ClusterError(str(error)) from None


def _back_to_source(
    cluster: LocalCluster, urls: list[str], marked: Directory, market: str, source: str,
    book: dict,
) -> None:  # fmt: skip
    """Undo an export: the book rests on the source again, which trades it."""
    with cluster.admin(source) as admin:
        admin.call("market_import", market=market, params=[book])
        admin.call("resume", market=market)
    _write(urls, marked, market, MarketEntry(source))

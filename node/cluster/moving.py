"""A market's move from the node serving it to another, driven from the directory.

1. The directory marks the move (`moving_to`, and the move's id), a compare-and-set on its
   version: of two moves of the same directory at once one wins, the other is refused before
   touching a node.
2. The source halts the market and exports its book (journaled: `market_export`).
3. The book is kept in the cluster folder (moves/MARKET-ID.json), then imported on the
   destination (journaled: `market_import`), which answers the hash of the book now resting
   there; it must equal the exported one.
4. The destination resumes the market, then the directory names it (compare-and-set again):
   peers following the directory find it trading when they get there. The source exported the
   book, so it cannot trade the market meanwhile: there is never a second writer.

If the destination refuses or cannot be reached, the book goes back to the source, which
resumes, and the directory's mark is taken off: the market trades where it was. A move that
stopped half way (the command killed) is finished by asking for it again: from the kept book
once the export is done (the destination, halted and empty until the import, holds the book
exactly when the import was done), or undone when the source still holds the book.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

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
    """Move `market` to node `destination`, or finish its move there (see the module's
    docstring); ClusterError, with the market back where it was, if it cannot."""
    urls = cluster.record().urls
    directory = with_directory(urls, lambda store: store.read())
    entry = directory.markets.get(market)
    if entry is None:
        known = ", ".join(sorted(directory.markets)) or "none"
        raise ClusterError(f"market {market!r} is not in the directory (markets: {known})")
    source = entry.node
    if entry.moving_to is not None:
        if entry.moving_to != destination:
            again = f"mnode markets move {market} --to {entry.moving_to}"
            raise ClusterError(f"{market} is being moved to {entry.moving_to}: finish that "
                               f"(`{again}`)")  # fmt: skip
        return _finish(cluster, urls, directory, market)
    if destination not in directory.nodes:
        raise ClusterError(f"no node {destination!r} in the directory "
                           f"(nodes: {', '.join(sorted(directory.nodes))})")  # fmt: skip
    if destination == source:
        raise ClusterError(f"{market} is served by {source} already")
    move = uuid.uuid4().hex[:12]
    marked = _write(urls, directory, market, MarketEntry(source, destination, move))
    try:
        with cluster.admin(source) as admin:
            book = admin.call("market_export", market=market, params=[destination])
    except ClientError as error:
        _write(urls, marked, market, MarketEntry(source))
        raise ClusterError(f"{source} did not export {market}: {error}") from None
    kept = kept_book(cluster, market, move)
    kept.parent.mkdir(exist_ok=True)
    kept.write_text(json.dumps(book) + "\n")
    return _deliver(cluster, urls, marked, market, book)


def kept_book(cluster: LocalCluster, market: str, move: str | None) -> Path:
    return cluster.path / "moves" / f"{market}-{move}.json"


def _finish(cluster: LocalCluster, urls: list[str], marked: Directory, market: str) -> MoveReport:
    entry = marked.markets[market]
    kept = kept_book(cluster, market, entry.move)
    if kept.exists():
        book = json.loads(kept.read_text())
        return _deliver(cluster, urls, marked, market, book, finishing=True)
    if _resting(cluster, entry.node, market):  # never exported: the move is undone
        with cluster.admin(entry.node) as admin:
            admin.call("resume", market=market)
        _write(urls, marked, market, MarketEntry(entry.node))
        raise ClusterError(f"the move of {market} stopped before its export: it trades on "
                           f"{entry.node} again")  # fmt: skip
    raise ClusterError(
        f"the move of {market} stopped during its export and no book was kept: {entry.node} "
        f"holds none of it (its journal's export_market does); not finished"
    )


def _deliver(
    cluster: LocalCluster, urls: list[str], marked: Directory, market: str, book: dict,
    finishing: bool = False,
) -> MoveReport:  # fmt: skip
    """Steps 3 and 4 from the exported book (undone if the destination does not take it);
    `finishing` a stopped move, the import is skipped if the destination holds the book."""
    entry = marked.markets[market]
    source, destination = entry.node, str(entry.moving_to)
    book = {key: value for key, value in book.items() if key != "seq"}
    try:
        resting = _resting(cluster, destination, market) if finishing else 0
        if resting and resting != len(book["orders"]):
            raise ClientError(f"{destination} has {resting} orders of {market}, "
                              f"the book {len(book['orders'])}")  # fmt: skip
        if not resting:
            with cluster.admin(destination) as admin:
                imported = admin.call("market_import", market=market, params=[book])
            if imported["hash"] != book["hash"]:
                raise ClientError(f"the book arrived as {imported['hash']}, left as "
                                  f"{book['hash']}")  # fmt: skip
    except ClientError as error:
        try:
            _back_to_source(cluster, urls, marked, market, source, book)
        except (ClientError, ClusterError) as undo:
            raise ClusterError(
                f"{destination} did not import {market} ({error}), nor did {source} take its "
                f"book back ({undo}): the book is kept in {kept_book(cluster, market, entry.move)}"
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


def _resting(cluster: LocalCluster, node: str, market: str) -> int:
    with cluster.admin(node) as admin:
        rows = {row["market"]: row for row in admin.call("markets")}
    if market not in rows:
        raise ClientError(f"{node} does not configure {market}")
    return rows[market]["resting_orders"]


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

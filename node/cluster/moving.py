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

Both nodes' requests can be asked again (node/server/market_moves.py): the source answers the
same export of the same move again, the destination the same import. So a lost answer (a
time-out) is asked again on the same connection, whose requests the node serves in order, and a
move that stopped half way is finished from what the nodes say, never from a guess: a source
still trading the market never exported it (or took it back), and the mark is taken off; a
halted source answers its export (again, or now), and the destination imports it (or says it
did). The book goes back to the source only when the destination refused it in so many words;
a node that does not answer leaves the move marked, to be asked for again.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..client import AdminClient, ClientError
from .directory import Directory, DirectoryError, MarketEntry, with_directory
from .local import ClusterError, ClusterUnreachable, LocalCluster

ADMIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MoveReport:
    market: str
    source: str
    destination: str
    orders: int
    hash: str
    version: int
    """The directory's version naming the destination."""


@dataclass(frozen=True)
class _Move:
    """One move under way, as the directory marks it."""

    cluster: LocalCluster
    urls: list[str]
    marked: Directory
    market: str
    timeout_s: float

    @property
    def entry(self) -> MarketEntry:
        return self.marked.markets[self.market]

    @property
    def source(self) -> str:
        return self.entry.node

    @property
    def destination(self) -> str:
        return str(self.entry.moving_to)

    @property
    def kept(self) -> Path:
        return kept_book(self.cluster, self.market, self.entry.move)

    def admin(self, node: str) -> AdminClient:
        return self.cluster.admin(node, timeout_s=self.timeout_s)

    def stays_marked(self, what: str, error: ClientError) -> ClusterUnreachable:
        again = f"mnode markets move {self.market} --to {self.destination}"
        return ClusterUnreachable(f"{what} ({error}): the move stays marked in the directory; "
                                  f"`{again}` finishes or undoes it")  # fmt: skip


def move_market(
    cluster: LocalCluster, market: str, destination: str, timeout_s: float = ADMIN_TIMEOUT_S
) -> MoveReport:
    """Move `market` to node `destination`, or finish its move there (see the module's
    docstring); ClusterError if it cannot (ClusterUnreachable: a node did not answer within
    `timeout_s`, and the move stays marked)."""
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
        return _finish(_Move(cluster, urls, directory, market, timeout_s))
    if destination not in directory.nodes:
        raise ClusterError(f"no node {destination!r} in the directory "
                           f"(nodes: {', '.join(sorted(directory.nodes))})")  # fmt: skip
    if destination == source:
        raise ClusterError(f"{market} is served by {source} already")
    mark = MarketEntry(source, destination, uuid.uuid4().hex[:12])
    marked = _write(urls, directory, market, mark)
    move = _Move(cluster, urls, marked, market, timeout_s)
    with move.admin(source) as admin:
        try:
            book = _export(move, admin)
        except ClientError as error:
            if not error.unreachable:  # refused before it halted anything
                _write(urls, marked, market, MarketEntry(source))
                raise ClusterError(f"{source} did not export {market}: {error}") from None
            try:  # served in order: this answer comes after the export's, if it arrived
                halted = _state(admin, market)[0]
            except ClientError as unanswered:
                raise move.stays_marked(f"{source} did not answer the export", unanswered) from None
            if not halted:  # the export never arrived: the source trades its book still
                _write(urls, marked, market, MarketEntry(source))
                raise ClusterUnreachable(f"{source} did not answer the export of {market} "
                                         f"({error}); it trades there still") from None  # fmt: skip
            book = _asked_again(move, admin, f"{source} did not answer the export")
    return _deliver(move, book)


def kept_book(cluster: LocalCluster, market: str, move: str | None) -> Path:
    return cluster.path / "moves" / f"{market}-{move}.json"


def _export(move: _Move, admin: AdminClient) -> dict:
    """The source's export of the move (the same book again if it exported it already), kept
    in the cluster folder before anything else happens to it."""
    params = [move.destination, move.entry.move]
    book = admin.call("market_export", market=move.market, params=params)
    book = {key: value for key, value in book.items() if key not in ("seq", "again")}
    try:
        move.kept.parent.mkdir(exist_ok=True)
        partial = move.kept.with_suffix(".partial")
        partial.write_text(json.dumps(book) + "\n")
        os.replace(partial, move.kept)
    except OSError as error:
        raise ClusterError(f"the book of {move.market} cannot be kept in {move.kept}: {error}; "
                           f"{move.source} keeps its export: asking again finishes the "
                           "move") from None  # fmt: skip
    return book


def _asked_again(move: _Move, admin: AdminClient, what: str) -> dict:
    try:
        return _export(move, admin)
    except ClientError as error:
        raise move.stays_marked(what, error) from None


def _state(admin: AdminClient, market: str) -> tuple[bool, int]:
    """Whether the node halts `market`, and how many orders of it rest there."""
    rows = {row["market"]: row for row in admin.call("markets")}
    if market not in rows:
        raise ClientError(f"the node does not configure {market}")
    return rows[market]["halted"], rows[market]["resting_orders"]


def _finish(move: _Move) -> MoveReport:
    """A move the directory marks, asked for again: from what the source says."""
    with move.admin(move.source) as admin:
        try:
            halted = _state(admin, move.market)[0]
        except ClientError as error:
            raise move.stays_marked(f"{move.source} did not answer", error) from None
        if halted:  # it exported the book, or does now: the move goes on
            return _deliver(move, _asked_again(move, admin, f"{move.source} did not export"))
    with move.admin(move.destination) as admin:
        try:
            elsewhere = not _state(admin, move.market)[0]
        except ClientError as error:
            raise move.stays_marked(f"{move.destination} did not answer", error) from None
    if elsewhere:
        raise ClusterError(f"{move.market} trades on both {move.source} and {move.destination}: "
                           "halt it on one of them by hand, then ask again")  # fmt: skip
    _write(move.urls, move.marked, move.market, MarketEntry(move.source))
    raise ClusterError(f"the move of {move.market} stopped before its export (or was undone): "
                       f"it trades on {move.source} again")  # fmt: skip


def _deliver(move: _Move, book: dict) -> MoveReport:
    """Steps 3 and 4 from the exported book: undone only if the destination refuses it."""
    market, source, destination = move.market, move.source, move.destination
    try:
        with move.admin(destination) as admin:
            imported = _import(admin, market, book)
        if imported["hash"] != book["hash"]:  # it stays halted there: the source takes it back
            raise ClientError(f"the book arrived as {imported['hash']}, left as {book['hash']}")
    except ClientError as error:
        if error.unreachable:
            raise move.stays_marked(f"{destination} did not answer the import", error) from None
        try:
            _back_to_source(move, book)
        except (ClientError, ClusterError) as undo:
            raise ClusterError(
                f"{destination} did not import {market} ({error}), nor did {source} take its "
                f"book back ({undo}): the book is kept in {move.kept}"
            ) from None
        raise ClusterError(f"{destination} did not import {market} ({error}); it trades on "
                           f"{source} again") from None  # fmt: skip
    try:
        with move.admin(destination) as admin:
            admin.call("resume", market=market)
    except ClientError as error:
        what = f"{destination} imported {market} but did not resume it"
        raise move.stays_marked(what, error) from None
    try:
        moved = _write(move.urls, move.marked, market, MarketEntry(destination))
    except ClusterError as error:
        raise ClusterError(f"{market} trades on {destination} now, but the directory still "
                           f"says it is moving there from {source}: {error}") from None  # fmt: skip
    return MoveReport(market, source, destination, len(book["orders"]), book["hash"],
                      moved.version)  # fmt: skip


def _import(admin: AdminClient, market: str, book: dict) -> dict[str, Any]:
    """Import `book`, asking again on the same connection after a time-out: the node serves it
    after the first, and answers it `again` if the first was applied."""
    try:
        return admin.call("market_import", market=market, params=[book])
    except ClientError as error:
        if not error.unreachable:
            raise
    return admin.call("market_import", market=market, params=[book])


def _write(urls: list[str], directory: Directory, market: str, entry: MarketEntry) -> Directory:
    changed = Directory(directory.nodes, {**directory.markets, market: entry}, directory.version)
    try:
        return with_directory(urls, lambda store: store.write(changed))
    except DirectoryError as error:
        raise ClusterError(str(error)) from None


def _back_to_source(move: _Move, book: dict) -> None:
    """Undo an export the destination refused: the book rests on the source again, which
    trades it."""
    with move.admin(move.source) as admin:
        _import(admin, move.market, book)
        admin.call("resume", market=move.market)
    _write(move.urls, move.marked, move.market, MarketEntry(move.source))

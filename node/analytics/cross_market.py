"""Trade cycles across markets and nodes: a wash ring whose legs trade in different markets of
one asset, or on different nodes, that no node's own scan can see whole.

Why not a new rule, and why not a mode of `trade_cycles`: a ring that passes a lot from wallet
to wallet and back is the same ring whichever market each leg trades in, as long as the lot is
the same asset. So the rule is trade_cycles' own (partners, strongly connected components of the
seller -> buyer graph, every member ending flat, requoting wallets left out), applied to a
different grouping: each wallet's positions summed across the markets of one asset rather than
per market. The union of every node's trades is loaded with the asset in the `market` column
(and requotes likewise), and trade_cycles runs on it unchanged. trade_cycles' code and its
behaviour on a node stay exactly as they are; a second implementation would drift from it, and
a cross-market switch inside it would change what every node's scan computes.

What the union adds is kept: a cycle whose trades are all in one market on one node is that
node's own trade_cycles finding, and is left out here. Trades are named by a cluster-wide id,
`NODE_NUMBER * NODE_SPAN + seq` (the node's seq), and each alert lists its legs as
`node:market:seq`. Its `wash_volume` is the lots passed round, in the asset: the legs'
notionals are in the quote assets of their markets, given per market in the evidence.

Benign look-alikes stay unflagged for the reasons they do on one node: a market maker quoting
on both nodes requotes all day (left out of the graph, its requotes counted across the asset's
markets); an arbitrageur buying on one node and selling on the other, or a two-way trader,
spreads its volume over many counterparties and has no partner.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from marketnode.plugins import trade_cycles
from marketnode.plugins.alerts import Alert, decimal_text
from marketnode.plugins.partners import KNOWN_MAKERS_TABLE

NAME = "cross_market_cycles"
NODE_SPAN = 10**12
"""Trade ids across nodes: node number x NODE_SPAN + the node's seq (a node's seq stays far
below 10^12: a million trades a second for eleven days)."""

TRADE_COLUMNS = (
    "node VARCHAR, seq BIGINT, time TIMESTAMPTZ, market VARCHAR, asset VARCHAR, "
    "price DECIMAL(38, 12), qty DECIMAL(38, 12), notional DECIMAL(38, 12), buyer VARCHAR, "
    "seller VARCHAR"
)
REQUOTE_COLUMNS = (
    "node VARCHAR, seq BIGINT, time TIMESTAMPTZ, market VARCHAR, asset VARCHAR, op VARCHAR, "
    "owner VARCHAR"
)
UNION = f"""
CREATE TABLE trades AS
    SELECT n.number * {NODE_SPAN} + l.seq AS seq, l.time, l.asset AS market, l.market AS book,
           l.node, l.seq AS node_seq, l.price, l.qty, l.notional, l.buyer, l.seller
    FROM leg_trades l JOIN scan_nodes n USING (node);
CREATE TABLE events AS
    SELECT n.number * {NODE_SPAN} + r.seq AS seq, r.time, 'accepted' AS kind, r.op,
           r.asset AS market, r.owner
    FROM leg_requotes r JOIN scan_nodes n USING (node);
"""
"""The detectors' `trades` and `events` with the asset as their market (`book` keeps the
market each trade was in)."""


def union_store(folder: Path, numbers: Mapping[str, int]) -> duckdb.DuckDBPyConnection:
    """An in-memory store of every node's exported trades and requotes under `folder`
    (node_export's layout), `numbers` giving each node's number in the trade ids."""
    connection = duckdb.connect(":memory:")
    connection.execute("CREATE TABLE scan_nodes (node VARCHAR, number BIGINT)")
    connection.executemany("INSERT INTO scan_nodes VALUES (?, ?)", list(numbers.items()))
    for table, kind, columns in (("leg_trades", "trades", TRADE_COLUMNS),
                                 ("leg_requotes", "requotes", REQUOTE_COLUMNS)):  # fmt: skip
        connection.execute(f"CREATE TABLE {table} ({columns})")
        if any((folder / kind).glob("*.parquet")):
            files = str(folder / kind / "*.parquet").replace("'", "''")
            connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM read_parquet('{files}')")
    connection.execute(UNION)
    connection.execute(KNOWN_MAKERS_TABLE)
    return connection


def detect_cross_market(
    connection: duckdb.DuckDBPyConnection, settings: dict[str, Any] | None = None
) -> list[Alert]:
    """trade_cycles over the union (`settings`: trade_cycles' own, its defaults otherwise),
    keeping the cycles that span more than one market or more than one node."""
    found = trade_cycles.detect_integrity(
        connection=connection, settings={trade_cycles.NAME: dict(settings or {})}
    )
    legs = {
        seq: (node, book, node_seq, qty, notional)
        for seq, node, book, node_seq, qty, notional in connection.execute(
            "SELECT seq, node, book, node_seq, qty, notional FROM trades"
        ).fetchall()
    }
    alerts = []
    for cycle in found:
        its_legs = [legs[seq] for seq in cycle.trades]
        books = sorted({leg[1] for leg in its_legs})
        nodes = sorted({leg[0] for leg in its_legs})
        if len(books) < 2 and len(nodes) < 2:
            continue  # the node's own trade_cycles finds it
        notional_by_book = {
            book: decimal_text(sum((leg[4] for leg in its_legs if leg[1] == book), Decimal(0)))
            for book in books
        }
        alerts.append(
            Alert(
                detector=NAME,
                severity=cycle.severity,
                market=cycle.market,
                wallets=cycle.wallets,
                trades=cycle.trades,
                evidence={
                    **cycle.evidence,
                    "asset": cycle.market,
                    "markets": books,
                    "nodes": nodes,
                    "legs": [f"{node}:{book}:{seq}" for node, book, seq, _, _ in its_legs],
                    "notional_by_market": notional_by_book,
                },
                wash_volume=decimal_text(sum((leg[3] for leg in its_legs), Decimal(0))),
            )
        )
    return alerts

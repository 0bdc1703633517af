"""Each liquidity instance's books in the analytics store: inventory, realized and unrealized
PnL and fees per instance and market, from the trades where its owner is a side; and each
market's top of book, which the follower reads off its own engine.

The books are kept as the liquidity process keeps its own (node/liquidity/ledger.py): realized
PnL by average cost of the position taken since the start (base held minus base at the start):
adding to it moves the average cost, reducing it realizes (price - average cost) x qty, and a
flip opens the rest at the fill's price; unrealized PnL is the position at the market's mid
against that cost (view `liquidity_pnl`). In exact decimals: the average cost and the realized
PnL are rounded to 12 places at every fill (DECIMAL(38, 12), the store's), so the books come out
the same however the trades were cut into syncs. A self-trade is two fills, the maker's side
first.

`fees` is the strategy's own fee inside its fill prices: an AMM's `fee_bps` of each fill's
notional (Uniswap v2 charges it on the amount in, the fill's notional at its price), already in
the PnL, shown apart. The node charges none on trades between unsigned orders, and a liquidity
instance's orders are unsigned (a signed market's `fee_bps` is settled on chain, outside).

After each sync the follower brings the books up to date from the trades since each one's
`seq`, with the tops, in one transaction. The instances are recorded from config.toml when the
analytics process starts (makers.py), and their books made again from the whole history then
(about a second per instance over two million trades), so an instance added or changed (its
owner, market, holdings or fee) is booked as it is now configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS liquidity_instances (
    instance VARCHAR PRIMARY KEY, owner VARCHAR, market VARCHAR, strategy VARCHAR,
    base DECIMAL(38, 12), quote DECIMAL(38, 12), fee_bps DECIMAL(38, 12)
);
CREATE TABLE IF NOT EXISTS liquidity_books (
    instance VARCHAR PRIMARY KEY, owner VARCHAR, market VARCHAR, seq BIGINT,
    position DECIMAL(38, 12), average_cost DECIMAL(38, 12), realized DECIMAL(38, 12),
    cash DECIMAL(38, 12), bought DECIMAL(38, 12), sold DECIMAL(38, 12), fees DECIMAL(38, 12),
    fills BIGINT
);
-- each market's best bid and ask at the store's position, and its last trade's price
CREATE TABLE IF NOT EXISTS market_tops (
    market VARCHAR, seq BIGINT, bid DECIMAL(38, 12), ask DECIMAL(38, 12), last DECIMAL(38, 12)
);
CREATE OR REPLACE VIEW market_mids AS
    SELECT market, seq, bid, ask, last,
           CASE WHEN bid IS NOT NULL AND ask IS NOT NULL
                THEN CAST((bid + ask) / 2 AS DECIMAL(38, 12)) ELSE last END AS mid
    FROM market_tops;
CREATE OR REPLACE VIEW liquidity_pnl AS
    SELECT i.instance, i.owner, i.market, i.strategy,
           i.base + coalesce(b.position, 0) AS base, i.quote + coalesce(b.cash, 0) AS quote,
           coalesce(b.position, 0) AS position, coalesce(b.average_cost, 0) AS average_cost,
           coalesce(b.realized, 0) AS realized_pnl, m.mid,
           CAST(CASE WHEN m.mid IS NULL THEN 0
                     ELSE (m.mid - coalesce(b.average_cost, 0)) * coalesce(b.position, 0)
                END AS DECIMAL(38, 12)) AS unrealized_pnl,
           coalesce(b.fees, 0) AS fees, coalesce(b.fills, 0) AS fills,
           coalesce(b.bought, 0) AS bought, coalesce(b.sold, 0) AS sold,
           coalesce(b.seq, 0) AS as_of_seq
    FROM liquidity_instances i
    LEFT JOIN liquidity_books b USING (instance, owner, market)
    LEFT JOIN market_mids m USING (market)
    ORDER BY i.instance;
"""

PLACES = Decimal("1e-12")
BPS = Decimal(10_000)


def _exact(value: Decimal) -> Decimal:
    """`value` at the store's 12 places."""
    return value.quantize(PLACES, rounding=ROUND_HALF_EVEN)


@dataclass
class Book:
    """One instance's position since its start (base units), its average cost, realized PnL,
    the quote it paid (-) or got (+), and what it traded."""

    position: Decimal = Decimal(0)
    average_cost: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)
    cash: Decimal = Decimal(0)
    bought: Decimal = Decimal(0)
    sold: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    fills: int = 0

    def fill(
        self, buys: bool, price: Decimal, qty: Decimal, notional: Decimal, fee_bps: Decimal
    ) -> None:
        """Book one fill of `qty` at `price` (bought when `buys`)."""
        signed = qty if buys else -qty
        before = self.position
        self.position += signed
        self.cash += -notional if buys else notional
        if buys:
            self.bought += qty
        else:
            self.sold += qty
        self.fees = _exact(self.fees + notional * fee_bps / BPS)
        self.fills += 1
        after = self.position
        if before == 0 or (before > 0) == (signed > 0):  # opening or adding
            self.average_cost = _exact((self.average_cost * abs(before) + price * qty) / abs(after))
            return
        closed = min(qty, abs(before))
        direction = 1 if before > 0 else -1
        self.realized = _exact(self.realized + (price - self.average_cost) * closed * direction)
        if after == 0:
            self.average_cost = Decimal(0)
        elif (after > 0) != (before > 0):  # flipped: the rest opens at this price
            self.average_cost = price


INSTANCES = """
SELECT i.instance, i.owner, i.market, i.fee_bps, b.seq, b.position, b.average_cost, b.realized,
       b.cash, b.bought, b.sold, b.fees, b.fills
FROM liquidity_instances i LEFT JOIN liquidity_books b USING (instance, owner, market)
ORDER BY i.instance
"""
FILLS = """
SELECT price, qty, notional, buyer = $owner AS buys, buyer = seller AS both,
       aggressor = 'sell' AS maker_buys
FROM trades
WHERE market = $market AND seq > $since AND seq <= $until AND (buyer = $owner OR seller = $owner)
ORDER BY seq
"""
"""An instance's trades since `$since`: whether it bought, whether it was both sides (a
self-trade), and then whether its maker side bought (the maker's fill is booked first)."""


def after_sync(connection: duckdb.DuckDBPyConnection, books: dict, seq: int) -> None:
    """What the follower keeps beside the events once a sync has brought the store to `seq`,
    with its engine's `books` there: the markets' tops and the instances' books, in one
    transaction."""
    connection.execute("BEGIN TRANSACTION")
    try:
        record_tops(connection, books, seq)
        bring_books_up_to_date(connection, seq)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def bring_books_up_to_date(connection: duckdb.DuckDBPyConnection, until: int) -> None:
    """Book every liquidity instance's trades up to seq `until` (in the caller's transaction)."""
    if not connection.execute("SELECT 1 FROM liquidity_instances LIMIT 1").fetchall():
        return
    for instance, owner, market, fee_bps, since, *kept in connection.execute(INSTANCES).fetchall():
        book = Book(*kept) if since is not None else Book()
        since = since or 0
        if until <= since:
            continue
        trades = connection.execute(
            FILLS, {"owner": owner, "market": market, "since": since, "until": until}
        ).fetchall()
        for price, qty, notional, buys, both, maker_buys in trades:
            for side in (maker_buys, not maker_buys) if both else (buys,):
                book.fill(side, price, qty, notional, fee_bps)
        connection.execute(
            "INSERT OR REPLACE INTO liquidity_books VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [instance, owner, market, until, book.position, book.average_cost, book.realized,
             book.cash, book.bought, book.sold, book.fees, book.fills],
        )  # fmt: skip


LAST_PRICES = """
SELECT market, CAST(arg_max(price, seq) AS VARCHAR) FROM trades WHERE seq > $since GROUP BY market
"""
"""Each market's last trade price among the trades since the previous tops (`$since`: a market
new since then traded only after them), so a sync reads its own trades, not the history (a
constant bound, by which DuckDB's zone maps skip the rest)."""
TOPS = """
INSERT INTO market_tops VALUES (?, ?, CAST(? AS DECIMAL(38, 12)), CAST(? AS DECIMAL(38, 12)),
                                CAST(? AS DECIMAL(38, 12)))
"""
"""A market's top; the tops replace the previous ones (deleted first: an upsert by a key, or
rows made from list parameters, cost several times these few rows' inserts)."""


def record_tops(connection: duckdb.DuckDBPyConnection, books: dict, seq: int) -> None:
    """The best bid and ask of each of the engine's `books` (at the store's position, `seq`)."""
    if not books:
        return
    previous = connection.execute("SELECT market, seq, CAST(last AS VARCHAR) FROM market_tops")
    before = {market: (at, last) for market, at, last in previous.fetchall()}
    since = min((at for at, _ in before.values()), default=0)
    lasts = {market: last for market, (_, last) in before.items()}
    lasts.update(connection.execute(LAST_PRICES, {"since": since}).fetchall())
    rows = []
    for symbol, book in books.items():
        tick = book.market.tick
        bid, ask = book.bids.best_price(), book.asks.best_price()
        rows.append([symbol, seq, None if bid is None else tick.text_of(bid),
                     None if ask is None else tick.text_of(ask), lasts.get(symbol)])  # fmt: skip
    connection.execute("DELETE FROM market_tops")
    connection.executemany(TOPS, rows)

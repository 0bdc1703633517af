"""Trading partners: pairs of wallets that trade mostly with each other.

Wash volume is traded between wallets that answer to one person, so each of them does much of
its trading with the others. Honest traders meet whoever is on the other side of the book, most
often a market maker, and a maker's volume is spread over hundreds of counterparties; so a pair
counts as partners only when its volume is a large share of BOTH wallets' volume in the market
and window. Wash wallets that also trade honestly as cover keep their partners (the cover only
dilutes the share), and the cover trades stay out of what the detectors built on this flag.

The round-trip, trade-cycle and churn detectors look only at the trades between partners.

Known market makers (`known_makers`: the owners of the node's `[liquidity.NAME]` instances, and
owners an operator declared with `mnode integrity maker`) are nobody's partner in the markets
they make. In a thin market, the one the built-in liquidity is for, a maker may be the only
counterparty of a few takers, and its fills with each are then a large share of both volumes:
a busy taker buying and selling back looks like a round trip, the maker's day of fills with
three takers like churn. A known maker's own wash is still seen: trades with itself, or with an
owner linked to it (`mnode integrity link`), are self-trades (`self_trades`), which no maker
is exempt from; and a ring that merely trades with a maker keeps its members' trades with each
other, so it is still found without the maker.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import duckdb

from .alerts import decimal_text
from .window_totals import BUCKETS, bring_up_to_date

KNOWN_MAKERS_TABLE = """
CREATE TABLE IF NOT EXISTS known_makers (
    owner VARCHAR, market VARCHAR, instance VARCHAR, source VARCHAR, reason VARCHAR,
    time TIMESTAMPTZ
);
"""
"""Owners known to make markets: in `market`, or in every market (NULL). `source` is
'liquidity' for a `[liquidity.NAME]` instance (`instance`), 'operator' for a declaration
(`reason`). The analytics store creates it."""

KNOWN_MAKER = """EXISTS (SELECT 1 FROM known_makers k
                WHERE k.owner = {wallet} AND coalesce(k.market, {market}) = {market})"""
"""SQL: is the wallet a known maker in the market (two column expressions)."""

PARTNER_TRADES = f"""
t AS (
    SELECT market, {BUCKETS} AS bucket, seq, seller, buyer, qty, notional
    FROM trades WHERE seller <> buyer AND seq <= $until
),
totals AS (
    SELECT p.market, p.bucket, p.a, p.b, p.volume, p.trades, va.trades AS a_trades,
           va.requotes AS a_requotes, vb.trades AS b_trades, vb.requotes AS b_requotes
    FROM window_pairs p
    JOIN window_wallets va ON va.window_s = p.window_s AND va.market = p.market
                          AND va.bucket = p.bucket AND va.wallet = p.a
    JOIN window_wallets vb ON vb.window_s = p.window_s AND vb.market = p.market
                          AND vb.bucket = p.bucket AND vb.wallet = p.b
    WHERE p.window_s = $window
      AND p.volume >= $share * va.volume AND p.volume >= $share * vb.volume
      AND NOT {KNOWN_MAKER.format(wallet="p.a", market="p.market")}
      AND NOT {KNOWN_MAKER.format(wallet="p.b", market="p.market")}
)"""
"""Common table expressions over each market and window of `$window` seconds: `t` (trades between
two wallets, up to seq `$until`, a row in each of their two windows) and `totals` (the pairs
whose volume together is at least `$share` of each one's, with their totals and each one's
trades and requotes), read from the running totals (window_totals); no pair with a known
maker in the market is one."""

QUERY = f"""
WITH {PARTNER_TRADES}
SELECT t.market, t.bucket, t.seq, t.seller, t.buyer, CAST(t.qty AS VARCHAR),
       CAST(t.notional AS VARCHAR)
FROM t
SEMI JOIN totals p
  ON p.market = t.market AND p.bucket = t.bucket
 AND p.a = least(t.seller, t.buyer) AND p.b = greatest(t.seller, t.buyer)
ORDER BY t.market, t.bucket, t.seq
"""


@dataclass(frozen=True)
class PartnerTrade:
    seq: int
    seller: str
    buyer: str
    qty: Decimal
    notional: Decimal


def partner_trades(
    connection: duckdb.DuckDBPyConnection, window_s: int, min_share: float
) -> dict[tuple[str, float], list[PartnerTrade]]:
    """The trades between partners, by (market, window start), oldest first: pairs whose
    volume together is at least `min_share` of each one's volume in that market and window."""
    found: dict[tuple[str, float], list[PartnerTrade]] = defaultdict(list)
    until = bring_up_to_date(connection, window_s)
    rows = connection.execute(
        QUERY, {"window": window_s, "share": min_share, "until": until}
    ).fetchall()
    for market, bucket, seq, seller, buyer, qty, notional in rows:
        found[market, bucket].append(
            PartnerTrade(seq, seller, buyer, Decimal(qty), Decimal(notional))
        )
    return found


def net_positions(trades: list[PartnerTrade]) -> dict[str, Decimal]:
    """What each wallet bought minus what it sold, over `trades`."""
    net: dict[str, Decimal] = defaultdict(Decimal)
    for trade in trades:
        net[trade.seller] -= trade.qty
        net[trade.buyer] += trade.qty
    return net


def total_notional(trades: list[PartnerTrade]) -> str:
    return decimal_text(sum((trade.notional for trade in trades), Decimal(0)))


def known_maker_wallets(connection: duckdb.DuckDBPyConnection) -> set[str]:
    """The owners known to make some market (`known_makers`)."""
    return {row[0] for row in connection.execute("SELECT owner FROM known_makers").fetchall()}

"""Running totals per market and time window, kept in the analytics store between scans.

The partner detectors (round trips, trade cycles, churn, wash clusters) judge each pair and
wallet by its volume and trade count in a market and window. Summing them over the whole history
at every scan made a scan's cost grow with the history: on a busy node the scans fell behind and
a wash ring went unflagged. So the totals live in tables of their own and each scan adds only
what arrived since the last one (events with a seq beyond the window's mark), in one transaction
with the new mark. Sums of exact decimals and counts do not depend on how the trades were cut
into scans, so the totals, and what the detectors find from them, are those of a scan over the
whole history; a file without them (a new one, or one from before they existed) gets them from
its whole history at its first scan.

Tables, one set of rows per window length `window_s` (`bucket`: the window's start, in epoch
seconds, as `time_bucket` cuts them):
- `totals_marks`: the seq up to which each set of totals (`windows:3600`, ...) includes the
  events; `add_since_mark` keeps it, for the other detectors' totals too.
- `window_pairs`: a pair of wallets' (`a` < `b`) volume and trades together.
- `window_wallets`: a wallet's volume and trades, and its requotes (cancels and replaces
  accepted), which tell a market maker from a wash wallet.
Trades of a wallet with itself are left out (the self-trade detector names them).
"""

from __future__ import annotations

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS totals_marks (totals VARCHAR PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS window_pairs (
    window_s BIGINT, market VARCHAR, bucket DOUBLE, a VARCHAR, b VARCHAR,
    volume DECIMAL(38, 12), trades BIGINT, PRIMARY KEY (window_s, market, bucket, a, b)
);
CREATE TABLE IF NOT EXISTS window_wallets (
    window_s BIGINT, market VARCHAR, bucket DOUBLE, wallet VARCHAR,
    volume DECIMAL(38, 12), trades BIGINT, requotes BIGINT,
    PRIMARY KEY (window_s, market, bucket, wallet)
);
"""

BUCKET = "epoch(time_bucket(to_seconds($window), time))"
"""A row's window start for `$window` seconds (the same expression wherever windows are cut)."""

NEW_TRADES = "FROM trades WHERE seq > $since AND seq <= $until AND seller <> buyer"

ADD_PAIRS = f"""
INSERT INTO window_pairs
SELECT $window, market, {BUCKET}, least(seller, buyer), greatest(seller, buyer), sum(qty),
       count(*)
{NEW_TRADES}
GROUP BY ALL
ON CONFLICT DO UPDATE SET volume = volume + excluded.volume, trades = trades + excluded.trades
"""

ADD_WALLETS = f"""
INSERT INTO window_wallets
SELECT $window, market, {BUCKET}, wallet, sum(qty), count(*), 0
FROM (SELECT market, time, seller AS wallet, qty {NEW_TRADES}
      UNION ALL SELECT market, time, buyer, qty {NEW_TRADES})
GROUP BY ALL
ON CONFLICT DO UPDATE SET volume = volume + excluded.volume, trades = trades + excluded.trades
"""

ADD_REQUOTES = f"""
INSERT INTO window_wallets
SELECT $window, market, {BUCKET}, owner, 0, 0, count(*)
FROM events
WHERE seq > $since AND seq <= $until AND kind = 'accepted' AND op IN ('cancel', 'replace')
  AND owner IS NOT NULL
GROUP BY ALL
ON CONFLICT DO UPDATE SET requotes = requotes + excluded.requotes
"""

LAST_SEQ = """
SELECT greatest((SELECT coalesce(max(seq), 0) FROM trades),
                (SELECT coalesce(max(seq), 0) FROM events))
"""


def bring_up_to_date(connection: duckdb.DuckDBPyConnection, window_s: int) -> int:
    """Add the trades and events since the last scan to the totals of windows of `window_s`
    seconds; the seq they now include (read the trades up to it, not beyond: the store may
    have grown meanwhile)."""
    return add_since_mark(
        connection,
        f"windows:{window_s}",
        SCHEMA,
        (ADD_PAIRS, ADD_WALLETS, ADD_REQUOTES),
        {"window": window_s},
    )


def add_since_mark(
    connection: duckdb.DuckDBPyConnection,
    totals: str,
    schema: str,
    statements: tuple[str, ...],
    parameters: dict,
) -> int:
    """Run `statements` (with `parameters` and `$since`, `$until`: the seqs of the events they
    are to add) over what arrived since the mark of `totals`, and move the mark, in one
    transaction; the seq the totals now include. `schema` creates their tables if missing."""
    connection.execute(SCHEMA)
    connection.execute(schema)
    connection.execute("BEGIN TRANSACTION")
    try:
        until = connection.execute(LAST_SEQ).fetchone()[0]
        row = connection.execute(
            "SELECT seq FROM totals_marks WHERE totals = ?", [totals]
        ).fetchone()
        since = row[0] if row else 0
        if until > since:
            span = {**parameters, "since": since, "until": until}
            for statement in statements:
                connection.execute(statement, span)
            connection.execute("INSERT OR REPLACE INTO totals_marks VALUES (?, ?)", [totals, until])
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return max(until, since)

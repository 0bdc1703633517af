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

Windows hop: of each length `window_s` there are two cuts, `time_bucket`'s (hours on the hour,
days at midnight UTC) and the same shifted by half a window, so every trade is in two windows
that overlap by half. A pattern within half a window (a round trip of two weeks, a ring going
round in half an hour) is then wholly inside one window wherever the boundaries fall, and one
spread over more than a window is inside none; with one cut, a round trip of four days across a
30-day boundary went unseen.

Tables, one set of rows per window length `window_s` (`bucket`: the window's start, in epoch
seconds):
- `totals_marks`: the seq up to which each set of totals (`hopping:3600`, ...) includes the
  events; `add_since_mark` keeps it, for the other detectors' totals too. Totals of a file cut
  before windows hopped (marked `windows:3600`, ...) are made again from the whole history.
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

BUCKETS = (
    "unnest([epoch(time_bucket(to_seconds($window), time)), "
    "epoch(time_bucket(to_seconds($window), time, to_seconds($window / 2)))])"
)
"""A row's two window starts for `$window` seconds, a row each (the same expression wherever
windows are cut)."""

NEW_TRADES = f"""(
    SELECT market, {BUCKETS} AS bucket, seller, buyer, qty FROM trades
    WHERE seq > $since AND seq <= $until AND seller <> buyer
)"""

ADD_PAIRS = f"""
INSERT INTO window_pairs
SELECT $window, market, bucket, least(seller, buyer), greatest(seller, buyer), sum(qty),
       count(*)
FROM {NEW_TRADES}
GROUP BY ALL
ON CONFLICT DO UPDATE SET volume = volume + excluded.volume, trades = trades + excluded.trades
"""

ADD_WALLETS = f"""
INSERT INTO window_wallets
WITH new AS {NEW_TRADES}
SELECT $window, market, bucket, wallet, sum(qty), count(*), 0
FROM (SELECT market, bucket, seller AS wallet, qty FROM new
      UNION ALL SELECT market, bucket, buyer, qty FROM new)
GROUP BY ALL
ON CONFLICT DO UPDATE SET volume = volume + excluded.volume, trades = trades + excluded.trades
"""

ADD_REQUOTES = f"""
INSERT INTO window_wallets
SELECT $window, market, bucket, owner, 0, 0, count(*)
FROM (SELECT market, {BUCKETS} AS bucket, owner FROM events
      WHERE seq > $since AND seq <= $until AND kind = 'accepted' AND op IN ('cancel', 'replace')
        AND owner IS NOT NULL)
GROUP BY ALL
ON CONFLICT DO UPDATE SET requotes = requotes + excluded.requotes
"""

FORGET_UNHOPPED = (
    "DELETE FROM window_pairs WHERE window_s = $window",
    "DELETE FROM window_wallets WHERE window_s = $window",
    "DELETE FROM totals_marks WHERE totals = 'windows:' || $window",
)
"""A window length's totals and mark from before windows hopped (one cut, `windows:N`)."""

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
        f"hopping:{window_s}",
        SCHEMA,
        (ADD_PAIRS, ADD_WALLETS, ADD_REQUOTES),
        {"window": window_s},
        unmarked=FORGET_UNHOPPED,
    )


def add_since_mark(
    connection: duckdb.DuckDBPyConnection,
    totals: str,
    schema: str,
    statements: tuple[str, ...],
    parameters: dict,
    unmarked: tuple[str, ...] = (),
) -> int:
    """Run `statements` (with `parameters` and `$since`, `$until`: the seqs of the events they
    are to add) over what arrived since the mark of `totals`, and move the mark, in one
    transaction; the seq the totals now include. `schema` creates their tables if missing;
    `unmarked` (with `parameters`) clears, when there is no mark yet, what totals of an older
    kind the file holds, before the whole history is added."""
    connection.execute(SCHEMA)
    connection.execute(schema)
    connection.execute("BEGIN TRANSACTION")
    try:
        until = connection.execute(LAST_SEQ).fetchone()[0]
        row = connection.execute(
            "SELECT seq FROM totals_marks WHERE totals = ?", [totals]
        ).fetchone()
        since = row[0] if row else 0
        if row is None:
            for statement in unmarked:
                connection.execute(statement, parameters)
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

"""The time-window detectors on a journal whose commits carry the market's own times.

Each market here is committed through a real LMDB journal whose clock is the market's (`Store(...,
clock=...)`), followed into DuckDB by the journal follower and scanned: the path from a commit's
time to a detector's window is the node's own. Every test puts one pattern inside its window
(flagged) and the same pattern spread beyond it (not flagged): the round trip's 30 days, churn's
day, the trade cycles' hour and day; and the gap regularity the anomaly features read from the
times between a wallet's trades. Windows hop by half their length (window_totals), so a pattern
within half a window is inside one wherever the boundaries fall.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from marketnode.node.analytics.duckdb_store import AnalyticsStore
from marketnode.node.analytics.follower import JournalFollower
from marketnode.node.analytics.integrity import detector_settings, scan
from marketnode.node.core.commands import PeerCommand
from marketnode.node.core.markets import MarketSpec
from marketnode.node.home.config import IntegrityConfig
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store
from marketnode.plugins.anomalous_wallets import FEATURES
from marketnode.plugins.anomalous_wallets import QUERY as WALLET_FEATURES
from marketnode.plugins.window_totals import bring_up_to_date

SPEC = MarketSpec("LAND-ETH", "LAND", "ETH", "0.01", "1", "1", "1000", "1000000", "none")
START = datetime(2026, 11, 2, tzinfo=UTC)
"""A Monday at midnight: hour and day windows (time_bucket's) start on the hour and the day."""
HOUR, DAY = 3600, 86400
SETTINGS = detector_settings(IntegrityConfig())


class TimedMarket:
    """A market journaled one trade per commit, each commit stamped at the market's time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.now_ns = int(START.timestamp() * 1e9)
        self.store = Store(folder / "data", map_size=64 << 20, sync="none", clock=self.clock)
        self.durable = DurableEngine(self.store)
        self.durable.configure([SPEC])
        self.ids = itertools.count(1)

    def clock(self) -> int:
        return self.now_ns

    def trade(self, seller: str, buyer: str, qty: int, at_s: float, price: str = "100") -> None:
        """`seller` rests a sell and `buyer` takes it at once, committed `at_s` after START."""
        self.now_ns = int(START.timestamp() * 1e9) + int(at_s * 1e9)
        orders = [
            {"op": "new", "market": SPEC.symbol, "id": next(self.ids), "owner": seller,
             "side": "sell", "price": price, "qty": str(qty)},
            {"op": "new", "market": SPEC.symbol, "id": next(self.ids), "owner": buyer,
             "side": "buy", "price": price, "qty": str(qty), "tif": "IOC"},
        ]  # fmt: skip
        self.durable.submit([msgspec.convert(order, PeerCommand) for order in orders])

    def honest_flow(self, at_s: float, takers: int = 30) -> None:
        """A maker filling `takers` wallets once each way, an hour apart from `at_s`: enough
        volume that the patterns are not most of the market."""
        for n in range(takers):
            self.trade("0xmm", f"0xh{n}", 4 + n % 5, at_s + 2 * n * HOUR)
            self.trade(f"0xh{n}", "0xmm", 4 + n % 5, at_s + (2 * n + 1) * HOUR)

    def scanned(self) -> list:
        """Every alert of a scan of the market followed into a new DuckDB store."""
        analytics = AnalyticsStore(self.folder / "analytics.duckdb")
        try:
            JournalFollower(self.store, analytics).sync()
            return scan(analytics.connection, SETTINGS)
        finally:
            analytics.close()

    def gap_regularity(self) -> dict[str, float]:
        """The anomaly features' gap regularity of every wallet with three trades or more."""
        analytics = AnalyticsStore(self.folder / "analytics.duckdb")
        try:
            JournalFollower(self.store, analytics).sync()
            rows = analytics.connection.execute(
                WALLET_FEATURES, {"min_trades": 3, "pair_share": 0.3}
            ).fetchall()
        finally:
            analytics.close()
        column = 1 + FEATURES.index("gap_regularity")  # (after the wallet)
        return {row[0]: row[column] for row in rows}

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def market(tmp_path):
    opened = TimedMarket(tmp_path)
    yield opened
    opened.close()


def flagged(alerts: list, detector: str, wallets: set[str]) -> list:
    """The alerts of `detector` naming all of `wallets`."""
    return [a for a in alerts if a.detector == detector and wallets <= set(a.wallets)]


@pytest.mark.parametrize(("returned_after_s", "found"), [(5 * DAY, True), (45 * DAY, False)])
def test_a_round_trip_within_thirty_days_is_flagged_and_one_over_more_is_not(
    market, returned_after_s, found
):
    market.trade("0xa", "0xb", 5, 0)
    market.trade("0xb", "0xa", 5, returned_after_s)
    trips = flagged(market.scanned(), "round_trips", {"0xa", "0xb"})
    assert bool(trips) == found
    if found:
        assert trips[0].evidence["window_s"] == 30 * DAY


def test_a_round_trip_within_half_its_window_is_flagged_wherever_the_windows_start(market):
    """Windows are cut on fixed boundaries (time_bucket's): a trip of a few days across one
    of them is still a round trip."""
    boundary_s = datetime(2026, 11, 12, tzinfo=UTC).timestamp() - START.timestamp()
    market.trade("0xa", "0xb", 5, boundary_s - 2 * DAY)  # (a 30-day window starts Nov 12)
    market.trade("0xb", "0xa", 5, boundary_s + 2 * DAY)
    assert flagged(market.scanned(), "round_trips", {"0xa", "0xb"})


def churn_legs(market: TimedMarket, every_s: float) -> None:
    """Twelve trades between a churner and its partner, back and forth, `every_s` apart."""
    for n in range(12):
        seller, buyer = ("0xc", "0xp") if n % 2 else ("0xp", "0xc")
        market.trade(seller, buyer, 5, 6 * HOUR + n * every_s)


@pytest.mark.parametrize(("every_s", "found"), [(20 * 60, True), (5 * HOUR, False)])
def test_churn_within_a_day_is_flagged_and_the_same_trades_over_three_days_are_not(
    market, every_s, found
):
    market.honest_flow(0)
    churn_legs(market, every_s)
    churns = [a for a in market.scanned() if a.detector == "churn"]
    assert bool(flagged(churns, "churn", {"0xc", "0xp"})) == found
    if found:
        assert churns[0].evidence["window_s"] == DAY


def ring(market: TimedMarket, leg_every_s: float, rounds: int = 3, start_s: float = 0) -> None:
    """Three wallets passing 4 units round, one leg every `leg_every_s`."""
    wallets = ["0xr0", "0xr1", "0xr2"]
    legs = itertools.cycle(zip(wallets, wallets[1:] + wallets[:1], strict=True))
    for n in range(3 * rounds):
        seller, buyer = next(legs)
        market.trade(seller, buyer, 4, start_s + n * leg_every_s)


def cycle_windows(alerts: list) -> set[int]:
    ring_wallets = {"0xr0", "0xr1", "0xr2"}
    return {a.evidence["window_s"] for a in flagged(alerts, "trade_cycles", ring_wallets)}


def test_a_ring_going_round_within_an_hour_is_a_cycle_of_the_hour_window(market):
    ring(market, leg_every_s=3 * 60, start_s=10 * 60)
    assert HOUR in cycle_windows(market.scanned())


def test_a_ring_going_round_over_hours_is_a_cycle_of_the_day_window_only(market):
    ring(market, leg_every_s=HOUR + 60, start_s=60)
    assert cycle_windows(market.scanned()) == {DAY}


def test_a_ring_going_round_over_days_is_no_cycle(market):
    ring(market, leg_every_s=DAY + 60, start_s=60)
    assert cycle_windows(market.scanned()) == set()


def test_gap_regularity_reads_the_times_between_a_wallets_trades(market):
    """A bot trading every five minutes on the dot is regular (near 0); a wallet trading at
    uneven times, from seconds to hours apart, is not."""
    for n in range(8):
        market.trade("0xbot", "0xmm", 2, n * 300)
    for at_s in itertools.accumulate([0, 30, 4000, 90, 12000, 600, 7, 20000]):
        market.trade("0xmm", "0xodd", 2, 3 * DAY + at_s)
    regularity = market.gap_regularity()
    assert regularity["0xbot"] < 0.05
    assert regularity["0xodd"] > 0.5


def test_totals_cut_before_windows_hopped_are_made_again(market):
    """A file whose window totals hold one cut only (`windows:N`, before windows hopped) gets
    them again from its whole history, not the shifted cut added on top."""
    market.honest_flow(0, takers=5)
    ring(market, leg_every_s=20 * 60)
    analytics = AnalyticsStore(market.folder / "analytics.duckdb")
    try:
        JournalFollower(market.store, analytics).sync()
        connection = analytics.connection
        bring_up_to_date(connection, DAY)
        made = {table: rows(connection, table) for table in ("window_pairs", "window_wallets")}
        shifted = "bucket <> epoch(time_bucket(to_seconds(window_s), to_timestamp(bucket)))"
        for table in made:  # as an older file holds them: the aligned cut only, its own mark
            connection.execute(f"DELETE FROM {table} WHERE {shifted}")
        connection.execute("UPDATE totals_marks SET totals = 'windows:86400'")
        bring_up_to_date(connection, DAY)
        assert {table: rows(connection, table) for table in made} == made
        assert rows(connection, "totals_marks")[0][0] == "hopping:86400"
    finally:
        analytics.close()


def rows(connection, table: str) -> list[tuple]:
    return connection.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()

"""Round trips, trade cycles, churn and wash clusters over partners' trades, on a real DuckDB
store."""

from __future__ import annotations

import itertools

import pytest

from marketnode.node.analytics.duckdb_store import AnalyticsStore
from marketnode.node.analytics.integrity import detector_settings, scan
from marketnode.node.home.config import IntegrityConfig
from marketnode.plugins.partners import partner_trades

MARKET = "PUNK-ETH"


class Trades:
    """Writes trades straight into an analytics store's `trades` table."""

    def __init__(self, store: AnalyticsStore) -> None:
        self.connection = store.connection
        self.seqs = itertools.count(1)

    def add(self, seller: str, buyer: str, qty: int, price: int = 100) -> int:
        seq = next(self.seqs)
        self.connection.execute(
            "INSERT INTO trades VALUES (?, now(), ?, ?, ?, ?, 'm', ?, 't', ?, 'buy', ?, ?)",
            [seq, MARKET, price, qty, price * qty, seller, buyer, buyer, seller],
        )
        return seq


@pytest.fixture
def trades(tmp_path):
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    yield Trades(store)
    store.close()


def alerts_of(trades: Trades, detector: str) -> list:
    settings = detector_settings(IntegrityConfig())
    return [a for a in scan(trades.connection, settings) if a.detector == detector]


def one_window(found: dict) -> list:
    """The partners' trades of a market traded in one instant: the same in both windows that
    hold it (windows hop by half their length)."""
    first, second = found.values()
    assert first == second
    return first


def honest_market(trades: Trades, maker: str = "0xmm", takers: int = 40) -> None:
    """A maker filling forty takers, each twice, once each way."""
    for n in range(takers):
        trades.add(maker, f"0xh{n}", 5 + n % 7)
        trades.add(f"0xh{n}", maker, 3 + n % 5)


def test_partners_trade_mostly_with_each_other_a_maker_with_nobody(trades):
    honest_market(trades)
    wash = [trades.add("0xa", "0xb", 10), trades.add("0xb", "0xa", 10)]
    cover = trades.add("0xa", "0xmm", 3)  # a little honest trading as cover
    found = partner_trades(trades.connection, 86400, 0.3)
    pair_trades = one_window(found)
    assert [t.seq for t in pair_trades] == wash
    assert cover not in [t.seq for t in pair_trades]


def test_two_makers_that_trade_with_everyone_are_not_partners(trades):
    honest_market(trades, "0xmm1")
    honest_market(trades, "0xmm2")
    for _ in range(10):  # they also hit each other, both ways, flat
        trades.add("0xmm1", "0xmm2", 4)
        trades.add("0xmm2", "0xmm1", 4)
    for detector in ("round_trips", "trade_cycles", "churn"):
        assert alerts_of(trades, detector) == []


def test_a_round_trip_back_at_a_moved_price_in_pieces(trades):
    honest_market(trades)
    legs = [
        trades.add("0xa", "0xb", 20, price=100),
        trades.add("0xb", "0xa", 9, price=104),
        trades.add("0xb", "0xa", 10, price=97),  # 19 back of 20: within 15%
    ]
    (alert,) = alerts_of(trades, "round_trips")
    assert alert.wallets == ["0xa", "0xb"] and alert.trades == legs
    assert alert.evidence["sold"] == {"0xa": "20", "0xb": "19"}
    assert alert.wash_volume == str(20 * 100 + 9 * 104 + 10 * 97)


def test_a_one_way_transfer_between_partners_is_no_round_trip(trades):
    honest_market(trades)
    trades.add("0xa", "0xb", 20)
    trades.add("0xb", "0xa", 5)
    assert alerts_of(trades, "round_trips") == []


def test_a_ring_joined_by_an_outsider_is_found_without_the_outsider(trades):
    honest_market(trades)
    ring = ["0xr1", "0xr2", "0xr3"]
    seqs = []
    for size in (10, 12, 7):
        for seller, buyer in zip(ring, ring[1:] + ring[:1], strict=True):
            seqs.append(trades.add(seller, buyer, size))
    # an outsider trading both ways with a ring member, mostly one way: r1's partner too, so
    # the component holds all four and does not balance until the outsider is peeled off
    outsider = [trades.add("0xr1", "0xo", 22), trades.add("0xo", "0xr1", 8)]
    partnered = one_window(partner_trades(trades.connection, 3600, 0.3))
    assert set(outsider) <= {t.seq for t in partnered}
    cycles = alerts_of(trades, "trade_cycles")
    assert [(a.wallets, a.severity) for a in cycles] == [(ring, "high")]
    assert cycles[0].trades == seqs
    assert not set(outsider) & set(cycles[0].trades)


def test_a_ring_with_a_sniped_leg_is_a_medium_cycle(trades):
    honest_market(trades)
    ring = ["0xr1", "0xr2", "0xr3", "0xr4"]
    for size in (10, 12, 7, 9):
        for seller, buyer in zip(ring, ring[1:] + ring[:1], strict=True):
            trades.add(seller, buyer, size)
    trades.add("0xr2", "0xr3", 3)  # one leg a little bigger: r2 ends 3 short, r3 3 long
    (cycle,) = alerts_of(trades, "trade_cycles")
    assert cycle.wallets == ring and cycle.severity == "medium"
    assert cycle.evidence["net_positions"] == {"0xr1": "0", "0xr2": "-3", "0xr3": "3", "0xr4": "0"}


def test_churn_names_the_churner_and_its_partners(trades):
    honest_market(trades)
    seqs = []
    for size in range(1, 7):
        seqs.append(trades.add("0xc", "0xp", size))
        seqs.append(trades.add("0xp", "0xc", size))
    (alert,) = alerts_of(trades, "churn")
    assert alert.wallets == ["0xc", "0xp"] and alert.trades == seqs
    assert alert.evidence["net_position"] == "0" and alert.evidence["trades"] == 12


def test_a_wash_cluster_is_found_and_a_maker_community_is_not(trades):
    import random

    rng = random.Random(5)
    honest_market(trades)
    farm = [f"0xf{n}" for n in range(6)]
    seqs = []
    for _ in range(60):  # at random among themselves: no pair stands out, nobody ends flat
        seller, buyer = rng.sample(farm, 2)
        seqs.append(trades.add(seller, buyer, rng.randint(1, 9)))
    cover = trades.add("0xf0", "0xmm", 2)
    (cluster,) = alerts_of(trades, "wash_clusters")
    assert cluster.wallets == sorted(farm) and cluster.trades == seqs
    assert cover not in cluster.trades

    # makers that trade mostly with each other but requote all day are no cluster
    makers = [f"0xq{n}" for n in range(4)]
    for _ in range(40):
        seller, buyer = rng.sample(makers, 2)
        trades.add(seller, buyer, 3)
    for maker in makers:
        for n in range(30):
            trades.connection.execute(
                "INSERT INTO events (seq, kind, op, market, owner, time) "
                "VALUES (?, 'accepted', 'cancel', ?, ?, now())",
                [10_000 + n, MARKET, maker],
            )
    assert [a.wallets for a in alerts_of(trades, "wash_clusters")] == [sorted(farm)]


def test_a_closed_market_trading_at_random_is_no_wash_cluster(trades):
    """Twelve wallets that are the whole market trade with each other at random: of course
    they trade mostly among themselves; there is nobody else."""
    import random

    rng = random.Random(3)
    wallets = [f"0xw{n}" for n in range(12)]
    for _ in range(600):
        seller, buyer = rng.sample(wallets, 2)
        trades.add(seller, buyer, rng.randint(1, 9))
    assert alerts_of(trades, "wash_clusters") == []
    farm = [f"0xfarm{n}" for n in range(3)]  # a small farm beside them is still found
    for _ in range(30):
        for seller, buyer in itertools.permutations(farm, 2):
            trades.add(seller, buyer, 2)
    assert [a.wallets for a in alerts_of(trades, "wash_clusters")] == [farm]


def requote(trades: Trades, wallet: str, times: int, first_seq: int) -> None:
    """`times` accepted cancels by `wallet`: what a market maker does all day."""
    for n in range(times):
        trades.connection.execute(
            "INSERT INTO events (seq, kind, op, market, owner, time) "
            "VALUES (?, 'accepted', 'cancel', ?, ?, now())",
            [first_seq + n, MARKET, wallet],
        )


def test_a_ring_diluted_by_cover_that_comes_back_flat_is_a_wash_cluster(trades):
    honest_market(trades, takers=80)
    ring = [f"0xr{n}" for n in range(6)]
    seqs = []
    for _ in range(2):  # two rounds: four trades each inside, half of each one's volume
        for seller, buyer in zip(ring, ring[1:] + ring[:1], strict=True):
            seqs.append(trades.add(seller, buyer, 10))
    for member in ring:  # as much again with the maker, as cover
        trades.add(member, "0xmm", 20)
        trades.add("0xmm", member, 20)
    (cluster,) = alerts_of(trades, "wash_clusters")
    assert cluster.wallets == ring and cluster.trades == seqs
    assert set(cluster.evidence["net_positions"].values()) == {"0"}
    assert cluster.severity == "medium"


def test_a_supplier_diluted_by_cover_that_moves_one_way_is_no_wash_cluster(trades):
    """The same dilution, but the asset changes hands: one wallet sells to five, again and
    again, and none of them sells back."""
    honest_market(trades, takers=80)
    buyers = [f"0xb{n}" for n in range(5)]
    for _ in range(3):
        for buyer in buyers:
            trades.add("0xsupplier", buyer, 10)
    for wallet in ["0xsupplier", *buyers]:
        trades.add(wallet, "0xmm", 15)
        trades.add("0xmm", wallet, 15)
    assert alerts_of(trades, "wash_clusters") == []


def test_a_maker_filling_one_trader_both_ways_in_a_quiet_hour_is_no_cycle(trades):
    cycle = [trades.add("0xmk", "0xt", 5), trades.add("0xt", "0xmk", 10)]
    cycle.append(trades.add("0xmk", "0xt", 5))
    (alert,) = alerts_of(trades, "trade_cycles")  # a wallet that does not requote: a cycle
    assert alert.wallets == ["0xmk", "0xt"] and alert.trades == cycle
    requote(trades, "0xmk", 30, first_seq=10_000)  # a maker requotes all day
    assert alerts_of(trades, "trade_cycles") == []


def test_traders_dealing_at_random_beside_a_maker_are_no_flat_cluster(trades):
    """Eight active traders deal with each other at random, and as much with the maker. As a
    group they look nearly flat (the sum of their nets is a tenth of their volume: nets that
    wander at random grow slower than the volume), but no member's own trading inside came back
    to flat as a wash wallet's does (the worst is a third of its volume off)."""
    import random

    rng = random.Random(2)
    honest_market(trades, takers=400)
    active = [f"0xa{n}" for n in range(8)]
    for _ in range(240):
        seller, buyer = rng.sample(active, 2)
        trades.add(seller, buyer, rng.randint(1, 9))
    for wallet in active:
        trades.add(wallet, "0xmm", 150)
        trades.add("0xmm", wallet, 150)
    assert alerts_of(trades, "wash_clusters") == []

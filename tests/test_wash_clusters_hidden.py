"""Wash clusters that hide (issue 16): a ring whose cover keeps its members' inside share low,
and wallets linked only through a common funder, one trade per pair; and the honest look-alikes
that the looser rules must leave alone. On a real DuckDB store, trades written straight in."""

from __future__ import annotations

import test_partner_detectors
from test_partner_detectors import alerts_of, honest_market

trades = test_partner_detectors.trades
"""A real analytics store to write trades into (the partner detectors' fixture)."""


def test_a_ring_buried_in_cover_that_passed_the_same_lots_round_is_a_wash_cluster(trades):
    """Eight wallets pass a lot of 29 round, then one of 38, and trade almost twice as much
    with honest takers as cover: the members do under 40% of their volume inside the ring, but
    every one of them ends exactly where it started."""
    honest_market(trades, takers=80)
    ring = [f"0xr{n}" for n in range(8)]
    seqs = []
    for lot in (29, 38):
        for seller, buyer in zip(ring, ring[1:] + ring[:1], strict=True):
            seqs.append(trades.add(seller, buyer, lot))
    for n, member in enumerate(ring):
        trades.add(member, f"0xh{n}", 120)
        trades.add(f"0xh{n + 8}", member, 120)
    (cluster,) = alerts_of(trades, "wash_clusters")
    assert cluster.wallets == ring and cluster.trades == seqs
    assert max(cluster.evidence["inside_share"].values()) < 0.4
    assert set(cluster.evidence["net_positions"].values()) == {"0"}


def test_traders_dealing_back_and_forth_under_cover_that_end_nearly_flat_are_no_cluster(trades):
    """Three busy traders deal with each other a few times and end within a tenth of their
    trading with each other of flat, but not exactly: with most of their volume elsewhere,
    nearly flat is what chance gives; only a lot passed round comes back to the unit."""
    honest_market(trades, takers=80)
    for seller, buyer, qty in [
        ("0xa", "0xb", 30), ("0xb", "0xc", 25), ("0xc", "0xa", 28),
        ("0xa", "0xc", 20), ("0xc", "0xb", 24), ("0xb", "0xa", 22),
    ]:  # fmt: skip
        trades.add(seller, buyer, qty)
    for wallet in ("0xa", "0xb", "0xc"):
        trades.add(wallet, "0xmm", 300)
        trades.add("0xmm", wallet, 300)
    assert alerts_of(trades, "wash_clusters") == []


def test_wallets_linked_only_through_a_common_funder_are_one_wash_cluster(trades):
    """A funder hands lots out, one trade each; the funded pass them among themselves, mostly
    once per pair, and sell what they hold back: few pairs traded twice, but every wallet's
    trading is with the group and every one ends flat."""
    honest_market(trades, takers=80)
    passes = [
        ("0xfunder", "0xw0", 27), ("0xfunder", "0xw1", 32), ("0xfunder", "0xw2", 48),
        ("0xfunder", "0xw3", 27), ("0xfunder", "0xw4", 99),
        ("0xw3", "0xw4", 8), ("0xw4", "0xw3", 2), ("0xw0", "0xw4", 3), ("0xw2", "0xw3", 22),
        ("0xw0", "0xw1", 24), ("0xw1", "0xw2", 16),
        ("0xw1", "0xfunder", 40), ("0xw2", "0xfunder", 42), ("0xw3", "0xfunder", 43),
        ("0xw4", "0xfunder", 108),
    ]  # fmt: skip
    seqs = [trades.add(seller, buyer, qty) for seller, buyer, qty in passes]
    bystander = trades.add("0xw0", "0xh7", 1)  # one honest trade of a funded wallet
    (cluster,) = alerts_of(trades, "wash_clusters")
    assert cluster.wallets == sorted({"0xfunder", "0xw0", "0xw1", "0xw2", "0xw3", "0xw4"})
    assert cluster.trades == seqs and bystander not in cluster.trades


def test_a_desk_between_one_way_clients_trading_once_each_is_no_cluster(trades):
    """An OTC desk buys blocks from sellers and sells them on to buyers, each client once or
    twice: the clients trade only with the desk, and the desk ends flat, but the asset moved
    from the sellers to the buyers."""
    honest_market(trades, takers=80)
    for seller, buyer, qty in [
        ("0xs0", "0xdesk", 400), ("0xdesk", "0xb0", 250), ("0xdesk", "0xb1", 150),
        ("0xs1", "0xdesk", 600), ("0xdesk", "0xb2", 600), ("0xs0", "0xdesk", 300),
        ("0xdesk", "0xb0", 300),
    ]:  # fmt: skip
        trades.add(seller, buyer, qty)
    assert alerts_of(trades, "wash_clusters") == []


def test_a_desk_and_clients_that_each_only_sell_or_only_buy_are_no_cluster(trades):
    """An OTC desk trades blocks with two clients, five times each: all three trade only with
    each other, again and again, as a farm's wallets do, but one client only sells and the
    other only buys. A one-way member takes the asset off (or brings it in): it is a customer,
    not an accomplice, and without them the desk is no group."""
    honest_market(trades, takers=80)
    for qty in (30, 50, 70, 40, 60):
        trades.add("0xseller", "0xdesk", qty)
        trades.add("0xdesk", "0xbuyer", qty + 1)
    assert alerts_of(trades, "wash_clusters") == []

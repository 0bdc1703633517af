"""Benford's law and round sizes: the market-statistics detector on sizes made to order."""

import random
from decimal import Decimal

import duckdb

from marketnode.node.analytics.duckdb_store import SCHEMA
from marketnode.plugins import market_statistics
from marketnode.plugins.market_statistics import benford_mad, first_digit, is_round


def test_first_digits_and_round_sizes():
    assert [first_digit(Decimal(t)) for t in ("0.042", "7", "19.5", "300")] == [4, 7, 1, 3]
    assert [is_round(Decimal(t)) for t in ("10", "250", "7", "10.5", "0.1")] == [
        True, True, False, False, False,
    ]  # fmt: skip


def _market(sizes: list[Decimal]) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(SCHEMA)
    connection.executemany(
        "INSERT INTO trades (seq, time, market, price, qty, notional, buyer, seller) "
        "VALUES (?, now(), 'PUNK-ETH', 1, ?, ?, 'b', 's')",
        [[seq, str(size), str(size)] for seq, size in enumerate(sizes, start=1)],
    )
    return connection


def test_organic_sizes_pass_and_uniform_ones_are_flagged():
    rng = random.Random(3)
    organic = [Decimal(f"{10 ** rng.uniform(0, 3):.2f}") for _ in range(2000)]
    organic += [Decimal(rng.choice((10, 20, 50, 100))) for _ in range(300)]
    assert benford_mad(organic) < 0.015
    assert market_statistics.detect_integrity(_market(organic), {}) == []

    uniform = [Decimal(rng.randint(1, 9)) for _ in range(2000)]
    (alert,) = market_statistics.detect_integrity(_market(uniform), {})
    assert alert.detector == "market_statistics" and alert.market == "PUNK-ETH"
    assert alert.evidence["benford_mad"] > 0.015 and alert.evidence["round_share"] == 0
    assert len(alert.trades) == 2000

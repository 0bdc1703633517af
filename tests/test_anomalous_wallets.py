"""The IsolationForest detector ranks an odd wallet first among ordinary ones."""

import random

import duckdb

from marketnode.node.analytics.duckdb_store import SCHEMA
from marketnode.plugins import anomalous_wallets


def test_an_odd_bot_is_ranked_first():
    rng = random.Random(11)
    connection = duckdb.connect()
    connection.execute(SCHEMA)
    rows = []
    seq = 0
    wallets = [f"0x{n:02d}" for n in range(40)]
    for _ in range(1200):  # ordinary wallets: random partners, sizes, prices near 100
        buyer, seller = rng.sample(wallets, 2)
        qty = rng.randint(1, 20)
        price = round(100 + rng.uniform(-1, 1), 2)
        seq += 1
        rows.append([seq, seq * 37 + rng.randint(0, 30), price, qty, price * qty, buyer, seller])
    for n in range(60):  # a bot: one partner, big identical sizes, far from the market, clockwork
        seq += 1
        price = 130.0
        rows.append([seq, 100_000 + n * 10, price, 500, price * 500, "0xbot", "0xpal"])
    connection.executemany(
        "INSERT INTO trades (seq, time, market, price, qty, notional, buyer, seller) "
        "VALUES (?, to_timestamp(?), 'PUNK-ETH', ?, ?, ?, ?, ?)",
        rows,
    )
    alerts = anomalous_wallets.detect_integrity(connection, {})
    ranked = sorted(alerts, key=lambda alert: alert.evidence["rank"])
    assert ranked, "the bot was not isolated"
    assert ranked[0].wallets[0] in ("0xbot", "0xpal")
    assert {alert.wallets[0] for alert in ranked[:2]} == {"0xbot", "0xpal"}
    evidence = ranked[0].evidence
    assert evidence["wallets_scored"] == 42 and evidence["model_version"]
    assert set(evidence["features"]) == set(anomalous_wallets.FEATURES)
    # ordinary wallets are mostly left alone
    assert sum(1 for alert in alerts if alert.wallets[0] not in ("0xbot", "0xpal")) <= 4

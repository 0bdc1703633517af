"""The anomaly leads: a wash pair that comes back to flat is reported, with the features that
made it unusual, while a one-way supplier as concentrated as it is not; a wallet a wash finding
already names is marked as explained."""

import json
import random

import duckdb

from marketnode.node.analytics.duckdb_store import SCHEMA
from marketnode.plugins import anomalous_wallets
from marketnode.plugins.alerts import Alert


def market_with_a_wash_pair_and_a_supplier() -> duckdb.DuckDBPyConnection:
    """Forty ordinary wallets trading at random; a pair passing the same sizes back and forth
    (wash); a supplier selling one size to one client again and again (benign)."""
    rng = random.Random(11)
    connection = duckdb.connect()
    connection.execute(SCHEMA)
    rows = []
    wallets = [f"0x{n:02d}" for n in range(40)]
    for _ in range(1200):
        buyer, seller = rng.sample(wallets, 2)
        rows.append((buyer, seller, rng.randint(1, 20), round(100 + rng.uniform(-1, 1), 2)))
    for _ in range(30):
        qty = rng.randint(1, 20)
        rows.append(("0xwashA", "0xwashB", qty, 100.0))
        rows.append(("0xwashB", "0xwashA", qty, 100.0))
        rows.append(("0xclient", "0xsupplier", 25, 100.0))
    rng.shuffle(rows)
    connection.executemany(
        "INSERT INTO trades (seq, time, market, price, qty, notional, buyer, seller) "
        "VALUES (?, to_timestamp(?), 'PUNK-ETH', ?, ?, ?, ?, ?)",
        [
            [seq, seq * 37, price, qty, price * qty, buyer, seller]
            for seq, (buyer, seller, qty, price) in enumerate(rows, start=1)
        ],
    )
    return connection


SETTINGS = {"anomalous_wallets": {**anomalous_wallets.DEFAULTS, "retrain_s": 0}}


def test_a_wash_pair_is_a_lead_and_a_one_way_supplier_is_not():
    connection = market_with_a_wash_pair_and_a_supplier()
    alerts = anomalous_wallets.detect_integrity(connection, SETTINGS)
    leads = [alert.wallets[0] for alert in sorted(alerts, key=lambda a: a.evidence["rank"])]
    assert set(leads[:2]) == {"0xwashA", "0xwashB"}
    assert not {"0xsupplier", "0xclient"} & set(leads)
    assert len(leads) <= 4  # ordinary wallets are mostly left alone
    evidence = alerts[0].evidence
    assert evidence["wallets_scored"] == 44 and evidence["model_version"]
    assert set(evidence["features"]) == set(anomalous_wallets.FEATURES)
    assert evidence["features"]["flat_group_share"] == 1.0
    assert any(reason.startswith("flat_group_share 1 against") for reason in evidence["why"])


def test_the_supplier_is_as_closed_as_the_wash_pair_but_not_flat():
    connection = market_with_a_wash_pair_and_a_supplier()
    groups = anomalous_wallets.closed_groups(connection, 0.05)
    assert groups["0xsupplier"] == (1.0, 1.0, 0.0)
    assert groups["0xwashA"] == (1.0, 0.0, 1.0)


def test_a_lead_a_wash_finding_of_the_scan_names_is_explained_and_the_others_ranked_apart():
    connection = market_with_a_wash_pair_and_a_supplier()
    leads = anomalous_wallets.detect_integrity(connection, SETTINGS)
    finding = Alert(
        detector="round_trips", severity="high", market="PUNK-ETH",
        wallets=["0xwashA", "0xwashB"], trades=[1], evidence={}, wash_volume="0",
    )  # fmt: skip
    anomalous_wallets.explain_leads([finding, *leads])
    by_wallet = {lead.wallets[0]: lead.evidence for lead in leads}
    assert by_wallet["0xwashA"]["explained"] == ["round_trips"]
    assert by_wallet["0xwashA"]["lead_rank"] is None
    others = sorted((e for e in by_wallet.values() if not e["explained"]), key=lambda e: e["rank"])
    assert [e["lead_rank"] for e in others] == list(range(1, len(others) + 1))


def test_the_kept_wash_findings_name_their_wallets():
    connection = market_with_a_wash_pair_and_a_supplier()
    connection.execute(
        "INSERT INTO alerts VALUES ('a1', now(), 'round_trips', 'high', 'PUNK-ETH', "
        "['0xwashA', '0xwashB'], [1], ?, 0, NULL), ('a2', now(), 'anomalous_wallets', 'low', "
        "'PUNK-ETH', ['0xsupplier'], [2], ?, 0, NULL)",
        [json.dumps({}), json.dumps({})],
    )
    assert anomalous_wallets.explained_wallets(connection) == {
        "0xwashA": ["round_trips"], "0xwashB": ["round_trips"],
    }  # fmt: skip

"""Integrity detectors as plugins: self-trades (incl. linked owners) and round trips."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.plugins.host import INTEGRITY, SCALING, PluginHost
from tests.test_plugins import fresh_plugins, install_distribution

runner = CliRunner()


def mnode(*args: str):
    return runner.invoke(app, list(args))


def new(order_id: str, owner: str, side: str, price: str, qty: str) -> dict:
    return {
        "op": "new", "market": "PUNK-ETH", "id": order_id, "owner": owner, "side": side,
        "price": price, "qty": qty, "stp": "none",
    }  # fmt: skip


SCENARIO = [
    # honest: two different wallets, once
    new("h1", "0xh1", "sell", "101", "5"), new("h2", "0xh2", "buy", "101", "5"),
    # a self-trade
    new("s1", "0xw", "sell", "102", "3"), new("s2", "0xw", "buy", "102", "3"),
    # a round trip: a sells to b, b sells it back
    new("r1", "0xa", "sell", "103", "4"), new("r2", "0xb", "buy", "103", "4"),
    new("r3", "0xb", "sell", "103", "4"), new("r4", "0xa", "buy", "103", "4"),
    # two owners the operator links (same funder)
    new("l1", "0xc", "sell", "104", "2"), new("l2", "0xd", "buy", "104", "2"),
    # an honest market maker: buys from one wallet and sells to another
    new("m1", "0xmm", "buy", "99", "6"), new("m2", "0xh1", "sell", "99", "6"),
    new("m3", "0xmm", "sell", "99.5", "6"), new("m4", "0xh2", "buy", "99.5", "6"),
    # a ring of three: x sells to y, y to z, z back to x, the same size
    new("x1", "0xx", "sell", "105", "7"), new("y1", "0xy", "buy", "105", "7"),
    new("y2", "0xy", "sell", "105", "7"), new("z1", "0xz", "buy", "105", "7"),
    new("z2", "0xz", "sell", "105", "7"), new("x2", "0xx", "buy", "105", "7"),
]  # fmt: skip
# a churner: trades with one counterparty twelve times and ends flat (each pair of trades is
# also a round trip, and the two wallets form a cycle)
for n in range(6):
    size = str(2 + n)
    SCENARIO += [
        new(f"c{n}s", "0xchurn", "sell", "106", size), new(f"k{n}b", "0xk", "buy", "106", size),
        new(f"k{n}s", "0xk", "sell", "106", size), new(f"c{n}b", "0xchurn", "buy", "106", size),
    ]  # fmt: skip


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    assert mnode("init", str(home)).exit_code == 0
    source = tmp_path / "scenario.ndjson"
    source.write_bytes(b"\n".join(msgspec.json.encode(c) for c in SCENARIO))
    assert mnode("replay", str(source), "--home", str(home)).exit_code == 0
    return home


def test_built_in_detectors_load_through_their_entry_point_group_and_no_other():
    names = {name for name, _ in PluginHost.load(INTEGRITY).list_name_plugin()}
    assert {"self_trades", "round_trips"} <= names
    assert not names & {name for name, _ in PluginHost.load(SCALING).list_name_plugin()}


def test_scan_flags_the_wash_and_only_the_wash(home):
    assert mnode("analytics", "sync", "--home", str(home)).exit_code == 0
    linked = mnode(
        "integrity", "link", "0xc", "0xd", "--reason", "same funder", "--home", str(home)
    )
    assert linked.exit_code == 0, linked.stderr
    result = mnode("integrity", "scan", "--home", str(home), "--json")
    assert result.exit_code == 0, result.stderr
    alerts = json.loads(result.stdout)
    found = {(a["detector"], tuple(a["wallets"])) for a in alerts}
    assert found == {
        ("self_trades", ("0xw",)),
        ("self_trades", ("0xc", "0xd")),
        ("round_trips", ("0xa", "0xb")),
        ("round_trips", ("0xchurn", "0xk")),
        # a and b: one trade each way is a round trip, not yet a cycle (min_trades 3)
        ("trade_cycles", ("0xx", "0xy", "0xz")),
        ("trade_cycles", ("0xchurn", "0xk")),
        ("churn", ("0xchurn", "0xk")),  # each is the other's only partner: one alert
    }
    volumes = {(a["detector"], tuple(a["wallets"])): a["wash_volume"] for a in alerts}
    assert volumes["self_trades", ("0xw",)] == "306"
    assert volumes["round_trips", ("0xa", "0xb")] == "824"
    assert volumes["trade_cycles", ("0xx", "0xy", "0xz")] == str(3 * 7 * 105)
    for alert in alerts:
        assert alert["market"] == "PUNK-ETH" and alert["severity"] in ("low", "medium", "high")
        assert alert["trades"] and all(isinstance(seq, int) for seq in alert["trades"])
    flagged = {wallet for alert in alerts for wallet in alert["wallets"]}
    assert not flagged & {"0xh1", "0xh2", "0xmm"}

    again = mnode("integrity", "scan", "--home", str(home))
    assert again.stderr.strip().endswith(f"{len(alerts)} alerts (0 new)")
    listed = json.loads(mnode("alerts", "--home", str(home), "--json").stdout)
    assert len(listed) == len(alerts)
    medium = json.loads(
        mnode("alerts", "--severity", "medium", "--home", str(home), "--json").stdout
    )
    assert {(a["detector"], tuple(a["wallets"])) for a in medium} == {
        ("round_trips", ("0xa", "0xb")), ("churn", ("0xchurn", "0xk")),
    }  # fmt: skip
    round_trip = next(a for a in alerts if a["detector"] == "round_trips")
    shown = json.loads(mnode("alerts", "show", round_trip["id"], "--home", str(home)).stdout)
    assert shown["trades"] == round_trip["trades"]
    assert shown["evidence"]["round_trips"] == 1
    assert shown["evidence"]["sold"] == {"0xa": "4", "0xb": "4"}
    acked = mnode("alerts", "ack", round_trip["id"], "--label", "wash", "--home", str(home))
    assert acked.exit_code == 0, acked.stderr
    assert (
        json.loads(mnode("alerts", "show", round_trip["id"], "--home", str(home)).stdout)["label"]
        == "wash"
    )
    wrong = mnode("alerts", "ack", round_trip["id"], "--label", "maybe", "--home", str(home))
    assert wrong.exit_code == 2 and "label must be one of wash, benign" in wrong.stderr
    missing = mnode("alerts", "show", "nope", "--home", str(home))
    assert missing.exit_code == 2 and missing.stderr == "mnode: no alert 'nope'\n"


def test_a_failing_detector_is_logged_and_the_others_alerts_kept(home, caplog):
    """A detector's bug costs its own alerts only; a scan interrupted because the analytics
    process stops still stops at once."""
    import duckdb

    from marketnode.node.analytics.duckdb_store import AnalyticsStore
    from marketnode.node.analytics.integrity import detector_settings, scan
    from marketnode.node.home.config import IntegrityConfig
    from marketnode.plugins.hookspecs import hookimpl
    from marketnode.plugins.host import plugin_host

    class Broken:
        @hookimpl
        def detect_integrity(self, connection):
            raise KeyError("no such column")

    class Interrupted:
        @hookimpl
        def detect_integrity(self, connection):
            raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    assert mnode("analytics", "sync", "--home", str(home)).exit_code == 0
    analytics = AnalyticsStore(home / "analytics.duckdb")
    try:
        settings = detector_settings(IntegrityConfig())
        with fresh_plugins():
            expected = [alert.id for alert in scan(analytics.connection, settings)]
            plugin_host(INTEGRITY).register(Broken(), name="broken")
            assert [alert.id for alert in scan(analytics.connection, settings)] == expected
            assert "integrity plugin broken failed in detect_integrity: KeyError: " in caplog.text
            plugin_host(INTEGRITY).register(Interrupted(), name="interrupted")
            with pytest.raises(duckdb.InterruptException):
                scan(analytics.connection, settings)
    finally:
        analytics.close()
    assert len(expected) == 6  # test_scan_flags_the_wash_and_only_the_wash, owners unlinked


def test_scan_and_link_refuse_a_running_node_home(home):
    (home / "node.json").write_text("{}")
    scanned = mnode("integrity", "scan", "--home", str(home))
    assert scanned.exit_code == 4  # README: 4, another process writes the store
    assert scanned.stderr.startswith(f"mnode: a node is running on {home}: stop it first")
    bad = mnode("integrity", "link", "0xc", "0xd", "--home", str(home))
    assert bad.exit_code == 2 and "--reason" in bad.stderr


@pytest.mark.slow
def test_the_evaluation_scores_a_labelled_market():
    from marketnode.node.tools.washgen import WASH_PATTERNS

    result = mnode("integrity", "eval", "--seed", "1", "--steps", "20000", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("precision", "recall", "anomaly_auc", "lead_precision", "maker_flag_rate"):
        assert key in report
    assert set(report["recall_by_pattern"]) == set(WASH_PATTERNS)
    assert report["wash_trades"] > 100
    # the trade detectors' target: flagged trades are wash
    assert report["precision"] >= 0.95
    assert report["wallets_precision"] >= 0.95
    assert set(report["detectors"]) == {
        "self_trades", "round_trips", "trade_cycles", "churn", "wash_clusters",
    }  # fmt: skip
    assert report["recall"] >= 0.9 and report["anomaly_auc"] >= 0.9
    assert report["maker_flag_rate"] == 0


@pytest.mark.slow
def test_the_evaluation_over_seeds_reports_the_worst_case_and_one_seed_reads_as_text():
    result = mnode("integrity", "eval", "--seeds", "2", "--steps", "3000", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["seeds"] == [1, 2] and len(report["per_seed"]) == 2
    for key in ("precision", "recall", "anomaly_auc", "lead_precision"):
        assert report[key] == min(seed[key] for seed in report["per_seed"])
    assert report["maker_flag_rate"] == max(seed["maker_flag_rate"] for seed in report["per_seed"])
    for name, recall in report["recall_by_pattern"].items():
        assert recall == min(seed["recall_by_pattern"][name] for seed in report["per_seed"])
    text = mnode("integrity", "eval", "--steps", "3000")
    assert text.exit_code == 0 and "lead precision" in text.stdout, text.stderr
    refused = mnode("integrity", "eval", "--seeds", "0")
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1


THIRD_PARTY = '''
from marketnode.plugins.alerts import Alert
from marketnode.plugins.hookspecs import hookimpl


@hookimpl
def integrity_settings():
    return {"big_trades": {"min_qty": 5.0}}


@hookimpl
def detect_integrity(connection, settings):
    limit = settings["big_trades"]["min_qty"]
    rows = connection.execute(
        "SELECT market, list(seq ORDER BY seq) FROM trades WHERE qty >= ? GROUP BY market",
        [limit],
    ).fetchall()
    return [
        Alert(detector="big_trades", severity="low", market=market, wallets=[],
              trades=list(seqs), evidence={"min_qty": limit}, wash_volume="0")
        for market, seqs in rows
    ]
'''


@pytest.fixture
def third_party_plugin(tmp_path, monkeypatch):
    """A plugin installed as a distribution of its own, found through the entry point group."""
    site = tmp_path / "site"
    install_distribution(
        site, "bigtrades", "0.1", "[marketnode.integrity]\nbig_trades = bigtrades_plugin\n",
        {"bigtrades_plugin": THIRD_PARTY},
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    with fresh_plugins():
        yield
    import sys

    sys.modules.pop("bigtrades_plugin", None)


def scan_json(home: Path) -> list[dict]:
    result = mnode("integrity", "scan", "--home", str(home), "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_third_party_detector_is_configured_in_its_own_table(home, third_party_plugin):
    config = home / "config.toml"
    found = [a for a in scan_json(home) if a["detector"] == "big_trades"]
    assert len(found[0]["trades"]) == 12  # every trade of at least 5
    config.write_text(config.read_text() + "\n[integrity.big_trades]\nmin_qty = 7\n")
    found = [a for a in scan_json(home) if a["detector"] == "big_trades"]
    assert found[0]["evidence"] == {"min_qty": 7}
    assert len(found[0]["trades"]) == 5


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[integrity.big_trades]\nmin_qty = 7", "[integrity.big_trades]: no installed detector"),
        ("[integrity.churn]\nwindow = 60", "[integrity.churn]: window: unknown key (known keys:"),
        ('[integrity.churn]\nmin_trades = "ten"', "[integrity.churn]: min_trades: must be like"),
        ("[integrity.trade_cycles]\nwindows_s = [60, 0.5]", "windows_s: must be like"),
    ],
)
def test_detector_settings_mistakes_are_one_line_and_exit_3(home, table, message):
    config = home / "config.toml"
    text = config.read_text()  # its [integrity] tables replaced by this one
    start, end = text.index("[integrity]"), text.index("[store]")
    config.write_text(text[:start] + table + "\n\n" + text[end:])
    result = mnode("integrity", "scan", "--home", str(home))
    assert result.exit_code == 3
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert mnode("start", "--home", str(home)).exit_code == 3


def test_rank_lists_every_scored_wallet_highest_first(tmp_path):
    from marketnode.node.tools.washgen import MARKET, generate_labelled_market

    home = tmp_path / "home"
    assert mnode("init", str(home)).exit_code == 0
    config = home / "config.toml"
    text = config.read_text()
    config.write_text(
        text[: text.index("\n[[markets]]") + 1]
        + f'[[markets]]\nsymbol = "{MARKET.symbol}"\nbase = "EVAL"\nquote = "ETH"\n'
        f'tick_size = "{MARKET.tick_size}"\nlot_size = "1"\nmin_qty = "1"\n'
        'max_qty = "1000"\nmax_notional = "1000000"\nstp = "none"\n'
    )
    market = generate_labelled_market(3, 4000)
    source = tmp_path / "market.ndjson"
    source.write_bytes(b"\n".join(msgspec.json.encode(c) for c in market.commands))
    assert mnode("replay", str(source), "--home", str(home)).exit_code == 0
    assert mnode("analytics", "sync", "--home", str(home)).exit_code == 0
    result = mnode("integrity", "rank", "--home", str(home), "--json", "--limit", "1000")
    assert result.exit_code == 0, result.stderr
    ranked = json.loads(result.stdout)
    scores = [record["score"] for record in ranked]
    assert scores == sorted(scores, reverse=True) and len(ranked) > 100
    assert [record["rank"] for record in ranked] == list(range(1, len(ranked) + 1))
    injected = {w for members in market.wash_groups.values() for w in members} | market.bots
    top = {record["wallet"] for record in ranked[:20]}
    assert len(top & injected) >= 15  # the injected wallets lead the ranking
    text_output = mnode("integrity", "rank", "--home", str(home), "--limit", "3")
    assert text_output.exit_code == 0 and len(text_output.stdout.splitlines()) == 3


def test_stats_and_a_view_give_each_markets_wash_share(home):
    scanned = json.loads(mnode("integrity", "scan", "--home", str(home), "--json").stdout)
    named = {
        seq
        for alert in scanned
        if alert["detector"] not in ("market_statistics", "anomalous_wallets")
        for seq in alert["trades"]
    }
    trades = json.loads(
        mnode("sql", "--home", str(home), "SELECT seq, notional FROM trades", "--json").stdout
    )
    total = sum(Decimal(t["notional"]) for t in trades)
    wash = sum(Decimal(t["notional"]) for t in trades if t["seq"] in named)
    (row,) = json.loads(mnode("stats", "--home", str(home), "--json").stdout)
    assert 0 < wash < total
    assert Decimal(str(row["wash_share"])) == round(wash / total, 4)

    # a reviewer's benign verdict takes an alert's trades out of the share
    for alert in scanned:
        if alert["detector"] not in ("market_statistics", "anomalous_wallets"):
            acked = mnode("alerts", "ack", alert["id"], "--label", "benign", "--home", str(home))
            assert acked.exit_code == 0, acked.stderr
    (row,) = json.loads(mnode("stats", "--home", str(home), "--json").stdout)
    assert Decimal(str(row["wash_share"])) == 0

"""The integrity scan across nodes: wash rings whose legs trade in markets on different nodes
are flagged, benign look-alikes across nodes are not (generated trades, in process), and the
scan over real journals exports each node's trades once, incrementally."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow
import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.analytics.cluster_scan import scan_cluster
from marketnode.node.analytics.cross_market import (
    NAME,
    REQUOTE_COLUMNS,
    TRADE_COLUMNS,
    detect_cross_market,
    union_store,
)
from marketnode.node.analytics.node_export import ExportFailed
from marketnode.node.home.layout import Home

runner = CliRunner()
START = datetime(2026, 9, 21, tzinfo=UTC)
MARKETS = {"EVAL-ETH": "n1", "EVAL-USDC": "n2", "EVAL-BTC": "n3", "OTHER-ETH": "n1"}
"""Three markets of one asset on three nodes, and a market of another asset."""
ASSET_MARKETS = ("EVAL-ETH", "EVAL-USDC", "EVAL-BTC")
SPLITS = ("alternate", "one_leg_away", "random", "three_nodes")
"""How a ring's legs are spread over the nodes: every other leg on n2; one leg on n2 and the
rest on n1; each leg of each round on n1 or n2 at random; leg i on the (i mod 3)-th node."""


@dataclass
class Flow:
    """Generated trades and requotes of a cluster, by node, with the wash rings' wallets."""

    rng: random.Random
    time: datetime = START
    trades: dict[str, list[tuple]] = field(default_factory=dict)
    requotes: dict[str, list[tuple]] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)
    rings: list[set[str]] = field(default_factory=list)
    makers: tuple[str, ...] = tuple(f"0xmaker{n}" for n in range(4))

    def _seq(self, node: str) -> int:
        self.seqs[node] = self.seqs.get(node, 0) + 1
        return self.seqs[node]

    def trade(self, market: str, seller: str, buyer: str, qty: int, at: datetime) -> None:
        node = MARKETS[market]
        price = 100 + self.rng.randint(-20, 20) / 4
        self.trades.setdefault(node, []).append(
            (node, self._seq(node), at, market, market.split("-")[0], price, qty, price * qty,
             buyer, seller)
        )  # fmt: skip

    def requote(self, market: str, owner: str, at: datetime) -> None:
        node = MARKETS[market]
        self.requotes.setdefault(node, []).append(
            (node, self._seq(node), at, market, market.split("-")[0], "replace", owner)
        )

    def with_maker(self, wallet: str, market: str, qty: int, selling: bool, at: datetime) -> None:
        """`wallet` takes a maker's quote, the maker requoting as makers do."""
        maker = self.rng.choice(self.makers)
        seller, buyer = (wallet, maker) if selling else (maker, wallet)
        self.trade(market, seller, buyer, qty, at)
        for _ in range(2):
            self.requote(market, maker, at)

    def background(self, steps: int) -> None:
        """Honest traders two-way with the makers and now and then with each other, on every
        node; arbitrageurs buying on one node and selling the same lots on another."""
        honest = [f"0xhonest{n}" for n in range(60)]
        arbitrageurs = [f"0xarb{n}" for n in range(3)]
        for _ in range(steps):
            self.time += timedelta(seconds=self.rng.expovariate(1 / 8))
            draw = self.rng.random()
            market = self.rng.choice(list(MARKETS))
            if draw < 0.7:
                wallet = self.rng.choice(honest)
                self.with_maker(wallet, market, self.rng.randint(1, 10), self.rng.random() < 0.5,
                                self.time)  # fmt: skip
            elif draw < 0.85:
                seller, buyer = self.rng.sample(honest, 2)
                self.trade(market, seller, buyer, self.rng.randint(1, 10), self.time)
            else:
                wallet = self.rng.choice(arbitrageurs)
                bought, sold = self.rng.sample(ASSET_MARKETS, 2)
                qty = self.rng.randint(1, 20)
                self.with_maker(wallet, bought, qty, False, self.time)
                self.with_maker(wallet, sold, qty, True, self.time + timedelta(seconds=3))

    def ring(self, size: int, split: str, cover: float) -> None:
        """A ring of `size` wallets passing one lot round 3 or 4 times within half an hour, its
        legs on the nodes as `split` says, each member also trading about `cover` of its ring
        volume with the makers."""
        members = [f"0xring{len(self.rings)}m{n}" for n in range(size)]
        self.rings.append(set(members))
        at = self.time - timedelta(minutes=self.rng.randint(40, 200))
        rounds = self.rng.randint(3, 4)
        for round_number in range(rounds):
            qty = self.rng.randint(5, 40)
            for leg in range(size):
                at += timedelta(seconds=self.rng.randint(5, 60))
                market = _leg_market(split, leg, round_number, self.rng)
                self.trade(market, members[leg], members[(leg + 1) % size], qty, at)
                if self.rng.random() < cover:
                    self.with_maker(members[leg], self.rng.choice(ASSET_MARKETS), qty,
                                    self.rng.random() < 0.5, at)  # fmt: skip

    def write(self, folder: Path) -> dict[str, int]:
        """Every node's rows as node_export writes them; the nodes' numbers."""
        connection = duckdb.connect(":memory:")
        tables = (("trades", TRADE_COLUMNS, self.trades),
                  ("requotes", REQUOTE_COLUMNS, self.requotes))  # fmt: skip
        for kind, columns, rows_by_node in tables:
            (folder / kind).mkdir(parents=True, exist_ok=True)
            for node, rows in rows_by_node.items():
                connection.execute(f"CREATE OR REPLACE TABLE rows ({columns})")
                names = [row[0] for row in connection.execute("DESCRIBE rows").fetchall()]
                records = [dict(zip(names, row, strict=True)) for row in rows]
                connection.register("batch", pyarrow.Table.from_pylist(records))
                connection.execute("INSERT INTO rows BY NAME SELECT * FROM batch")
                connection.unregister("batch")
                connection.execute(
                    f"COPY rows TO '{folder / kind / node}-1.parquet' (FORMAT PARQUET)"
                )
        connection.close()
        return {node: number for number, node in enumerate(sorted(set(MARKETS.values())), 1)}


def _leg_market(split: str, leg: int, round_number: int, rng: random.Random) -> str:
    if split == "alternate":
        return ASSET_MARKETS[leg % 2]
    if split == "one_leg_away":
        return ASSET_MARKETS[1 if leg == 0 else 0]
    if split == "three_nodes":
        return ASSET_MARKETS[leg % 3]
    return ASSET_MARKETS[rng.randrange(2)] if leg else ASSET_MARKETS[round_number % 2]


def scan_generated(seed: int, tmp_path: Path) -> tuple[Flow, list]:
    """A cluster's flow of `seed`: background, and five rings of 2 to 6 wallets, each spread
    over the nodes differently, with honest cover; the cross-market alerts."""
    flow = Flow(random.Random(seed))
    flow.background(1500)
    for index, size in enumerate((2, 3, 4, 5, 6)):
        flow.ring(size, SPLITS[(seed + index) % len(SPLITS)], cover=flow.rng.uniform(0.2, 0.6))
    folder = tmp_path / f"seed{seed}"
    connection = union_store(folder, flow.write(folder))
    try:
        return flow, detect_cross_market(connection)
    finally:
        connection.close()


def test_rings_spread_over_nodes_are_flagged_and_their_look_alikes_are_not(tmp_path):
    worst_recall, most_false = 1.0, 0
    for seed in range(1, 13):
        flow, alerts = scan_generated(seed, tmp_path)
        ring_wallets = set().union(*flow.rings)
        flagged = {wallet for alert in alerts for wallet in alert.wallets}
        found = [ring for ring in flow.rings if any(ring <= set(a.wallets) for a in alerts)]
        worst_recall = min(worst_recall, len(found) / len(flow.rings))
        most_false = max(most_false, len(flagged - ring_wallets))
        assert all(alert.detector == NAME and alert.market == "EVAL" for alert in alerts)
        assert all(len(a.evidence["nodes"]) > 1 or len(a.evidence["markets"]) > 1 for a in alerts)
    print(f"worst ring recall {worst_recall}, most honest wallets flagged {most_false}")
    assert worst_recall == 1.0
    assert most_false == 0


def test_a_ring_inside_one_market_of_one_node_is_left_to_that_node(tmp_path):
    flow = Flow(random.Random(3))
    flow.background(300)
    members = ["0xa", "0xb", "0xc"]
    for round_number in range(3):
        for leg in range(3):
            at = START + timedelta(minutes=round_number * 3 + leg)
            flow.trade("EVAL-ETH", members[leg], members[(leg + 1) % 3], 10, at)
    folder = tmp_path / "one"
    connection = union_store(folder, flow.write(folder))
    assert detect_cross_market(connection) == []


def test_no_exports_yet_is_an_empty_scan(tmp_path):
    connection = union_store(tmp_path / "nothing", {"n1": 1})
    assert detect_cross_market(connection) == []


def _home(tmp_path: Path, name: str) -> Home:
    """A node home whose markets are the default ones and PUNK in USDC."""
    path = tmp_path / "nodes" / name
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    config = path / "config.toml"
    config.write_text(config.read_text() + '\n[[markets]]\nsymbol = "PUNK-USDC"\nbase = "PUNK"\n'
                      'quote = "USDC"\ntick_size = "0.01"\nlot_size = "1"\n')  # fmt: skip
    return Home(path)


def _replay(home: Home, commands: list[dict], tmp_path: Path) -> None:
    source = tmp_path / f"{home.path.name}.ndjson"
    source.write_text("".join(json.dumps(command) + "\n" for command in commands))
    result = runner.invoke(app, ["replay", str(source), "--home", str(home.path)])
    assert result.exit_code == 0, result.stderr


def _legs(market: str, legs: list[tuple[str, str]], first_id: int) -> list[dict]:
    """Each leg a sell resting at 100 and its buyer's IOC taking it."""
    commands = []
    for offset, (seller, buyer) in enumerate(legs):
        order = first_id + 2 * offset
        commands += [
            {"op": "new", "id": order, "owner": seller, "market": market, "side": "sell",
             "price": "100", "qty": "5"},
            {"op": "new", "id": order + 1, "owner": buyer, "market": market, "side": "buy",
             "price": "100", "qty": "5", "tif": "IOC"},
        ]  # fmt: skip
    return commands


def test_the_scan_over_two_nodes_journals_flags_the_ring_once(tmp_path):
    homes = {"n1": _home(tmp_path, "n1"), "n2": _home(tmp_path, "n2")}
    _replay(homes["n1"], _legs("PUNK-ETH", [("0xa", "0xb"), ("0xc", "0xa")] * 2, 1), tmp_path)
    _replay(homes["n2"], _legs("GOLD-USDC", [("0xx", "0xy")], 1), tmp_path)
    first = scan_cluster(tmp_path, homes)
    assert first.alerts == []  # n1 alone holds a chain c -> a -> b, no cycle
    assert [(e.node, e.trades) for e in first.exports] == [("n1", 4), ("n2", 1)]

    _replay(homes["n2"], _legs("PUNK-USDC", [("0xb", "0xc")] * 2, 101), tmp_path)
    second = scan_cluster(tmp_path, homes)
    assert [(e.node, e.trades) for e in second.exports] == [("n1", 0), ("n2", 2)]
    assert second.trades == 7
    [alert] = second.alerts
    assert sorted(alert["wallets"]) == ["0xa", "0xb", "0xc"]
    assert alert["evidence"]["nodes"] == ["n1", "n2"]
    assert alert["evidence"]["markets"] == ["PUNK-ETH", "PUNK-USDC"]
    assert alert["severity"] == "high" and alert["wash_volume"] == "30"
    assert second.new == [alert["id"]]

    third = scan_cluster(tmp_path, homes)
    assert [e.trades for e in third.exports] == [0, 0]
    assert [a["id"] for a in third.alerts] == [alert["id"]] and third.new == []
    kept = json.loads((tmp_path / "scan" / "alerts.json").read_text())
    assert [a["id"] for a in kept] == [alert["id"]]


def test_scan_of_a_folder_with_no_cluster_is_one_line(tmp_path):
    result = runner.invoke(app, ["cluster", "scan", "--cluster", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "no cluster here" in result.stderr and "Traceback" not in result.stderr


def test_a_node_whose_journal_cannot_be_read_is_named(tmp_path):
    home = _home(tmp_path, "n1")
    home.config_path.write_text("[node]\nname = 3\n")
    with pytest.raises(ExportFailed, match="node n1"):
        scan_cluster(tmp_path, {"n1": home})

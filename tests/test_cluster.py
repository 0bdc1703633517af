"""A cluster of nodes: the market directory in NATS JetStream (a real nats-server from this
environment, on a free loopback port, stopped by its pid), `mnode cluster up/status/down`, a
market moved with `mnode markets move` (nothing lost, `mnode verify` passing on both nodes),
a refused move undone, and a peer's client following the directory to the new node."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time

import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.client import Client, address_of_home
from marketnode.node.cluster.directory import (
    Directory,
    DirectoryConflict,
    DirectoryError,
    DirectoryStore,
    MarketEntry,
    NodeEntry,
    read_directory,
    with_directory,
    write_directory,
)
from marketnode.node.cluster.following import follow_cluster
from marketnode.node.cluster.local import LocalCluster, up
from marketnode.node.cluster.moving import kept_book
from marketnode.node.cluster.processes import running, stop
from marketnode.node.cluster.scaling import plan_moves
from marketnode.node.cluster.servers import start_servers
from marketnode.node.home.keys import create_key_pair

runner = CliRunner()
WAIT_S = 20.0


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"waited {WAIT_S:g} s for {what}"
        time.sleep(0.02)


@pytest.fixture
def nats_url(tmp_path):
    (server,) = start_servers(tmp_path / "nats", 1)
    yield server.url
    stop(server.process)
    assert not running(server.process)


def test_the_directory_changes_only_from_the_version_read(nats_url):
    empty = read_directory([nats_url])
    assert empty == Directory() and empty.version == 0
    node = NodeEntry("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3", None)
    first = write_directory([nats_url], Directory({"n1": node}, {"PUNK-ETH": MarketEntry("n1")}))
    assert first.version > 0 and read_directory([nats_url]) == first
    moved = Directory(first.nodes, {"PUNK-ETH": MarketEntry("n2")}, first.version)
    second = write_directory([nats_url], moved)
    with pytest.raises(DirectoryConflict):
        write_directory([nats_url], moved)  # a second writer from the same version loses
    with pytest.raises(DirectoryConflict):
        write_directory([nats_url], Directory())  # as does a second first write
    assert read_directory([nats_url]) == second

    async def watched() -> list[Directory]:
        store = await DirectoryStore.open([nats_url])
        try:
            changes = store.watch()
            seen = [await anext(changes)]
            await store.write(Directory(second.nodes, {}, second.version))
            seen.append(await asyncio.wait_for(anext(changes), WAIT_S))
            return seen
        finally:
            await store.close()

    now, then = asyncio.run(watched())
    assert now == second and then.markets == {} and then.version > second.version


def test_the_directory_survives_the_kill_of_one_of_three_servers(tmp_path):
    """A replica that is not the leader is killed (a leader's death costs an election of
    several seconds: bench/cluster_move.py measures that one)."""
    servers = start_servers(tmp_path / "nats", 3)
    urls = [server.url for server in servers]
    try:
        opened: list[Directory] = []
        wait_until(lambda: _opened(urls, opened), "the three servers to elect a leader")
        node = NodeEntry("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3", None)
        first = write_directory(urls, Directory({"n1": node}, {"PUNK-ETH": MarketEntry("n1")}))
        leader, others = with_directory(urls, lambda store: store.replicas())
        assert leader is not None and len(others) == 2
        victim = next(server for server in servers if server.name == others[0])
        os.kill(victim.process.pid, signal.SIGKILL)
        wait_until(lambda: _reaped(victim), "the killed server to be gone")
        survivors = [server.url for server in servers if server is not victim]
        assert read_directory(survivors) == first
        moved = Directory(first.nodes, {"PUNK-ETH": MarketEntry("n2")}, first.version)
        second = write_directory(survivors, moved)
        for url in survivors:
            assert read_directory([url]).markets == {"PUNK-ETH": MarketEntry("n2")}
        assert second.version > first.version
    finally:
        for server in servers:
            stop(server.process)


def _opened(urls: list[str], opened: list) -> bool:
    try:
        opened.append(with_directory(urls, lambda store: store.read(), 3, timeout_s=1.0))
    except DirectoryError:
        return False
    return True


def _reaped(server) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(server.process.pid, os.WNOHANG)
    return not running(server.process)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two nodes and one NATS server, stopped by `mnode cluster down` at the end."""
    local = LocalCluster(tmp_path_factory.mktemp("cluster") / "c")
    record = up(local, servers=1, nodes=2)
    yield local
    result = runner.invoke(app, ["cluster", "down", "--cluster", str(local.path), "--json"])
    assert result.exit_code == 0, result.output
    stopped = json.loads(result.stdout)["stopped"]
    assert len(stopped) == 3
    for process in [record.servers[0].process, *(node.process for node in record.nodes)]:
        assert not running(process)


def cli(cluster: LocalCluster, *args: str):
    return runner.invoke(app, [*args, "--cluster", str(cluster.path)])


def kind(event) -> str:
    return type(event).__struct_config__.tag


def order(n: int, side: str, price: str, owner: str = "0xmaker", qty: str = "1") -> dict:
    return {"op": "new", "market": "PUNK-ETH", "id": f"{owner}-{n}", "owner": owner,
            "side": side, "price": price, "qty": qty}  # fmt: skip


def test_a_moved_market_trades_on_its_new_node_and_the_peer_follows(cluster, tmp_path):
    maker_key = create_key_pair(tmp_path, "maker")
    for name in ("n1", "n2"):  # the maker is registered on both nodes, with one key
        added = runner.invoke(app, ["peers", "add", "maker", maker_key.public_text, "--relayer",
                                    "--home", str(cluster.home(name).path)])  # fmt: skip
        assert added.exit_code == 0, added.output
    status = json.loads(cli(cluster, "cluster", "status", "--json").stdout)
    assert status["directory"]["markets"]["PUNK-ETH"] == {"node": "n1"}
    for name in ("n1", "n2"):
        with cluster.admin(name) as admin:
            wait_until(lambda: "maker" in {peer["name"] for peer in admin.call("peers")},
                       f"{name} to reload its allowlist")  # fmt: skip
    urls = cluster.record().urls
    maker, follower = follow_cluster(urls, maker_key)
    taker, taker_follower = follow_cluster(urls, cluster.peer_key())
    try:
        maker.subscribe("PUNK-ETH")
        resting = [order(n, "buy", f"{90 + n % 3}") for n in range(12)]
        reply = maker.submit("PUNK-ETH", resting)
        assert [kind(e) for e in reply.events].count("rested") == 12
        moved = cli(cluster, "markets", "move", "PUNK-ETH", "--to", "n2", "--json")
        assert moved.exit_code == 0, moved.output
        report = json.loads(moved.stdout)
        assert (report["source"], report["destination"], report["orders"]) == ("n1", "n2", 12)
        for client in (maker, taker):
            wait_until(lambda c=client: (c.follow(), c.node_of("PUNK-ETH"))[1] == "n2",
                       "the clients to follow the move")  # fmt: skip
        assert maker.moves_followed == 1
        # the maker's subscription reaches n2 (a subscription is not acknowledged: probe it)
        probes: list[dict] = []
        wait_until(lambda: _probe_market_data(maker, probes), "market data from n2")
        # the taker's sell on n2 fills the best of the moved bids, oldest first
        fills = taker.submit("PUNK-ETH", [order(1, "sell", "92", owner="0xtaker", qty="2")])
        trades = [e for e in fills.events if kind(e) == "trade"]
        assert [(t.maker_id, t.price) for t in trades] == [("0xmaker-2", "92"), ("0xmaker-5", "92")]
        # the maker's execution reports come from n2, its market data too
        wait_until(lambda: _filled(maker) >= 2, "the maker's fills reported from n2")
        data = None
        while data is None or not data.trades:
            data = maker.receive(int(WAIT_S * 1000))
            assert data is not None, "no market data from n2"
        assert data.market == "PUNK-ETH" and data.trades[0].price == "92"
        # the old node refuses the market (halted), the new one has the rest of the book
        refused = maker.clients["n1"].submit([order(99, "buy", "80")]).events
        assert [(kind(e), e.reason) for e in refused] == [("rejected", "market_halted")]
    finally:
        for client, watcher in ((maker, follower), (taker, taker_follower)):
            watcher.stop()
            client.close()
    for name in ("n1", "n2"):
        verified = runner.invoke(app, ["verify", "--home", str(cluster.home(name).path)])
        assert verified.exit_code == 0, verified.output
    status = json.loads(cli(cluster, "cluster", "status", "--json").stdout)
    rows = {row["name"]: row for row in status["nodes"]}
    assert rows["n2"]["resting_orders"]["PUNK-ETH"] == 10 + len(probes)
    assert rows["n1"]["resting_orders"]["PUNK-ETH"] == 0 and "PUNK-ETH" in rows["n1"]["halted"]
    assert "PUNK-ETH" in rows["n2"]["serves"] and "PUNK-ETH" not in rows["n2"]["halted"]


def _probe_market_data(maker, probes: list) -> bool:
    """One more resting buy at 80 on the market's node: is its level in the market data
    within half a second?"""
    probes.append(order(100 + len(probes), "buy", "80"))
    maker.submit("PUNK-ETH", [probes[-1]])
    deadline = time.monotonic() + 0.5
    while (left := deadline - time.monotonic()) > 0:
        message = maker.receive(int(left * 1000) + 1)
        if message is not None and any(level.price == "80" for level in message.levels):
            return True
    return False


def _filled(client) -> int:
    client.filled = getattr(client, "filled", 0) + sum(
        1 for report in client.reports() for event in report.events if kind(event) == "trade"
    )
    return client.filled


def test_a_move_the_destination_refuses_leaves_the_market_where_it_was(cluster):
    """LAND-ETH (on n2) to n1, whose LAND-ETH book is not empty: refused, and undone."""
    with cluster.admin("n1") as admin:
        admin.call("resume", market="LAND-ETH")
    with Client(address_of_home(cluster.home("n1")), cluster.peer_key()) as client:
        client.submit([{**order(1, "buy", "5"), "market": "LAND-ETH"}])
    with cluster.admin("n1") as admin:
        admin.call("halt", market="LAND-ETH")
    with Client(address_of_home(cluster.home("n2")), cluster.peer_key()) as client:
        client.submit([{**order(2, "sell", "7"), "market": "LAND-ETH"}])
    refused = cli(cluster, "markets", "move", "LAND-ETH", "--to", "n1")
    assert refused.exit_code != 0 and "already has 1 resting orders" in refused.stderr
    assert "trades on n2 again" in refused.stderr and "Traceback" not in refused.output
    directory = read_directory(cluster.record().urls)
    assert directory.markets["LAND-ETH"] == MarketEntry("n2")
    with cluster.admin("n2") as admin:
        books = {row["market"]: row for row in admin.call("markets")}
    assert books["LAND-ETH"]["resting_orders"] == 1 and not books["LAND-ETH"]["halted"]
    mistakes = (("LAND-ETH", "n9", "no node 'n9'"), ("LAND-ETH", "n2", "served by n2"),
                ("NOPE-ETH", "n1", "'NOPE-ETH' is not in the directory"))  # fmt: skip
    for market, to, message in mistakes:
        result = cli(cluster, "markets", "move", market, "--to", to)
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_an_order_sent_during_a_move_is_sent_again_to_the_new_node(cluster):
    """GOLD-USDC (on n1, empty) moved by hand, step by step: the peer's order reaches n1 after
    the export and is answered market_halted; the move ends only once n1 has counted that
    reject, and the client sends the order again to n2, where it rests."""
    urls = cluster.record().urls
    client, follower = follow_cluster(urls, cluster.peer_key())
    market = "GOLD-USDC"
    try:
        directory = read_directory(urls)
        source = directory.markets[market].node
        destination = next(name for name in directory.nodes if name != source)
        marked = write_directory(urls, Directory(directory.nodes, {
            **directory.markets, market: MarketEntry(source, moving_to=destination)},
            directory.version))  # fmt: skip
        with cluster.admin(source) as admin:
            book = admin.call("market_export", market=market, params=[destination])
        book.pop("seq")

        def finish_the_move() -> None:
            with cluster.admin(source) as admin:
                wait_until(lambda: admin.call("metrics")["rejects"].get("market_halted", 0) >= 1,
                           "the order to be refused on the source")  # fmt: skip
            with cluster.admin(destination) as admin:
                admin.call("market_import", market=market, params=[book])
                admin.call("resume", market=market)
            write_directory(urls, Directory(marked.nodes, {
                **marked.markets, market: MarketEntry(destination)}, marked.version))  # fmt: skip

        wait_until(lambda: (client.follow(), market in client.routes.moving)[1],
                   "the client to see the move begin")  # fmt: skip
        mover = threading.Thread(target=finish_the_move)
        mover.start()
        gold = {"op": "new", "market": market, "id": "g1", "owner": "0xgold", "side": "buy",
                "price": "1900", "qty": "1"}  # fmt: skip
        reply = client.submit(market, [gold])
        mover.join()
        assert [kind(event) for event in reply.events] == ["accepted", "rested"]
        assert client.resent == 1 and client.node_of(market) == destination
    finally:
        follower.stop()
        client.close()
    with cluster.admin(destination) as admin:
        books = {row["market"]: row for row in admin.call("markets")}
    assert books[market]["resting_orders"] == 1


def test_a_move_stopped_half_way_is_finished_or_undone_when_asked_again(cluster):
    """Moves marked in the directory as the command does, then stopped: GOLD-USDC's after its
    book was exported and kept (finished on n1), LAND-ETH's before its export (undone)."""
    urls = cluster.record().urls
    directory = read_directory(urls)
    assert directory.markets["GOLD-USDC"].node == directory.markets["LAND-ETH"].node == "n2"
    marked = write_directory(urls, Directory(directory.nodes, {
        **directory.markets, "GOLD-USDC": MarketEntry("n2", "n1", "gold"),
        "LAND-ETH": MarketEntry("n2", "n1", "land")}, directory.version))  # fmt: skip
    with cluster.admin("n2") as admin:
        book = admin.call("market_export", market="GOLD-USDC", params=["n1"])
    kept = kept_book(cluster, "GOLD-USDC", "gold")
    kept.parent.mkdir(exist_ok=True)
    kept.write_text(json.dumps(book))
    other = cli(cluster, "markets", "move", "GOLD-USDC", "--to", "n2")
    assert other.exit_code == 2 and "being moved to n1" in other.stderr
    finished = cli(cluster, "markets", "move", "GOLD-USDC", "--to", "n1", "--json")
    assert finished.exit_code == 0, finished.output
    assert json.loads(finished.stdout)["orders"] == len(book["orders"]) == 1
    undone = cli(cluster, "markets", "move", "LAND-ETH", "--to", "n1")
    assert undone.exit_code == 2 and "stopped before its export" in undone.stderr
    directory = read_directory(urls)
    assert directory.version > marked.version
    assert directory.markets["GOLD-USDC"] == MarketEntry("n1")
    assert directory.markets["LAND-ETH"] == MarketEntry("n2")
    with cluster.admin("n1") as admin:
        gold = {row["market"]: row for row in admin.call("markets")}["GOLD-USDC"]
    assert gold["resting_orders"] == 1 and not gold["halted"]


def test_the_sharding_advice_becomes_moves_to_the_least_busy_nodes():
    node = NodeEntry("tcp://a", "tcp://b", "tcp://c", None)
    directory = Directory(
        {name: node for name in ("n1", "n2", "n3")},
        {"PUNK-ETH": MarketEntry("n1"), "LAND-ETH": MarketEntry("n1"),
         "GOLD-USDC": MarketEntry("n1"), "ART-ETH": MarketEntry("n2")},
    )  # fmt: skip
    advice = {"n1": [{"policy": "sharding", "reason": "offered load 140%",
                      "details": {"new_nodes": [["PUNK-ETH"], ["LAND-ETH", "GOLD-USDC"]]}},
                     {"policy": "reactive", "reason": "busy", "details": {}}],
              "n2": [], "n3": []}  # fmt: skip
    plan = plan_moves(directory, advice)
    assert plan.moves == [("PUNK-ETH", "n1", "n3"), ("LAND-ETH", "n1", "n2"),
                          ("GOLD-USDC", "n1", "n2")]  # fmt: skip
    assert plan.unplaced == [] and plan.reasons == ["n1: offered load 140%"]
    two_nodes = Directory({"n1": node, "n2": node}, directory.markets)
    plan = plan_moves(two_nodes, advice)
    assert plan.moves == [("PUNK-ETH", "n1", "n2")]
    assert plan.unplaced == [["LAND-ETH", "GOLD-USDC"]]


def test_cluster_apply_without_advice_moves_nothing(cluster):
    for command in (("cluster", "apply"), ("scale", "apply")):  # the same, from either group
        result = cli(cluster, *command, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"moved": [], "unplaced": [], "reasons": []}


def test_cluster_status_without_a_cluster_is_one_line(tmp_path):
    result = runner.invoke(app, ["cluster", "status", "--cluster", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no cluster here" in result.stderr
    assert "Traceback" not in result.output


"""A cluster of nodes: the market directory in NATS JetStream (a real nats-server from this
environment, on a free loopback port, stopped by its pid), `mnode cluster up/status/down`, a
market moved with `mnode markets move` (nothing lost, `mnode verify` passing on both nodes),
a refused move undone, moves stopped half way finished from what the nodes say, and a peer's
client following the directory to the new node.

The cluster tests share one cluster and run in any order: each finds where its market is from
the directory, counts relative to what it found, and leaves no move marked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid

import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.client import Client, NodeAddress, address_of_home
from marketnode.node.client.routed import RoutedClient, Routes
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
from marketnode.node.cluster.following import follow_cluster, routes_of
from marketnode.node.cluster.local import LocalCluster, up
from marketnode.node.cluster.moving import kept_book
from marketnode.node.cluster.processes import running, spawn, stop
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


def placed(cluster: LocalCluster, market: str) -> tuple[str, str]:
    """The node serving `market` now (not being moved) and another node."""
    entry = read_directory(cluster.record().urls).markets[market]
    assert entry.moving_to is None, f"a test left {market} marked: {entry}"
    return entry.node, next(name for name in ("n1", "n2") if name != entry.node)


def book_row(cluster: LocalCluster, node: str, market: str) -> dict:
    with cluster.admin(node) as admin:
        return {row["market"]: row for row in admin.call("markets")}[market]


def mark_move(cluster: LocalCluster, market: str, source: str, destination: str) -> str:
    """Mark a move in the directory as `mnode markets move` does; its id."""
    urls = cluster.record().urls
    directory = read_directory(urls)
    move = uuid.uuid4().hex[:12]
    write_directory(urls, Directory(directory.nodes, {
        **directory.markets, market: MarketEntry(source, destination, move)},
        directory.version))  # fmt: skip
    return move


def place(cluster: LocalCluster, node: str, market: str, *orders: dict) -> None:
    with Client(address_of_home(cluster.home(node)), cluster.peer_key()) as client:
        events = client.submit([{**o, "market": market} for o in orders]).events
    assert [kind(e) for e in events if kind(e) in ("accepted", "rejected")] == \
        ["accepted"] * len(orders), events  # fmt: skip


def test_a_moved_market_trades_on_its_new_node_and_the_peer_follows(cluster, tmp_path):
    maker_key = create_key_pair(tmp_path, "maker")
    for name in ("n1", "n2"):  # the maker is registered on both nodes, with one key
        added = runner.invoke(app, ["peers", "add", "maker", maker_key.public_text, "--relayer",
                                    "--home", str(cluster.home(name).path)])  # fmt: skip
        assert added.exit_code == 0, added.output
    source, destination = placed(cluster, "PUNK-ETH")
    status = json.loads(cli(cluster, "cluster", "status", "--json").stdout)
    assert status["directory"]["markets"]["PUNK-ETH"] == {"node": source}
    before = book_row(cluster, source, "PUNK-ETH")["resting_orders"]
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
        moved = cli(cluster, "markets", "move", "PUNK-ETH", "--to", destination, "--json")
        assert moved.exit_code == 0, moved.output
        report = json.loads(moved.stdout)
        assert (report["source"], report["destination"], report["orders"]) == \
            (source, destination, before + 12)  # fmt: skip
        for client in (maker, taker):
            wait_until(lambda c=client: (c.follow(), c.node_of("PUNK-ETH"))[1] == destination,
                       "the clients to follow the move")  # fmt: skip
        assert maker.moves_followed == 1
        # the maker's subscription reaches n2 (a subscription is not acknowledged: probe it)
        probes: list[dict] = []
        wait_until(lambda: _probe_market_data(maker, probes), "market data from the new node")
        # the taker's sell on the new node fills the best of the moved bids, oldest first
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
        refused = maker.clients[source].submit([order(99, "buy", "80")]).events
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
    assert rows[destination]["resting_orders"]["PUNK-ETH"] == before + 10 + len(probes)
    assert rows[source]["resting_orders"]["PUNK-ETH"] == 0
    assert "PUNK-ETH" in rows[source]["halted"]
    assert "PUNK-ETH" in rows[destination]["serves"]
    assert "PUNK-ETH" not in rows[destination]["halted"]


def _probe_market_data(
    client, probes: list, market: str = "PUNK-ETH", owner: str = "0xmaker"
) -> bool:
    """One more resting buy at 80 on the market's node: is its level in the market data
    within half a second?"""
    probes.append({**order(100 + len(probes), "buy", "80", owner=owner), "market": market})
    client.submit(market, [probes[-1]])
    deadline = time.monotonic() + 0.5
    while (left := deadline - time.monotonic()) > 0:
        message = client.receive(int(left * 1000) + 1)
        if message is not None and message.market == market and \
                any(level.price == "80" for level in message.levels):  # fmt: skip
            return True
    return False


def _filled(client) -> int:
    client.filled = getattr(client, "filled", 0) + sum(
        1 for report in client.reports() for event in report.events if kind(event) == "trade"
    )
    return client.filled


def test_a_move_the_destination_refuses_leaves_the_market_where_it_was(cluster):
    """LAND-ETH to the other node, whose LAND-ETH book is not empty: refused, and undone."""
    source, destination = placed(cluster, "LAND-ETH")
    before = book_row(cluster, source, "LAND-ETH")["resting_orders"]
    already = book_row(cluster, destination, "LAND-ETH")["resting_orders"]
    stray = {**order(1, "buy", "5", owner="0xstray"), "market": "LAND-ETH"}
    with cluster.admin(destination) as admin:
        admin.call("resume", market="LAND-ETH")
    try:
        place(cluster, destination, "LAND-ETH", stray)
        with cluster.admin(destination) as admin:
            admin.call("halt", market="LAND-ETH")
        place(cluster, source, "LAND-ETH", order(2, "sell", "7", owner="0xrefused"))
        refused = cli(cluster, "markets", "move", "LAND-ETH", "--to", destination)
        assert refused.exit_code == 2
        assert f"already has {already + 1} resting orders" in refused.stderr
        assert f"trades on {source} again" in refused.stderr
        assert "Traceback" not in refused.output
    finally:  # the stray order leaves the destination's book empty again
        with cluster.admin(destination) as admin:
            admin.call("resume", market="LAND-ETH")
        place(cluster, destination, "LAND-ETH",
              {"op": "cancel", "id": stray["id"], "owner": stray["owner"]})  # fmt: skip
        with cluster.admin(destination) as admin:
            admin.call("halt", market="LAND-ETH")
    directory = read_directory(cluster.record().urls)
    assert directory.markets["LAND-ETH"] == MarketEntry(source)
    row = book_row(cluster, source, "LAND-ETH")
    assert row["resting_orders"] == before + 1 and not row["halted"]
    assert book_row(cluster, destination, "LAND-ETH")["resting_orders"] == already
    mistakes = (("LAND-ETH", "n9", "no node 'n9'"), ("LAND-ETH", source, f"served by {source}"),
                ("NOPE-ETH", "n1", "'NOPE-ETH' is not in the directory"))  # fmt: skip
    for market, to, message in mistakes:
        result = cli(cluster, "markets", "move", market, "--to", to)
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_an_order_sent_during_a_move_is_sent_again_to_the_new_node(cluster):
    """GOLD-USDC moved by hand, step by step: the peer's order reaches the source after the
    export and is answered market_halted; the move ends only once the source has counted that
    reject, and the client sends the order again to the destination, where it rests."""
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
        book.pop("again")
        with cluster.admin(source) as admin:
            refusals = admin.call("metrics")["rejects"].get("market_halted", 0)
        failures: list[BaseException] = []

        def finish_the_move() -> None:
            try:
                with cluster.admin(source) as admin:
                    wait_until(lambda: admin.call("metrics")["rejects"].get("market_halted", 0)
                               > refusals, "the order to be refused on the source")  # fmt: skip
                with cluster.admin(destination) as admin:
                    admin.call("market_import", market=market, params=[book])
                    admin.call("resume", market=market)
                moved = {**marked.markets, market: MarketEntry(destination)}
                write_directory(urls, Directory(marked.nodes, moved, marked.version))
            except BaseException as error:  # re-raised by the test's thread
                failures.append(error)

        wait_until(lambda: (client.follow(), market in client.routes.moving)[1],
                   "the client to see the move begin")  # fmt: skip
        mover = threading.Thread(target=finish_the_move)
        mover.start()
        try:
            gold = {"op": "new", "market": market, "id": f"g{uuid.uuid4().hex[:8]}",
                    "owner": "0xgold", "side": "buy", "price": "1900", "qty": "1"}  # fmt: skip
            reply = client.submit(market, [gold])
        finally:
            mover.join()
        if failures:
            raise failures[0]
        assert [kind(event) for event in reply.events] == ["accepted", "rested"]
        assert client.resent == 1 and client.node_of(market) == destination
    finally:
        follower.stop()
        client.close()
    assert book_row(cluster, destination, market)["resting_orders"] == len(book["orders"]) + 1


def test_a_move_stopped_half_way_is_finished_or_undone_when_asked_again(cluster):
    """Moves marked in the directory as the command does, then stopped: GOLD-USDC's after its
    book was exported and kept (finished on the other node), LAND-ETH's before its export
    (undone)."""
    gold_from, gold_to = placed(cluster, "GOLD-USDC")
    land_from, land_to = placed(cluster, "LAND-ETH")
    gold = mark_move(cluster, "GOLD-USDC", gold_from, gold_to)
    mark_move(cluster, "LAND-ETH", land_from, land_to)
    marked = read_directory(cluster.record().urls)
    with cluster.admin(gold_from) as admin:
        book = admin.call("market_export", market="GOLD-USDC", params=[gold_to, gold])
    kept = kept_book(cluster, "GOLD-USDC", gold)
    kept.parent.mkdir(exist_ok=True)
    kept.write_text(json.dumps(book))
    other = cli(cluster, "markets", "move", "GOLD-USDC", "--to", gold_from)
    assert other.exit_code == 2 and f"being moved to {gold_to}" in other.stderr
    finished = cli(cluster, "markets", "move", "GOLD-USDC", "--to", gold_to, "--json")
    assert finished.exit_code == 0, finished.output
    assert json.loads(finished.stdout)["orders"] == len(book["orders"])
    undone = cli(cluster, "markets", "move", "LAND-ETH", "--to", land_to)
    assert undone.exit_code == 2 and "stopped before its export" in undone.stderr
    directory = read_directory(cluster.record().urls)
    assert directory.version > marked.version
    assert directory.markets["GOLD-USDC"] == MarketEntry(gold_to)
    assert directory.markets["LAND-ETH"] == MarketEntry(land_from)
    row = book_row(cluster, gold_to, "GOLD-USDC")
    assert row["resting_orders"] == len(book["orders"]) and not row["halted"]
    assert not book_row(cluster, land_from, "LAND-ETH")["halted"]


def test_a_move_asked_again_after_the_destination_took_it_only_names_it(cluster):
    """PUNK-ETH's move stopped after the destination imported the book (asked twice: the
    second answered `again`), resumed it and traded on: asking for the move again names the
    destination in the directory, and never takes the book back to the source."""
    source, destination = placed(cluster, "PUNK-ETH")
    place(cluster, source, "PUNK-ETH", order(1, "buy", "10", owner=f"0x{uuid.uuid4().hex[:8]}"))
    move = mark_move(cluster, "PUNK-ETH", source, destination)
    with cluster.admin(source) as admin:
        book = admin.call("market_export", market="PUNK-ETH", params=[destination, move])
    book = {key: value for key, value in book.items() if key not in ("seq", "again")}
    kept = kept_book(cluster, "PUNK-ETH", move)
    kept.parent.mkdir(exist_ok=True)
    kept.write_text(json.dumps(book))
    with cluster.admin(destination) as admin:
        first = admin.call("market_import", market="PUNK-ETH", params=[book])
        second = admin.call("market_import", market="PUNK-ETH", params=[book])
        admin.call("resume", market="PUNK-ETH")
    assert (first["again"], second["again"]) == (False, True)
    assert first["hash"] == second["hash"] == book["hash"]
    place(cluster, destination, "PUNK-ETH", order(2, "sell", "500", owner="0xafter"))
    finished = cli(cluster, "markets", "move", "PUNK-ETH", "--to", destination, "--json")
    assert finished.exit_code == 0, finished.output
    assert read_directory(cluster.record().urls).markets["PUNK-ETH"] == MarketEntry(destination)
    there, here = book_row(cluster, source, "PUNK-ETH"), book_row(cluster, destination, "PUNK-ETH")
    assert there["halted"] and there["resting_orders"] == 0
    assert not here["halted"] and here["resting_orders"] == len(book["orders"]) + 1


def test_an_export_whose_answer_was_lost_is_answered_again_and_finished(cluster):
    """GOLD-USDC exported (asked twice: the same book, `again` the second time) and no book
    kept, as when the command died before keeping it: asking for the move again finishes it
    from the source's answer, an empty book as much as a full one."""
    source, destination = placed(cluster, "GOLD-USDC")
    move = mark_move(cluster, "GOLD-USDC", source, destination)
    with cluster.admin(source) as admin:
        first = admin.call("market_export", market="GOLD-USDC", params=[destination, move])
        second = admin.call("market_export", market="GOLD-USDC", params=[destination, move])
    assert (first["again"], second["again"]) == (False, True)
    assert (first["orders"], first["hash"]) == (second["orders"], second["hash"])
    assert not kept_book(cluster, "GOLD-USDC", move).exists()
    finished = cli(cluster, "markets", "move", "GOLD-USDC", "--to", destination, "--json")
    assert finished.exit_code == 0, finished.output
    assert json.loads(finished.stdout)["hash"] == first["hash"]
    assert kept_book(cluster, "GOLD-USDC", move).exists()
    assert read_directory(cluster.record().urls).markets["GOLD-USDC"] == MarketEntry(destination)
    row = book_row(cluster, destination, "GOLD-USDC")
    assert row["resting_orders"] == len(first["orders"]) and not row["halted"]


def test_a_source_not_answering_leaves_the_move_marked_until_asked_again(cluster):
    """LAND-ETH's source stopped (SIGSTOP) under `mnode markets move --timeout 0.3`: one line
    and exit 5, the move still marked (the export may yet be applied). Once it runs again,
    asking again ends the move one way or the other: the book on exactly one node, which
    trades it and which the directory names."""
    source, destination = placed(cluster, "LAND-ETH")
    place(cluster, source, "LAND-ETH", order(1, "buy", "5", owner=f"0x{uuid.uuid4().hex[:8]}"))
    orders = {name: book_row(cluster, name, "LAND-ETH")["resting_orders"]
              for name in (source, destination)}  # fmt: skip
    pid = next(node.process.pid for node in cluster.record().nodes if node.name == source)
    os.kill(pid, signal.SIGSTOP)
    try:
        stalled = cli(cluster, "markets", "move", "LAND-ETH", "--to", destination,
                      "--timeout", "0.3")  # fmt: skip
    finally:
        os.kill(pid, signal.SIGCONT)
    assert stalled.exit_code == 5, stalled.output
    assert "stays marked" in stalled.stderr and len(stalled.stderr.splitlines()) == 1
    assert "Traceback" not in stalled.output
    marked = read_directory(cluster.record().urls).markets["LAND-ETH"]
    assert (marked.node, marked.moving_to) == (source, destination)
    ended = cli(cluster, "markets", "move", "LAND-ETH", "--to", destination)
    assert ended.exit_code in (0, 2), ended.output  # finished, or undone: never exported
    entry = read_directory(cluster.record().urls).markets["LAND-ETH"]
    assert entry.moving_to is None
    rows = {name: book_row(cluster, name, "LAND-ETH") for name in (source, destination)}
    other = source if entry.node == destination else destination
    assert not rows[entry.node]["halted"] and rows[other]["halted"]
    assert rows[entry.node]["resting_orders"] == sum(orders.values())
    assert rows[other]["resting_orders"] == 0


def test_markets_on_a_node_at_new_addresses_are_subscribed_again(cluster):
    """The directory gives a node other addresses (as after its restart elsewhere; here the
    same node as `localhost`): the client drops its connections to it and subscribes again
    to every market it follows there, though none of them changed nodes."""
    urls = cluster.record().urls
    directory = read_directory(urls)
    market = "GOLD-USDC"
    node = directory.markets[market].node
    client = RoutedClient(routes_of(directory), cluster.peer_key())
    owner = f"0x{uuid.uuid4().hex[:8]}"
    try:
        client.subscribe(market)
        probes: list[dict] = []
        wait_until(lambda: _probe_market_data(client, probes, market, owner), "market data")
        elsewhere = dict(routes_of(directory).nodes)
        address = elsewhere[node]
        elsewhere[node] = NodeAddress(
            *(url.replace("127.0.0.1", "localhost")
              for url in (address.orders, address.market_data, address.admin)),
            address.server_key)  # fmt: skip
        old_subscriber = client.subscribers[node]
        client.offer(Routes(directory.version + 1, elsewhere, client.routes.markets))
        client.follow()
        assert client.subscribers.get(node) is not old_subscriber
        wait_until(lambda: _probe_market_data(client, probes, market, owner),
                   "market data from the node at its new addresses")  # fmt: skip
    finally:
        client.close()
    with Client(address_of_home(cluster.home(node)), cluster.peer_key()) as cleaner:
        cleaner.submit([{"op": "cancel", "market": market, "id": probe["id"], "owner": owner}
                        for probe in probes])  # fmt: skip


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
    # two busy nodes never swap markets: only the idle n3 takes one
    advice["n2"] = [{"policy": "sharding", "reason": "offered load 120%",
                     "details": {"new_nodes": [["ART-ETH"]]}}]  # fmt: skip
    plan = plan_moves(directory, advice)
    assert plan.moves == [("PUNK-ETH", "n1", "n3")]
    assert plan.unplaced == [["LAND-ETH", "GOLD-USDC"], ["ART-ETH"]]


def test_cluster_apply_without_advice_moves_nothing(cluster):
    for command in (("cluster", "apply"), ("scale", "apply")):  # the same, from either group
        result = cli(cluster, *command, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"moved": [], "unplaced": [], "reasons": []}


def test_cluster_status_without_a_cluster_is_one_line(tmp_path):
    result = runner.invoke(app, ["cluster", "status", "--cluster", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no cluster here" in result.stderr
    assert "Traceback" not in result.output


def test_servers_started_before_one_that_fails_are_stopped(tmp_path):
    """The second server cannot start (its store's path is a file): the first, already
    listening, is stopped by its pid before the error. Stopping a process that has exited is
    no error either."""
    folder = tmp_path / "nats"
    folder.mkdir()
    (folder / "s2").write_text("not a folder")
    with pytest.raises(RuntimeError, match="nats-server s2"):
        start_servers(folder, 2)
    config = (folder / "s1.conf").read_text()
    port = int(config.split('listen: "127.0.0.1:')[1].split('"')[0])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    exited = spawn([sys.executable, "-c", "pass"], tmp_path / "exited.log")
    wait_until(lambda: _reaped_pid(exited.pid), "the process to exit")
    assert stop(exited) is False


def _reaped_pid(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    return True


def test_a_follower_stops_twice_without_error(nats_url):
    client, follower = follow_cluster([nats_url], None)
    follower.stop()
    follower.stop()
    client.close()

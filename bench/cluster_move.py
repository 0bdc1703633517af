"""A market moved under load on a three-node local cluster: is anything lost or duplicated?

    python bench/cluster_move.py [--rate 300] [--before 3] [--after 3] [--json]

Brings up a local cluster in a temporary folder (three NATS servers holding the directory in
three replicas, three nodes: `mnode cluster up`), then offers PUNK-ETH orders (limits around
the mid from 20 wallets, a fifth of them cancels of resting ones) at `--rate` from a peer whose
client follows the directory. After `--before` seconds the market is moved from n1 to n2
(`mnode markets move`) while the orders keep coming; `--after` seconds later the load stops.
The directory's stream leader is then killed and the time until the directory takes a write
again measured, and whether a client watching the directory sees that write. The cluster goes
down and `mnode verify` runs on every node.

From every answer the peer received it knows what should rest (each order's last remaining
quantity: rested, traded, cancelled); the books of all three nodes say what does. Orders the
source answered `market_halted` during the move are sent again by the client to n2
(`resent_after_move`). `lost`:
orders that should rest and rest nowhere, or with another quantity; `duplicated`: orders
resting on two nodes, or resting although their answers said they were done.

Once the load has stopped, a wash ring of three wallets goes round three times with its legs on
two nodes: 0xring0 -> 0xring1 and 0xring2 -> 0xring0 in PUNK-USDC on n1 (a second market of
the PUNK asset, which every node configures here: the cluster is restarted once with it added),
0xring1 -> 0xring2 in PUNK-ETH on n2, where it has just moved. Neither node sees a cycle: n1
holds a chain 2 -> 0 -> 1, n2 single trades. `mnode cluster scan` then runs over the running
cluster; `cross_node_ring_flagged` says whether one of its alerts names the ring's three
wallets on both nodes, and `cross_node_scan.false_wallets` counts the other wallets its alerts
name (the load's twenty, which traded PUNK-ETH both ways on n1 and then on n2, are none).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from marketnode.node.client import Client, ClientError, address_of_home
from marketnode.node.cluster.directory import Directory, DirectoryStore, with_directory
from marketnode.node.cluster.following import follow_cluster
from marketnode.node.cluster.local import ClusterRecord, LocalCluster, down, up
from marketnode.node.cluster.moving import move_market
from marketnode.node.cluster.processes import running

MARKET = "PUNK-ETH"
RING = ("0xring0", "0xring1", "0xring2")
RING_MARKET = "PUNK-USDC"
RING_MARKET_TABLE = f"""
[[markets]]
symbol = "{RING_MARKET}"       # the same shares in USDC: a second market of the PUNK asset
base = "PUNK"
quote = "USDC"
tick_size = "0.01"
lot_size = "1"
"""
RING_ROUNDS = 3
FOLLOW_LIMIT_S = 20.0
KILL_RECOVERY_LIMIT_S = 60.0
TICK = Decimal("0.01")


class Book:
    """What the peer's answers say of each of its orders: the last remaining quantity."""

    def __init__(self) -> None:
        self.remaining: dict[str, int] = {}
        self.accepted = 0
        self.rejects: dict[str, int] = {}
        self.trades = 0

    def absorb(self, events: list) -> None:
        for event in events:
            kind = type(event).__struct_config__.tag
            if kind == "accepted" and event.op == "new":
                self.accepted += 1
                self.remaining[event.id] = 0
            elif kind == "rejected":
                self.rejects[event.reason] = self.rejects.get(event.reason, 0) + 1
            elif kind == "rested":
                self.remaining[event.id] = int(event.qty)
            elif kind == "trade":
                self.trades += 1
                self.remaining[event.maker_id] = int(event.maker_remaining)
                self.remaining[event.taker_id] = int(event.taker_remaining)
            elif kind == "cancelled":
                self.remaining[event.id] = int(event.remaining)

    def resting(self) -> dict[str, int]:
        return {order_id: left for order_id, left in self.remaining.items() if left}


class Load(threading.Thread):
    """Orders for MARKET at `rate` a second through a routed client, until stopped."""

    def __init__(self, client, rate: float) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.rate = rate
        self.book = Book()
        self.sent = 0
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.rng = random.Random(19)

    def command(self, n: int) -> dict:
        resting = self.book.resting()
        if resting and self.rng.random() < 0.2:
            order_id = self.rng.choice(sorted(resting))
            return {"op": "cancel", "market": MARKET, "id": order_id, "owner": owner_of(order_id)}
        owner = f"0xw{self.rng.randrange(20):02d}"
        side = self.rng.choice(("buy", "sell"))
        offset = self.rng.randint(-5, 5) + (-2 if side == "buy" else 2)
        price = f"{100 + offset * 0.25:.2f}"
        qty = str(self.rng.randint(1, 5))
        return {"op": "new", "market": MARKET, "id": f"{owner}-{n}", "owner": owner,
                "side": side, "price": price, "qty": qty}  # fmt: skip

    def run(self) -> None:
        start = time.monotonic()
        n = 0
        while not self.stopping.is_set():
            due = start + n / self.rate
            pause = due - time.monotonic()
            if pause > 0:
                self.stopping.wait(pause)
            n += 1
            try:
                reply = self.client.submit(MARKET, [self.command(n)])
            except ClientError as error:
                self.errors.append(str(error))
                continue
            self.sent += 1
            self.book.absorb(reply.events)


def owner_of(order_id: str) -> str:
    return order_id.rsplit("-", 1)[0]


def books_of(cluster: LocalCluster, names: list[str]) -> dict[str, dict[str, int]]:
    """Each node's resting MARKET orders: id -> remaining lots."""
    found = {}
    for name in names:
        with Client(address_of_home(cluster.home(name)), cluster.peer_key()) as client:
            orders = client.open_orders().orders
        found[name] = {o.id: int(o.qty) for o in orders if o.market == MARKET}
    return found


async def rewrite(store: DirectoryStore) -> Directory:
    """Write the directory as it is (a compare-and-set from the version read)."""
    return await store.write(await store.read())


def kill_directory_leader(cluster: LocalCluster) -> dict:
    """SIGKILL the server leading the directory's stream; how long until a write succeeds."""
    record = cluster.record()
    leader, _ = with_directory(record.urls, lambda store: store.replicas())
    victim = next(server for server in record.servers if server.name == leader)
    os.kill(victim.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    survivors = [server.url for server in record.servers if server is not victim]
    while True:
        try:
            with_directory(survivors, rewrite, timeout_s=1.0)
            break
        except Exception as error:  # the election under way: try again until the limit
            if time.monotonic() - killed > KILL_RECOVERY_LIMIT_S:
                return {"killed": leader, "recovered": False, "error": str(error)}
            time.sleep(0.1)
    recovered = time.monotonic() - killed
    new_leader, _ = with_directory(survivors, lambda store: store.replicas())
    return {"killed": leader, "recovered": True, "write_after_kill_s": round(recovered, 2),
            "new_leader": new_leader}  # fmt: skip


def _follows_past(client, version: int) -> bool:
    """Does the client come to follow a directory version after `version` (the write made
    after the leader's kill) within FOLLOW_LIMIT_S?"""
    deadline = time.monotonic() + FOLLOW_LIMIT_S
    while time.monotonic() < deadline:
        client.follow()
        if client.routes.version > version:
            return True
        time.sleep(0.05)
    return False


def with_ring_market(cluster: LocalCluster) -> ClusterRecord:
    """The cluster up with RING_MARKET configured on every node (a configuration change needs
    a restart; the directory gives the new market to n1)."""
    record = up(cluster, servers=3, nodes=3)
    down(cluster)
    for node in record.nodes:
        config = cluster.home(node.name).config_path
        config.write_text(config.read_text() + RING_MARKET_TABLE)
    return up(cluster, servers=3, nodes=3)


def inside_price(snapshot) -> Decimal:
    """A price strictly between the best bid and the best ask (100 in an empty book)."""
    bid = Decimal(snapshot.bids[0].price) if snapshot.bids else None
    ask = Decimal(snapshot.asks[0].price) if snapshot.asks else None
    if bid is None or ask is None:
        return (bid + TICK if bid is not None else ask - TICK) if (bid or ask) else Decimal(100)
    price = ((bid + ask) / 2).quantize(TICK)
    if not bid < price < ask:
        raise RuntimeError(f"no room inside the spread of {snapshot.market}: {bid} {ask}")
    return price


def wash_ring(cluster: LocalCluster) -> int:
    """RING_ROUNDS rounds of the ring, each leg a sell resting inside the spread that the next
    wallet's IOC buy takes at once; the trades made."""
    legs = [(RING[0], RING[1], RING_MARKET, "n1"), (RING[1], RING[2], MARKET, "n2"),
            (RING[2], RING[0], RING_MARKET, "n1")]  # fmt: skip
    traded = 0
    clients = {name: Client(address_of_home(cluster.home(name)), cluster.peer_key())
               for name in ("n1", "n2")}  # fmt: skip
    try:
        for round_number in range(RING_ROUNDS):
            for leg, (seller, buyer, market, node) in enumerate(legs):
                price = str(inside_price(clients[node].snapshot(market)))
                order = f"ring-{round_number}-{leg}"
                reply = clients[node].submit([
                    {"op": "new", "market": market, "id": f"{order}-s", "owner": seller,
                     "side": "sell", "price": price, "qty": "5"},
                    {"op": "new", "market": market, "id": f"{order}-b", "owner": buyer,
                     "side": "buy", "price": price, "qty": "5", "tif": "IOC"},
                ])  # fmt: skip
                traded += sum(type(e).__struct_config__.tag == "trade" for e in reply.events)
    finally:
        for client in clients.values():
            client.close()
    return traded


def scan_for_the_ring(cluster: LocalCluster) -> dict:
    """`mnode cluster scan --json` over the running cluster: is the ring flagged, and which
    other wallets do its alerts name."""
    started = time.monotonic()
    command = [sys.executable, "-m", "marketnode.cli", "cluster", "scan", "--cluster",
               str(cluster.path), "--json"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    scan_s = time.monotonic() - started
    if done.returncode != 0:
        return {"flagged": False, "exit": done.returncode, "error": done.stderr.strip()[-300:]}
    report = json.loads(done.stdout)
    ring = [alert for alert in report["alerts"] if set(alert["wallets"]) == set(RING)
            and alert["evidence"]["nodes"] == ["n1", "n2"]]  # fmt: skip
    named = {wallet for alert in report["alerts"] for wallet in alert["wallets"]}
    return {"flagged": bool(ring), "exit": 0, "scan_s": round(scan_s, 2),
            "trades_scanned": report["trades"], "alerts": len(report["alerts"]),
            "ring_alert": ring[0]["id"] if ring else None,
            "ring_severity": ring[0]["severity"] if ring else None,
            "false_wallets": len(named - set(RING))}  # fmt: skip


def run(rate: float, before_s: float, after_s: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="cluster-move-"))
    cluster = LocalCluster(folder / "cluster")
    record = with_ring_market(cluster)
    names = [node.name for node in record.nodes]
    try:
        client, follower = follow_cluster(record.urls, cluster.peer_key())
        watcher, watcher_follower = follow_cluster(record.urls, cluster.peer_key())
        watcher.subscribe(MARKET)
        load = Load(client, rate)
        load.start()
        time.sleep(before_s)
        started = time.monotonic()
        report = move_market(cluster, MARKET, "n2")
        move_s = time.monotonic() - started
        followed_s = None
        while followed_s is None and time.monotonic() - started < FOLLOW_LIMIT_S:
            watcher.follow()
            if watcher.node_of(MARKET) == "n2":
                followed_s = time.monotonic() - started
            time.sleep(0.01)
        market_data_after = 0
        deadline = time.monotonic() + after_s
        while time.monotonic() < deadline:
            message = watcher.receive(100)
            if message is not None and message.market == MARKET and message.trades:
                market_data_after += 1
        load.stopping.set()
        load.join()
        follower.stop()
        client.close()
        books = books_of(cluster, names)
        ring_trades = wash_ring(cluster)
        scan = {"ring_trades": ring_trades, **scan_for_the_ring(cluster)}
        directory_kill = kill_directory_leader(cluster)
        directory_kill["watcher_saw_the_write_after"] = _follows_past(watcher, report.version)
        directory_kill["watcher_restarts"] = watcher_follower.restarts
        watcher_follower.stop()
        watcher.close()
    finally:
        down(cluster)
    verified = {
        name: subprocess.run([sys.executable, "-m", "marketnode.cli", "verify", "--home",
                              str(cluster.home(name).path)], capture_output=True).returncode == 0
        for name in names
    }  # fmt: skip
    expected = load.book.resting()
    where: dict[str, list[str]] = {}
    for name, orders in books.items():
        for order_id in orders:
            where.setdefault(order_id, []).append(name)
    lost = sorted(i for i, left in expected.items()
                  if i not in where or any(books[n][i] != left for n in where[i]))  # fmt: skip
    duplicated = sorted(i for i, nodes in where.items() if len(nodes) > 1 or i not in expected)
    processes_left = [n.name for n in cluster.record().nodes if n.process and running(n.process)]
    return {
        "moved": report.destination == "n2" and books["n1"] == {} and bool(books["n2"]),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "verify_ok": all(verified.values()),
        "cross_node_ring_flagged": scan["flagged"],
        "cross_node_ring_reason": (
            f"a ring of {len(RING)} wallets, {RING_ROUNDS} rounds, legs in {RING_MARKET} on n1 "
            f"and {MARKET} on n2 after its move: `mnode cluster scan` "
            + ("flagged it" if scan["flagged"] else "did not flag it")
        ),
        "cross_node_scan": scan,
        "orders_sent": load.sent,
        "orders_accepted": load.book.accepted,
        "rejects": load.book.rejects,
        "client_errors": len(load.errors),
        "trades": load.book.trades,
        "resting_moved": report.orders,
        "resting_at_end": {name: len(orders) for name, orders in books.items()},
        "move_s": round(move_s, 3),
        "watcher_followed_s": None if followed_s is None else round(followed_s, 3),
        "market_data_after_move": market_data_after,
        "client_moves_followed": client.moves_followed,
        "resent_after_move": client.resent,
        "directory_version": report.version,
        "directory_kill": directory_kill,
        "nodes_left_running": processes_left,
        "verify": verified,
        "rate": rate,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "examples": {"lost": lost[:5], "duplicated": duplicated[:5]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0, help="orders/s offered")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of load after")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args()
    result = run(args.rate, args.before, args.after)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()

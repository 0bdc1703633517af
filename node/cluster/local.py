"""A local cluster (`mnode cluster up`): NATS servers holding the directory and node homes
under one folder, their processes recorded by pid in `cluster.json` and stopped by them.

    CLUSTER/cluster.json   the servers and nodes, with the pids `cluster down` stops
    CLUSTER/nats/          each server's configuration, JetStream store and log
    CLUSTER/nodes/NAME/    each node's home (its log in node.log)
    CLUSTER/keys/          the peer key pairs registered on every node (`load`, a relayer)

Every node configures every market of the cluster; the directory says which one serves it and
the others keep it halted, so a move needs no configuration change and survives restarts.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ..client import AdminClient, ClientError, address_of_home
from ..home.config import default_config_text
from ..home.keys import OPERATOR, PEERS_FOLDER, KeyPair, create_key_pair, load_key_pair
from ..home.layout import Home
from ..home.peers import Allowlist, Peer, save_allowlist
from .directory import (
    Directory,
    DirectoryError,
    DirectoryStore,
    MarketEntry,
    NodeEntry,
    with_directory,
)
from .processes import ProcessRecord, running, spawn, stop
from .servers import ServerRecord, start_servers

RECORD_FILE = "cluster.json"
LOAD_PEER = "load"
NODE_START_TIMEOUT_S = 60.0
BUCKET_TIMEOUT_S = 30.0
"""A new JetStream cluster elects its leader before the directory's bucket can be made."""
ELECTION_POLL_S = 1.0
"""How long each attempt to open the bucket waits while the leader is being elected."""
NODE_SETTINGS = """[node]
name = "{name}"
log_level = "warning"

[endpoints]
orders = "tcp://127.0.0.1:*"
market_data = "tcp://127.0.0.1:*"
admin = "tcp://127.0.0.1:*"

[limits]
peer_rate_per_s = 10000000
peer_burst = 10000000

[analytics]
enabled = false

"""
"""A cluster node's settings: loopback on ports picked at start, no rate limit for the load
peer, no analytics process (analytics across nodes is not built yet: docs/cluster.md)."""


class ClusterError(Exception):
    """The local cluster cannot do what was asked (one line for the operator)."""


class ClusterUnreachable(ClusterError):
    """A node of the cluster did not answer in time (the operator's exit code 5, not 2)."""


class NodeRecord(msgspec.Struct):
    name: str
    home: str
    process: ProcessRecord | None = None


class ClusterRecord(msgspec.Struct):
    servers: list[ServerRecord]
    nodes: list[NodeRecord]
    replicas: int

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]


@dataclass(frozen=True)
class LocalCluster:
    """A cluster folder."""

    path: Path

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_FILE

    def record(self) -> ClusterRecord:
        if not self.record_path.exists():
            raise ClusterError(f"{self.path}: no cluster here (start one with `mnode cluster up`)")
        return msgspec.json.decode(self.record_path.read_bytes(), type=ClusterRecord)

    def save(self, record: ClusterRecord) -> None:
        self.record_path.write_bytes(msgspec.json.format(msgspec.json.encode(record)) + b"\n")

    def home(self, name: str) -> Home:
        return Home(self.path / "nodes" / name)

    def peer_key(self, name: str = LOAD_PEER) -> KeyPair:
        return load_key_pair(self.path / "keys" / f"{name}.key_secret")

    def admin(self, name: str, timeout_s: float = 10.0) -> AdminClient:
        """An admin connection to node `name`, with its home's operator key."""
        home = self.home(name)
        config = home.config()
        key = load_key_pair(home.keys_path(config) / f"{OPERATOR}.key_secret")
        return AdminClient(address_of_home(home, config), key, timeout_s=timeout_s)


def cluster_of_home(path: Path) -> tuple[LocalCluster, str] | None:
    """The local cluster a node home is a member of (`CLUSTER/nodes/NAME` beside
    `CLUSTER/cluster.json`) and the node's name in it; None for a home of no cluster."""
    path = path.resolve()
    folder = path.parent.parent
    if path.parent.name != "nodes" or not (folder / RECORD_FILE).exists():
        return None
    return LocalCluster(folder), path.name


def up(cluster: LocalCluster, servers: int = 3, nodes: int = 3) -> ClusterRecord:
    """Start the cluster in `cluster.path` (created with `nodes` homes the first time; after a
    `down`, the same homes and directory again): servers, directory, nodes, each node halting
    the markets the directory gives to another."""
    if servers < 1 or nodes < 1:
        raise ClusterError("a cluster needs at least one server and one node")
    if cluster.record_path.exists() and any_running(cluster.record()):
        raise ClusterError(f"{cluster.path}: the cluster is up (`mnode cluster down` first)")
    names = _node_names(cluster, nodes)
    started = start_servers(cluster.path / "nats", servers)
    record = ClusterRecord(started, [NodeRecord(name, str(cluster.home(name).path))
                                     for name in names], min(servers, 3))  # fmt: skip
    cluster.save(record)
    try:
        directory = _open_directory(record)
        spawned = []
        for node in record.nodes:  # all started, then each waited for
            node.process = process = _spawn_node(cluster.home(node.name))
            spawned.append((cluster.home(node.name), process))
            cluster.save(record)
        for home, process in spawned:
            _wait_for_node(home, process)
        directory = _register(cluster, record, directory)
        apply_halts(cluster, directory)
    except BaseException:
        down(cluster)
        raise
    return record


def _node_names(cluster: LocalCluster, count: int) -> list[str]:
    """The nodes' names, their homes made the first time (each with the `load` peer)."""
    folder = cluster.path / "nodes"
    existing = sorted(path.name for path in folder.iterdir()) if folder.exists() else []
    if existing:
        return existing
    keys = cluster.path / "keys"
    key = create_key_pair(keys, LOAD_PEER)
    names = [f"n{index + 1}" for index in range(count)]
    for name in names:
        home = Home.create(cluster.home(name).path)
        text = default_config_text()
        markets = text[text.index("\n[[markets]]") + 1 :]
        home.config_path.write_text(NODE_SETTINGS.format(name=name) + markets)
        config = home.config()
        peers_keys = home.keys_path(config) / PEERS_FOLDER
        peers_keys.mkdir(exist_ok=True, mode=0o700)
        for suffix in ("key", "key_secret"):  # `--as load` finds it in the home, too
            shutil.copy2(keys / f"{LOAD_PEER}.{suffix}", peers_keys / f"{LOAD_PEER}.{suffix}")
        peer = Peer(LOAD_PEER, key.public_text, relayer=True)
        save_allowlist(home.peers_path(config), Allowlist((peer,)))
    return names


def _open_directory(record: ClusterRecord) -> Directory:
    """The directory as stored, waiting while the new servers elect their leader."""
    deadline = time.monotonic() + BUCKET_TIMEOUT_S
    while True:
        try:
            return with_directory(record.urls, lambda store: store.read(), record.replicas,
                                  timeout_s=ELECTION_POLL_S)  # fmt: skip
        except DirectoryError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _spawn_node(home: Home) -> ProcessRecord:
    home.runtime_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "marketnode.cli", "start", "--home", str(home.path)]
    return spawn(command, home.path / "node.log")


def _wait_for_node(home: Home, process: ProcessRecord) -> None:
    """Wait until the node has bound its sockets (it writes node.json then)."""
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while not home.runtime_path.exists():
        if not running(process) or time.monotonic() > deadline:
            log = (home.path / "node.log").read_text()[-500:]
            raise ClusterError(f"node {home.path.name} did not start: {log.strip()}")
        time.sleep(0.05)


def _register(cluster: LocalCluster, record: ClusterRecord, directory: Directory) -> Directory:
    """The directory with the nodes as they now listen, each market not in it yet given to a
    node in turn; written with a compare-and-set on the version read."""
    nodes = dict(directory.nodes)
    for node in record.nodes:
        address = address_of_home(cluster.home(node.name))
        key = address.server_key.decode() if address.server_key else None
        nodes[node.name] = NodeEntry(address.orders, address.market_data, address.admin, key)
    markets = dict(directory.markets)
    specs = cluster.home(record.nodes[0].name).config().markets
    names = [node.name for node in record.nodes]
    for index, spec in enumerate(specs):
        if spec.symbol not in markets or markets[spec.symbol].node not in nodes:
            markets[spec.symbol] = MarketEntry(names[index % len(names)])
    changed = Directory(nodes, markets, directory.version)
    return with_directory(record.urls, lambda store: store.write(changed))


def apply_halts(cluster: LocalCluster, directory: Directory) -> None:
    """Each node trades the markets the directory gives it and halts the others (a market
    being moved stays halted everywhere until its move ends)."""
    for name in directory.nodes:
        with cluster.admin(name) as admin:
            for market, entry in directory.markets.items():
                serves = entry.node == name and entry.moving_to is None
                admin.call("resume" if serves else "halt", market=market)


def any_running(record: ClusterRecord) -> bool:
    processes = [s.process for s in record.servers] + [n.process for n in record.nodes]
    return any(process is not None and running(process) for process in processes)


def down(cluster: LocalCluster) -> list[str]:
    """Stop the cluster's nodes (each commits its batch in flight), then its servers, each by
    its recorded pid; what was stopped, one line each."""
    record = cluster.record()
    stopped = []
    for node in record.nodes:
        if node.process is not None and stop(node.process):
            stopped.append(f"node {node.name} (pid {node.process.pid})")
        node.process = None
    for server in record.servers:
        if stop(server.process):
            stopped.append(f"nats-server {server.name} (pid {server.process.pid})")
    cluster.save(record)
    return stopped


async def _read_with_replicas(store: DirectoryStore) -> tuple[Directory, tuple]:
    return await store.read(), await store.replicas()


def status(cluster: LocalCluster) -> dict:
    """The servers, the directory and each node as they are now (what `cluster status`
    shows): a part that cannot be reached says why instead of failing the rest."""
    record = cluster.record()
    servers = [
        {"name": s.name, "url": s.url, "pid": s.process.pid, "running": running(s.process)}
        for s in record.servers
    ]
    report: dict = {"servers": servers, "replicas": record.replicas}
    try:
        directory, (leader, replicas) = with_directory(record.urls, _read_with_replicas)
        report["directory"] = {"version": directory.version,
                               "markets": msgspec.to_builtins(directory.markets),
                               "leader": leader, "replicas": replicas}  # fmt: skip
    except DirectoryError as error:
        directory = None
        report["directory"] = {"error": str(error)}
    nodes = []
    for node in record.nodes:
        row: dict = {"name": node.name, "home": node.home,
                     "pid": node.process.pid if node.process else None,
                     "running": node.process is not None and running(node.process)}  # fmt: skip
        if directory is not None:
            row["serves"] = sorted(m for m, e in directory.markets.items() if e.node == node.name)
        if row["running"]:
            try:
                with cluster.admin(node.name) as admin:
                    state = admin.call("status")
                    books = admin.call("markets")
                resting = {book["market"]: book["resting_orders"] for book in books}
                row.update(seq=state["seq"], state_hash=state["state_hash"],
                           halted=state["halted"], resting_orders=resting)  # fmt: skip
            except ClientError as error:  # one node's trouble is its row's, not the report's
                row["error"] = str(error)
        nodes.append(row)
    report["nodes"] = nodes
    return report

"""Shared fixtures: a real node (real LMDB, real ZeroMQ sockets on loopback, CURVE on) in a
temporary home, served by a thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import zmq

from marketnode.node.client import (
    AdminClient,
    Client,
    NodeAddress,
    Subscriber,
    address_of_home,
)
from marketnode.node.home.keys import (
    OPERATOR,
    PEERS_FOLDER,
    KeyPair,
    create_key_pair,
    load_key_pair,
)
from marketnode.node.home.layout import Home
from marketnode.node.home.peers import Peer, load_allowlist, save_allowlist
from marketnode.node.server.node import Node

LOOPBACK_ENDPOINTS = """
[endpoints]
orders = "tcp://127.0.0.1:*"
market_data = "tcp://127.0.0.1:*"
admin = "tcp://127.0.0.1:*"
"""
NO_ANALYTICS = """
[analytics]
enabled = false
"""


@dataclass
class RunningNode:
    """A node serving a temporary home, and helpers to reach it as its peers or operator."""

    home: Home
    node: Node
    thread: threading.Thread
    keys: dict[str, KeyPair] = field(default_factory=dict)
    clients: list = field(default_factory=list)

    @property
    def address(self) -> NodeAddress:
        return address_of_home(self.home)

    def client(self, peer: str, timeout_s: float = 5.0) -> Client:
        client = Client(self.address, self.keys[peer], timeout_s=timeout_s)
        self.clients.append(client)
        return client

    def admin(self) -> AdminClient:
        key = load_key_pair(self.home.path / "keys" / f"{OPERATOR}.key_secret")
        admin = AdminClient(self.address, key)
        self.clients.append(admin)
        return admin

    def subscriber(self, peer: str, markets: list[str]) -> Subscriber:
        subscriber = Subscriber(self.address, self.keys[peer], markets)
        self.clients.append(subscriber)
        return subscriber

    def raw_socket(self, kind: int, endpoint: str, key: KeyPair) -> zmq.Socket:
        """A bare socket with `key` (CURVE) connected to `endpoint`: sends whatever bytes and
        frames it is given; closed with the node."""
        sock = zmq.Context.instance().socket(kind)
        sock.linger = 0
        sock.curve_serverkey = self.address.server_key
        sock.curve_publickey = key.public
        sock.curve_secretkey = key.secret
        sock.connect(endpoint)
        self.clients.append(sock)
        return sock

    def add_peer(self, name: str, owners: tuple[str, ...] = (), **flags: bool) -> KeyPair:
        """Register a peer with a new key pair (the running node reloads the allowlist)."""
        config = self.home.config()
        key = create_key_pair(self.home.keys_path(config) / PEERS_FOLDER, name)
        path = self.home.peers_path(config)
        save_allowlist(
            path, load_allowlist(path).with_peer(Peer(name, key.public_text, owners, **flags))
        )
        self.keys[name] = key
        return key

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()
        self.node.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the node did not stop"


def start_node(home: Home) -> RunningNode:
    node = Node(home, home.config())
    node.start()
    thread = threading.Thread(target=node.serve, name="node", daemon=True)
    thread.start()
    return RunningNode(home, node, thread)


def until(condition: Callable[[], object], what: str, timeout_s: float = 30.0) -> None:
    """Wait for `condition` (polled every 50 ms); fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with slow tests first, each file's tests in their order: on two workers
    (`-n 2 --dist loadfile`), a long file handed out last runs alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture
def node_factory(tmp_path) -> Iterator[Callable[..., RunningNode]]:
    """start(extra_config="", peers={name: owners}) -> RunningNode; stopped after the test."""
    started: list[RunningNode] = []

    def start(
        extra_config: str = "", peers: dict[str, tuple[str, ...]] | None = None
    ) -> RunningNode:
        home = Home.create(tmp_path / f"home{len(started)}")
        analytics = "" if "[analytics]" in extra_config else NO_ANALYTICS
        _set_tables(home, LOOPBACK_ENDPOINTS + analytics + extra_config)
        running = start_node(home)
        for name, owners in (peers or {}).items():
            running.add_peer(name, owners)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


@pytest.fixture
def running_node(node_factory) -> RunningNode:
    """A node with peers alice (owner 0xa11ce) and bob (owner 0xb0b)."""
    return node_factory(peers={"alice": ("0xa11ce",), "bob": ("0xb0b",)})


def _set_tables(home: Home, tables: str) -> None:
    """Replace the default config's non-market tables with `tables` (markets are kept)."""
    text = home.config_path.read_text()
    markets = text[text.index("\n[[markets]]") + 1 :]
    home.config_path.write_text(tables.strip() + "\n\n" + markets)


@pytest.fixture
def utc(monkeypatch):
    """Times are shown in local time: a snapshot is taken in UTC wherever it runs."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()

"""The node these checks share: one `mnode start` for the session, with a market per test.

Each test takes markets of its own from the pool (P01-ETH, P02-ETH, ... like PUNK-ETH;
G01-USDC, ... like GOLD-USDC), so tests sharing the node do not meet in a book; peers that a
check changes for good (disabled, revoked, cancel-on-disconnect) are used by one test only.
"""

from __future__ import annotations

import pytest

from .wire import MarketPool, MarketSpec, Node, PeerSpec, standard_markets

MAIN_PEERS = [
    PeerSpec("alice", ("0xa11ce",)),
    PeerSpec("bob", ("0xb0b",)),
    PeerSpec("carol", ("0xa11ce",)),  # another peer for alice's owner
    PeerSpec("mm", relayer=True),
    PeerSpec("dave", ("0xda7e", "0xda7e2")),
    PeerSpec("erin", ("0xda7e2",)),
    PeerSpec("dis", ("0xd15",)),
    PeerSpec("rev", ("0x4e7",)),
    PeerSpec("cod", ("0xc0d",), cancel_on_disconnect=True),
]

P_MARKETS = standard_markets("P", 90)
G_MARKETS = [
    MarketSpec(
        f"G{i:02d}-USDC",
        tick_size="0.05",
        lot_size="0.1",
        min_qty="0.1",
        max_qty="100",
        max_notional="250000",
        stp="decrement",
    )
    for i in range(1, 9)
]
#: markets whose min_qty is above the lot, for the reject order: lot 1, qty 5..10, notional 100
L_MARKETS = [
    MarketSpec(f"L{i:02d}-ETH", min_qty="5", max_qty="10", max_notional="100") for i in range(1, 4)
]
EXTRA = [
    MarketSpec("SYNC-ETH", max_qty="1000000", max_notional="100000000"),
    MarketSpec("Q1-ETH"),
    MarketSpec("Q1-ETHX"),
    MarketSpec(
        "U1-ETH",
        tick_size="0.5",
        lot_size="2",
        min_qty=None,
        max_qty=None,
        max_notional=None,
        stp=None,
    ),
]


@pytest.fixture(scope="session")
def node(tmp_path_factory):
    n = Node(
        tmp_path_factory.mktemp("main-node"),
        peers=MAIN_PEERS,
        markets=EXTRA + P_MARKETS + G_MARKETS + L_MARKETS,
    )
    n.create()
    n.start()
    n.pool = MarketPool([m.symbol for m in P_MARKETS])
    n.gold_pool = MarketPool([m.symbol for m in G_MARKETS])
    n.limited_pool = MarketPool([m.symbol for m in L_MARKETS])
    yield n
    n.stop()


@pytest.fixture
def market(node) -> str:
    """A PUNK-ETH-like market of this test's own (tick 0.01, lot 1, qty 1..500, notional 40000)."""
    return node.pool.take()


@pytest.fixture(scope="module")
def shared_market(node) -> str:
    """A PUNK-ETH-like market for the checks of one module that cannot meet (ids of their own)."""
    return node.pool.take()


@pytest.fixture
def market2(node) -> str:
    return node.pool.take()


@pytest.fixture
def gold(node) -> str:
    """A GOLD-USDC-like market of this test's own (tick 0.05, lot 0.1, stp decrement)."""
    return node.gold_pool.take()


@pytest.fixture
def limited(node) -> str:
    """A market of this test's own with lot 1, min_qty 5, max_qty 10, max_notional 100."""
    return node.limited_pool.take()


def _connected(node, name):
    peer = node.peer(name)
    peer.ping()  # §4: any request makes this connection the one that receives the reports
    return peer


@pytest.fixture
def alice(node):
    peer = _connected(node, "alice")
    yield peer
    peer.close()


@pytest.fixture
def bob(node):
    peer = _connected(node, "bob")
    yield peer
    peer.close()


@pytest.fixture
def carol(node):
    peer = _connected(node, "carol")
    yield peer
    peer.close()


@pytest.fixture
def mm(node):
    peer = _connected(node, "mm")
    yield peer
    peer.close()


@pytest.fixture
def admin(node):
    return node.admin()

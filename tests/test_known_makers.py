"""Known market makers (a liquidity instance's owner, an operator's declared maker): their
quoting is no wash, their trades with themselves or a linked owner are, and a ring that trades
with them is still found. Markets made through the real engine, journaled in LMDB and followed
into DuckDB, with the times of a real day."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from marketnode.node.analytics.duckdb_store import AnalyticsStore
from marketnode.node.analytics.follower import JournalFollower
from marketnode.node.analytics.integrity import detector_settings, scan
from marketnode.node.analytics.makers import (
    declare_maker,
    forget_maker,
    record_configured_makers,
)
from marketnode.node.core.markets import MarketSpec
from marketnode.node.home.config import IntegrityConfig
from marketnode.node.tools.evaluation import journal_by_the_minute

SPEC = MarketSpec("THIN-ETH", "THIN", "ETH", "0.01", "1", "1", "1000", "1000000", "none")
MAKER = "0x5001"
START_NS = 1_790_000_000 * 10**9
STEP_NS = 6 * 10**9
SPREAD_TICKS = 5
"""The maker quotes this many ticks either side of its mid; wash legs go at the mid, inside."""


class Flow:
    """Commands with their times, made as a node would take them: one maker quoting both sides
    of a drifting mid (refreshed when the mid moves three ticks, or a side runs low, as the
    liquidity market maker does within its tolerance), and takers filling its quotes."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.commands: list[dict] = []
        self.times: list[int] = []
        self.now = START_NS
        self.ids = iter(range(1, 10**9))
        self.mid = 10_000  # ticks: 100.00
        self.quoted_mid = self.mid
        self.quotes: dict[str, tuple[int, int]] = {}  # side -> (order id, lots left)
        self.quote()

    def new(self, owner: str, side: str, ticks: int, qty: int, tif: str = "GTC") -> int:
        order_id = next(self.ids)
        price = f"{ticks / 100:.2f}"
        self.emit({"op": "new", "market": SPEC.symbol, "id": order_id, "owner": owner,
                   "side": side, "price": price, "qty": str(qty), "tif": tif})  # fmt: skip
        return order_id

    def emit(self, command: dict) -> None:
        self.commands.append(command)
        self.times.append(self.now)

    def step(self) -> None:
        self.now += int(self.rng.expovariate(1.0) * STEP_NS) + 1
        if self.rng.random() < 0.1:
            self.mid += self.rng.choice((-1, 1))
        if abs(self.mid - self.quoted_mid) >= 3 or min(q[1] for q in self.quotes.values()) < 40:
            self.quote()

    def quote(self) -> None:
        for order_id, _ in self.quotes.values():
            self.emit({"op": "cancel", "market": SPEC.symbol, "id": order_id, "owner": MAKER})
        self.quoted_mid = self.mid
        self.quotes = {
            "buy": (self.new(MAKER, "buy", self.mid - SPREAD_TICKS, 200), 200),
            "sell": (self.new(MAKER, "sell", self.mid + SPREAD_TICKS, 200), 200),
        }

    def take(self, taker: str, side: str, qty: int) -> None:
        """`taker` fills `qty` of the maker's quote on the other side (always enough left)."""
        resting = "sell" if side == "buy" else "buy"
        order_id, left = self.quotes[resting]
        price = self.quoted_mid + (SPREAD_TICKS if side == "buy" else -SPREAD_TICKS)
        self.new(taker, side, price, qty, "IOC")
        self.quotes[resting] = (order_id, left - qty)
        self.step()

    def wash_leg(self, seller: str, buyer: str, qty: int) -> None:
        """A sell rested at the mid (inside the maker's spread), taken at once by `buyer`."""
        self.new(seller, "sell", self.mid, qty)
        self.new(buyer, "buy", self.mid, qty, "IOC")
        self.step()


def round_tripping_takers(flow: Flow, takers: list[str], trips: int) -> None:
    """Each trip a taker buys some lots from the maker and, a few steps later, sells as many
    back: busy partners of a thin market's only maker, trading with nobody else."""
    holding = dict.fromkeys(takers, 0)
    for _ in range(trips * 2):
        taker = flow.rng.choice(takers)
        if holding[taker]:
            flow.take(taker, "sell", holding[taker])
            holding[taker] = 0
        else:
            holding[taker] = flow.rng.randint(1, 30)
            flow.take(taker, "buy", holding[taker])
    for taker, lots in holding.items():
        if lots:
            flow.take(taker, "sell", lots)


def replayed(flow: Flow, folder: Path) -> AnalyticsStore:
    """The flow through the real engine into LMDB, a commit per minute stamped with its last
    command's time, then followed into DuckDB."""
    store = journal_by_the_minute(folder / "data", [SPEC], flow.commands, flow.times, 64 << 20)
    analytics = AnalyticsStore(folder / "analytics.duckdb")
    try:
        JournalFollower(store, analytics).sync()
    finally:
        store.close()
    return analytics


@pytest.fixture
def market(tmp_path):
    """(flow, a function replaying it into a store closed at the end)."""
    opened: list[AnalyticsStore] = []

    def replay(flow: Flow) -> AnalyticsStore:
        opened.append(replayed(flow, tmp_path / str(len(opened))))
        return opened[-1]

    yield replay
    for analytics in opened:
        analytics.close()


def alerts_naming(analytics: AnalyticsStore, wallet: str) -> dict[str, int]:
    """Alerts of a scan naming `wallet`, by detector."""
    found: dict[str, int] = {}
    for alert in scan(analytics.connection, detector_settings(IntegrityConfig())):
        if wallet in alert.wallets:
            found[alert.detector] = found.get(alert.detector, 0) + 1
    return found


INSTANCE = {"pool": {"strategy": "market_maker", "market": SPEC.symbol, "peer": "mm",
                     "owner": MAKER.upper().replace("X", "x")}}  # fmt: skip
"""A `[liquidity.NAME]` table naming the maker (its owner in another case: config lowercases)."""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_thin_markets_maker_is_wash_to_the_detectors_until_known(market, seed):
    flow = Flow(seed)
    round_tripping_takers(flow, ["0xt1", "0xt2", "0xt3"], trips=40)
    analytics = market(flow)
    unknown = alerts_naming(analytics, MAKER)
    assert unknown.keys() & {"round_trips", "churn"}, unknown  # why it must be known
    assert record_configured_makers(analytics.connection, INSTANCE) == 1
    assert scan(analytics.connection, detector_settings(IntegrityConfig())) == []


def test_a_declared_maker_quoting_many_takers_is_no_lead_nor_finding(market):
    flow = Flow(4)
    round_tripping_takers(flow, [f"0xt{n}" for n in range(40)], trips=200)
    analytics = market(flow)
    declare_maker(analytics.connection, MAKER, None, "market-making agreement")
    alerts = scan(analytics.connection, detector_settings(IntegrityConfig()))
    assert [a for a in alerts if MAKER in a.wallets] == []
    assert forget_maker(analytics.connection, MAKER, None) == 1
    assert forget_maker(analytics.connection, MAKER, None) == 0


def test_a_known_makers_trades_with_itself_and_a_linked_owner_are_self_trades(market):
    flow = Flow(5)
    round_tripping_takers(flow, ["0xt1", "0xt2", "0xt3"], trips=20)
    for _ in range(3):  # buys its own ask (the market prevents no self-trade)
        flow.take(MAKER, "buy", 5)
    for _ in range(4):  # an owner of the same party fills it both ways
        flow.take("0xdesk", "buy", 10)
        flow.take("0xdesk", "sell", 10)
    analytics = market(flow)
    record_configured_makers(analytics.connection, INSTANCE)
    analytics.connection.execute("INSERT INTO links VALUES (?, '0xdesk', 'same party', now())",
                                 [MAKER])  # fmt: skip
    alerts = scan(analytics.connection, detector_settings(IntegrityConfig()))
    naming = [a for a in alerts if MAKER in a.wallets]
    assert {a.detector for a in naming} == {"self_trades"}
    kinds: dict[str, int] = {}
    for alert in naming:  # (an alert per buyer and seller: the desk's buys, then its sells)
        kinds[alert.evidence["kind"]] = kinds.get(alert.evidence["kind"], 0) + len(alert.trades)
    assert kinds == {"same owner": 3, "linked owners": 8}


def test_a_ring_that_trades_with_a_known_maker_is_found_without_it(market):
    flow = Flow(6)
    ring = ["0xwa", "0xwb", "0xwc"]
    for lap in range(8):
        for seller, buyer in zip(ring, ring[1:] + ring[:1], strict=True):
            flow.wash_leg(seller, buyer, 12)
        flow.take(ring[lap % 3], "buy", 3)  # the ring's members fill the maker too
        flow.take(ring[lap % 3], "sell", 3)
        round_tripping_takers(flow, ["0xt1", "0xt2"], trips=2)
    analytics = market(flow)
    record_configured_makers(analytics.connection, INSTANCE)
    alerts = scan(analytics.connection, detector_settings(IntegrityConfig()))
    ring_finders = {a.detector for a in alerts if set(a.wallets) == set(ring)}
    assert ring_finders >= {"trade_cycles", "wash_clusters"}, alerts
    assert [a for a in alerts if MAKER in a.wallets] == []


def test_a_known_maker_is_no_anomaly_lead_and_the_others_rank_without_it():
    """The wash pair of test_anomalous_wallets' market, the first two leads there, with one of
    them declared a maker: the other leads first."""
    from marketnode.plugins import anomalous_wallets
    from tests.test_anomalous_wallets import SETTINGS, market_with_a_wash_pair_and_a_supplier

    connection = market_with_a_wash_pair_and_a_supplier()
    declare_maker(connection, "0xwashA", "PUNK-ETH", "a desk")
    leads = sorted(anomalous_wallets.detect_integrity(connection, SETTINGS),
                   key=lambda a: a.evidence["rank"])  # fmt: skip
    assert leads[0].wallets == ["0xwashB"] and "0xwashA" not in {a.wallets[0] for a in leads}
    assert [a.evidence["rank"] for a in leads] == list(range(1, len(leads) + 1))

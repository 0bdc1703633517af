"""The matching engine checked against the plain reference exchange in `reference_book.py`.

Both get the same commands; after every command their events and resting orders must agree, and
the engine's book must keep its invariants (never crossed, live quantities positive, levels in
price order and FIFO by priority, every order's quantity accounted for, no self-trade unless the
taker's self-trade prevention mode is `none`).

Every test runs on both cores (tests/engine_cores.py); the compiled core must moreover give the
Python engine's events, books and state hash after every command.
"""

from __future__ import annotations

import json
import random

import msgspec
import pytest
from engine_cores import CORES, assert_same_events, engine_of, state_of
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from reference_book import STP_MODES, TIFS, ReferenceExchange, to_fraction

from marketnode.node.core.commands import CancelOrder, NewOrder, ReplaceOrder, decode_json_command
from marketnode.node.core.engine import Engine
from marketnode.node.core.markets import MarketSpec

# Two markets: decimal tick and lot with a maximum size and notional (bounds that fall between
# whole lots and ticks) and the default STP mode; whole-number lots with a minimum of 2 lots and
# `decrement` as the market's default mode.
MARKETS = [
    {
        "symbol": "BTC-USD",
        "base": "BTC",
        "quote": "USD",
        "tick_size": "0.5",
        "lot_size": "0.01",
        "max_qty": "0.065",
        "max_notional": "5.999",
        "stp": "cancel_newest",
    },
    {
        "symbol": "ETH-USD",
        "base": "ETH",
        "quote": "USD",
        "tick_size": "0.01",
        "lot_size": "1",
        "min_qty": "1.5",
        "stp": "decrement",
    },
]
SYMBOLS = [spec["symbol"] for spec in MARKETS]
DEFAULT_STP = {spec["symbol"]: spec["stp"] for spec in MARKETS}
LOT = {spec["symbol"]: to_fraction(spec["lot_size"]) for spec in MARKETS}

# A few prices around a mid so that orders cross, queue at the same level and meet their own.
PRICES = {
    "BTC-USD": ["99", "99.5", "100", "100.5", "101"],
    "ETH-USD": ["9.98", "9.99", "10", "10.01", "10.02"],
}
QTYS = {
    "BTC-USD": ["0.01", "0.02", "0.03", "0.04", "0.05", "0.06"],
    "ETH-USD": ["1", "2", "3", "4", "5"],
}
# Values that some check refuses: off tick / off lot, not positive, not a number, too large.
BAD_PRICES = {"BTC-USD": ["100.25", "0", "x"], "ETH-USD": ["10.005", "-10", ""]}
BAD_QTYS = {"BTC-USD": ["0.015", "0", "0.07"], "ETH-USD": ["1.5", "-1", "1e1"]}

OWNERS = ["a", "b", "c"]
IDS = [1, 2, 3, 4, 5, 6]
STP_CHOICES = [None, *STP_MODES]
COMMAND_TYPES = {"new": NewOrder, "cancel": CancelOrder, "replace": ReplaceOrder}


def make_engine(core: str) -> Engine:
    return engine_of(core, [MarketSpec(**spec) for spec in MARKETS])


def engine_command(command: dict):
    fields = {key: value for key, value in command.items() if key != "op"}
    return COMMAND_TYPES[command["op"]](**fields)


def event_dict(event) -> dict:
    data = msgspec.to_builtins(event)
    data.pop("detail", None)
    return data


def engine_resting(engine: Engine) -> list[dict]:
    """The engine's live orders, walked from its books in priority order."""
    result = []
    for symbol, book in engine.books.items():
        for side in (book.bids, book.asks):
            for level in side.levels_best_first():
                for order in level.orders:
                    if order.remaining:
                        result.append(
                            {
                                "market": symbol,
                                "id": order.id,
                                "owner": order.owner,
                                "side": "buy" if order.is_buy else "sell",
                                "price": order.price,
                                "qty": order.remaining,
                                "stp": STP_MODES[order.stp],
                            }
                        )
    return result


def check_book_structure(engine: Engine) -> None:
    """Levels, index and `resting_orders()` agree; price-time priority; never crossed."""
    walked = []
    for book in engine.books.values():
        live_index = set()
        for side in (book.bids, book.asks):
            keys = side.keys
            assert keys == sorted(keys) and len(set(keys)) == len(keys), "level keys unsorted"
            assert sorted(side.levels) == sorted(key * side.sign for key in keys)
            previous_price = None
            for level in side.levels_best_first():
                if previous_price is not None:
                    if side.is_bid:
                        assert level.price < previous_price, "bid levels out of order"
                    else:
                        assert level.price > previous_price, "ask levels out of order"
                previous_price = level.price
                live = [order for order in level.orders if order.remaining]
                assert all(order.remaining >= 0 for order in level.orders), "negative remaining"
                assert live, f"empty level {level.price} left on the book"
                assert level.count == len(live)
                assert level.qty == sum(order.remaining for order in live)
                priorities = [order.priority for order in live]
                assert priorities == sorted(priorities) and len(set(priorities)) == len(live), (
                    "orders within a level are not FIFO by priority"
                )
                for order in live:
                    assert order.market == book.symbol
                    assert order.price == level.price
                    assert order.is_buy == side.is_bid
                    assert order.remaining > 0
                    live_index.add(id(order))
                walked.extend(live)
        assert live_index == {id(order) for order in book.orders.values()}, "index out of step"
        for (owner, order_id), order in book.orders.items():
            assert (order.owner, order.id) == (owner, order_id)
        best_bid, best_ask = book.bids.best_price(), book.asks.best_price()
        if best_bid is not None and best_ask is not None:
            assert best_bid < best_ask, f"crossed book: bid {best_bid} >= ask {best_ask}"
    listed = list(engine.resting_orders())
    assert [id(order) for order in listed] == [id(order) for order in walked]


def lots_of(command: dict) -> int:
    return int(to_fraction(command["qty"]) / LOT[command["market"]])


class Harness:
    """Feeds commands to the engine and the reference and checks every answer; an engine of
    the compiled core is also checked against a Python engine fed the same commands."""

    def __init__(self, core: str, via_json: bool = False) -> None:
        self.engine = make_engine(core)
        self.python_twin = make_engine("python") if core != "python" else None
        self.reference = ReferenceExchange(MARKETS)
        self.via_json = via_json
        self.accounts: dict[tuple, list[int]] = {}
        """Live orders' [original, filled, cancelled] in lots, from the engine's events."""
        self.engine_events: list[dict] = []
        self.reference_events: list[dict] = []

    def run(self, command: dict) -> list[dict]:
        engine = self.engine
        pre_prices = {
            (symbol, order.owner, order.id): order.price
            for symbol, book in engine.books.items()
            for order in book.orders.values()
        }
        taker_mode = self.taker_mode(command)
        first_seq = engine.seq + 1
        if self.via_json:
            decoded = decode_json_command(json.dumps(command))
        else:
            decoded = engine_command(command)
        events = engine.process_all([decoded])
        if self.python_twin is not None:
            assert_same_events(events, self.python_twin.process_all([decoded]))
            assert state_of(engine) == state_of(self.python_twin), f"cores differ: {command!r}"
        got = [event_dict(event) for event in events]
        want = self.reference.process(command)
        assert got == want, f"events differ for {command!r}"
        self.engine_events.extend(got)
        self.reference_events.extend(want)

        # One answer first, then a gapless sequence.
        assert got[0]["event"] in ("accepted", "rejected")
        assert all(event["event"] not in ("accepted", "rejected") for event in got[1:])
        assert [event["seq"] for event in got] == list(range(first_seq, first_seq + len(got)))
        if got[0]["event"] == "rejected":
            assert len(got) == 1

        self.check_trades(got, pre_prices, taker_mode)
        self.account(command, got)
        assert engine_resting(engine) == self.reference.resting(), f"books differ after {command!r}"
        return got

    def taker_mode(self, command: dict) -> str | None:
        if command["op"] == "new":
            stp = command.get("stp")
            return stp if stp is not None else DEFAULT_STP.get(command.get("market"))
        if command["op"] == "replace":
            book = self.engine.books.get(command.get("market"))
            order = book.orders.get((command["owner"], command["id"])) if book else None
            return STP_MODES[order.stp] if order else None
        return None

    @staticmethod
    def check_trades(events: list[dict], pre_prices: dict, taker_mode: str | None) -> None:
        """Trades happen at the maker's resting price, and between two orders of one owner only
        when the taker's self-trade prevention mode is `none`."""
        for event in events:
            if event["event"] != "trade":
                continue
            assert event["qty"] > 0
            maker = (event["market"], event["maker_owner"], event["maker_id"])
            assert event["price"] == pre_prices[maker], "trade not at the maker's price"
            if event["maker_owner"] == event["taker_owner"]:
                assert taker_mode == "none", f"self-trade with taker STP mode {taker_mode}"

    def account(self, command: dict, events: list[dict]) -> None:
        """filled + resting + cancelled = original for every order the events touched."""
        accounts = self.accounts
        if command["op"] == "new" and events[0]["event"] == "accepted":
            accounts[command["market"], command["owner"], command["id"]] = [
                lots_of(command),
                0,
                0,
            ]
        for event in events:
            kind = event["event"]
            if kind == "trade":
                for role in ("maker", "taker"):
                    key = (event["market"], event[f"{role}_owner"], event[f"{role}_id"])
                    account = accounts[key]
                    account[1] += event["qty"]
                    left = account[0] - account[1] - account[2]
                    assert event[f"{role}_remaining"] == left, f"{role} remaining off: {event}"
            elif kind == "cancelled":
                account = accounts[event["market"], event["owner"], event["id"]]
                account[2] += event["qty"]
                assert event["qty"] > 0
                assert event["remaining"] == account[0] - account[1] - account[2]
            elif kind == "replaced":
                accounts[event["market"], event["owner"], event["id"]] = [event["qty"], 0, 0]
            elif kind == "rested":
                account = accounts[event["market"], event["owner"], event["id"]]
                assert event["qty"] == account[0] - account[1] - account[2]
        resting = {
            (symbol, order.owner, order.id): order.remaining
            for symbol, book in self.engine.books.items()
            for order in book.orders.values()
        }
        for key in list(accounts):
            original, filled, cancelled = accounts[key]
            assert filled + cancelled + resting.get(key, 0) == original, f"{key} unaccounted"
            if key not in resting:
                del accounts[key]
        assert set(resting) <= set(accounts)


# -- command generation for the seeded tests ---------------------------------------------------


class CommandMaker:
    """Random commands biased towards live orders, a crowded mid and every tif and STP mode.

    `passive` is the share of new orders that are GTC limits at or behind the mid (they build
    queues); `ids` is how many client ids each owner cycles through.
    """

    def __init__(
        self,
        seed: int,
        reference: ReferenceExchange,
        *,
        new_share: float = 0.6,
        cancel_share: float = 0.15,
        passive: float = 0.0,
        ids: int = len(IDS),
    ) -> None:
        self.rng = random.Random(seed)
        self.reference = reference
        self.new_share = new_share
        self.cancel_share = cancel_share
        self.passive = passive
        self.ids = list(range(1, ids + 1))

    def target(self) -> tuple[str, str, int]:
        live = self.reference.resting()
        if live and self.rng.random() < 0.8:
            order = self.rng.choice(live)
            return order["market"], order["owner"], order["id"]
        rng = self.rng
        return rng.choice(SYMBOLS), rng.choice(OWNERS), rng.choice(self.ids)

    def price(self, symbol: str) -> str:
        choices = BAD_PRICES if self.rng.random() < 0.03 else PRICES
        return self.rng.choice(choices[symbol])

    def qty(self, symbol: str) -> str:
        choices = BAD_QTYS if self.rng.random() < 0.03 else QTYS
        return self.rng.choice(choices[symbol])

    def new(self) -> dict:
        rng = self.rng
        symbol = rng.choice(SYMBOLS)
        side = rng.choice(["buy", "sell"])
        command = {
            "op": "new",
            "id": rng.choice(self.ids),
            "owner": rng.choice(OWNERS),
            "market": symbol,
            "side": side,
            "qty": self.qty(symbol),
        }
        if rng.random() < self.passive:
            prices = PRICES[symbol]
            mid = len(prices) // 2
            step = rng.choice([0, 1, 1, 2])
            command["price"] = prices[mid - step] if side == "buy" else prices[mid + step]
        else:
            order_type = "market" if rng.random() < 0.1 else "limit"
            command["type"] = order_type
            command["tif"] = rng.choice(["GTC", "GTC", "GTC", "IOC", "FOK", "POST_ONLY"])
            if order_type == "limit" or rng.random() < 0.3:
                command["price"] = self.price(symbol)
        stp = rng.choice(STP_CHOICES)
        if stp is not None:
            command["stp"] = stp
        return command

    def next(self) -> dict:
        rng = self.rng
        roll = rng.random()
        if roll < self.new_share:
            return self.new()
        symbol, owner, order_id = self.target()
        if roll < self.new_share + self.cancel_share:
            return {"op": "cancel", "id": order_id, "owner": owner, "market": symbol}
        command = {"op": "replace", "id": order_id, "owner": owner, "market": symbol}
        if rng.random() < 0.7:
            command["price"] = self.price(symbol)
        if rng.random() < 0.7:
            command["qty"] = self.qty(symbol)
        return command


def seeded_commands(seed: int, count: int) -> list[dict]:
    reference = ReferenceExchange(MARKETS)
    maker = CommandMaker(seed, reference)
    commands = []
    for _ in range(count):
        command = maker.next()
        reference.process(command)
        commands.append(command)
    return commands


# -- tests -------------------------------------------------------------------------------------


PROFILES = {
    # Crossing flow: every tif, market orders, frequent self-trade prevention.
    "crossing": {},
    # Queues: mostly passive orders, many cancels and replaces, deeper books.
    "queueing": {"new_share": 0.55, "cancel_share": 0.3, "passive": 0.85, "ids": 12},
}


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_seeded_random_stream_matches_reference(profile, core):
    harness = Harness(core, via_json=True)
    maker = CommandMaker(20_250_101, harness.reference, **PROFILES[profile])
    seen: dict[str, int] = {}
    for _ in range(3000):
        for event in harness.run(maker.next()):
            key = event["event"]
            if key in ("cancelled", "rejected"):
                key += "_" + event["reason"]
            seen[key] = seen.get(key, 0) + 1
        check_book_structure(harness.engine)
    assert harness.engine_events == harness.reference_events
    assert engine_resting(harness.engine) == harness.reference.resting()
    # The stream must actually have exercised the paths it is meant to check.
    for kind in (
        "trade",
        "rested",
        "replaced",
        "cancelled_user",
        "cancelled_ioc",
        "cancelled_stp",
        "rejected_would_cross",
        "rejected_fok_unfillable",
        "rejected_duplicate_id",
        "rejected_unknown_order",
    ):
        assert seen.get(kind, 0) >= 5, (kind, seen)


@pytest.mark.parametrize("core", CORES)
def test_the_node_s_own_size_bound_holds_where_a_market_sets_none(core):
    """ETH-USD sets no max_qty or max_notional: orders up to 2**63 - 1 lots, and ticks x lots,
    trade and rest as the reference says; larger ones are refused as it says."""
    harness = Harness(core)
    quantities = ["1", str(2**62), str(2**63 - 1), str(2**63), str(2**64 + 1), "9" * 39]
    prices = ["0.01", "10", str(2**50), f"{2**61}.07", str(2**63), "9" * 39]
    number = 0
    for qty in quantities:
        for price in prices:
            number += 1
            harness.run({"op": "new", "market": "ETH-USD", "side": "sell", "id": number,
                         "owner": "a", "price": price, "qty": qty})  # fmt: skip
            harness.run({"op": "replace", "market": "ETH-USD", "id": number, "owner": "a",
                         "price": prices[number % len(prices)]})  # fmt: skip
        harness.run({"op": "new", "market": "ETH-USD", "side": "buy", "type": "market",
                     "id": number, "owner": "b", "qty": qty})  # fmt: skip
        check_book_structure(harness.engine)
    reasons = {event.get("reason") for event in harness.engine_events}
    assert {"qty_above_max", "notional_above_max"} <= reasons
    assert any(event["event"] == "trade" for event in harness.engine_events)
    assert engine_resting(harness.engine) == harness.reference.resting()


@pytest.mark.parametrize("core", CORES)
def test_cancel_churn_behind_a_resting_order_keeps_priority(core):
    """Many orders rest and leave behind one that stays at the front of the same price; the
    survivors keep their time order and trade in it."""
    harness = Harness(core)
    new = {"op": "new", "market": "BTC-USD", "side": "sell", "price": "100", "qty": "0.01"}
    harness.run({**new, "id": 1, "owner": "a"})
    for round_ in range(60):
        owner = OWNERS[round_ % 3]
        harness.run({**new, "id": 100 + round_, "owner": owner})
        if round_ % 5 == 4:
            continue  # this one stays
        if round_ % 2:
            harness.run({"op": "cancel", "market": "BTC-USD", "id": 100 + round_, "owner": owner})
        else:
            replace = {"op": "replace", "market": "BTC-USD", "id": 100 + round_, "owner": owner}
            harness.run({**replace, "price": "100.5"})
        check_book_structure(harness.engine)
    stayed = [("a", 1)] + [(OWNERS[r % 3], 100 + r) for r in range(60) if r % 5 == 4]
    moved = [(OWNERS[r % 3], 100 + r) for r in range(60) if r % 5 != 4 and r % 2 == 0]
    taker = {"op": "new", "market": "BTC-USD", "side": "buy", "qty": "0.05", "tif": "IOC"}
    makers = []
    for number, price in enumerate(["100"] * 3 + ["101"] * 5):
        events = harness.run({**taker, "id": number, "owner": "z", "price": price})
        makers += [(e["maker_owner"], e["maker_id"]) for e in events if e["event"] == "trade"]
        check_book_structure(harness.engine)
    assert makers == stayed + moved
    assert engine_resting(harness.engine) == harness.reference.resting() == []


def priorities(engine: Engine) -> list[tuple]:
    return [
        (symbol, order.owner, order.id, order.priority)
        for symbol, book in engine.books.items()
        for order in book.orders.values()
    ]


@pytest.mark.parametrize("core", CORES)
def test_same_commands_give_same_events_and_books(core):
    commands = [engine_command(command) for command in seeded_commands(7, 3000)]
    first, second = make_engine(core), make_engine(core)
    first_events = first.process_all(commands)
    second_events: list = []
    for command in commands:
        second.process(command, second_events)
    assert msgspec.json.encode(first_events) == msgspec.json.encode(second_events)
    assert first.seq == second.seq == len(first_events)
    assert engine_resting(first) == engine_resting(second)
    assert priorities(first) == priorities(second)
    assert sum(type(event).__name__ == "Trade" for event in first_events) > 100


# -- the state machine -------------------------------------------------------------------------


class EngineAgainstReference(RuleBasedStateMachine):
    """New orders (any kind, or passive ones that build queues), cancels and replaces of live
    orders, and now and then a cancel or replace of an order that is not there."""

    core = "python"

    def __init__(self) -> None:
        super().__init__()
        self.harness = Harness(self.core)

    def live(self) -> list[dict]:
        return self.harness.reference.resting()

    @staticmethod
    def _price(data, symbol: str) -> str:
        return data.draw(st.sampled_from(PRICES[symbol] * 6 + BAD_PRICES[symbol]), label="price")

    @staticmethod
    def _qty(data, symbol: str) -> str:
        return data.draw(st.sampled_from(QTYS[symbol] * 6 + BAD_QTYS[symbol]), label="qty")

    @rule(
        data=st.data(),
        symbol=st.sampled_from(SYMBOLS),
        owner=st.sampled_from(OWNERS),
        order_id=st.sampled_from(IDS),
        side=st.sampled_from(["buy", "sell"]),
        order_type=st.sampled_from(["limit", "limit", "limit", "market"]),
        tif=st.sampled_from(TIFS),
        stp=st.sampled_from(STP_CHOICES),
    )
    def new(self, data, symbol, owner, order_id, side, order_type, tif, stp):
        command = {
            "op": "new",
            "id": order_id,
            "owner": owner,
            "market": symbol,
            "side": side,
            "type": order_type,
            "qty": self._qty(data, symbol),
            "tif": tif,
            "stp": stp,
        }
        if order_type == "limit" or data.draw(st.booleans(), label="price on market order"):
            command["price"] = self._price(data, symbol)
        self.harness.run(command)

    @rule(
        symbol=st.sampled_from(SYMBOLS),
        owner=st.sampled_from(OWNERS),
        order_id=st.sampled_from(IDS),
        side=st.sampled_from(["buy", "sell"]),
        step=st.integers(0, 2),
        lots=st.integers(0, 4),
        stp=st.sampled_from(STP_CHOICES),
    )
    def new_passive(self, symbol, owner, order_id, side, step, lots, stp):
        """A GTC limit at or behind the mid: builds queues (the mid itself may still cross)."""
        prices = PRICES[symbol]
        mid = len(prices) // 2
        price = prices[mid - step] if side == "buy" else prices[mid + step]
        command = {
            "op": "new",
            "id": order_id,
            "owner": owner,
            "market": symbol,
            "side": side,
            "price": price,
            "qty": QTYS[symbol][lots],
            "stp": stp,
        }
        self.harness.run(command)

    def _target(self, data) -> tuple[str, str, int]:
        """Mostly a live order; sometimes any (market, owner, id), which is usually unknown."""
        live = self.live()
        if live and data.draw(st.integers(0, 5), label="live target") > 0:
            order = data.draw(st.sampled_from(live), label="target")
            return order["market"], order["owner"], order["id"]
        return (
            data.draw(st.sampled_from(SYMBOLS), label="market"),
            data.draw(st.sampled_from(OWNERS), label="owner"),
            data.draw(st.sampled_from(IDS), label="id"),
        )

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def cancel(self, data):
        symbol, owner, order_id = self._target(data)
        self.harness.run({"op": "cancel", "id": order_id, "owner": owner, "market": symbol})

    @precondition(lambda self: self.live())
    @rule(data=st.data(), fields=st.sampled_from(["price", "qty", "both", "neither"]))
    def replace(self, data, fields):
        symbol, owner, order_id = self._target(data)
        command = {"op": "replace", "id": order_id, "owner": owner, "market": symbol}
        if fields in ("price", "both"):
            command["price"] = self._price(data, symbol)
        if fields in ("qty", "both"):
            command["qty"] = self._qty(data, symbol)
        self.harness.run(command)

    @invariant()
    def book_is_sound(self):
        check_book_structure(self.harness.engine)


EngineAgainstReference.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineAgainstReference = EngineAgainstReference.TestCase
TestEngineAgainstReference.pytestmark = [pytest.mark.slow]


class CompiledEngineAgainstReference(EngineAgainstReference):
    """The same machine on the compiled core, checked after every command against the reference
    exchange and against a Python engine (events, books, state hash)."""

    core = "compiled"


CompiledEngineAgainstReference.TestCase.settings = EngineAgainstReference.TestCase.settings
TestCompiledEngineAgainstReference = CompiledEngineAgainstReference.TestCase
TestCompiledEngineAgainstReference.pytestmark = [pytest.mark.slow]

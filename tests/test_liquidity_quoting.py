"""Liquidity instances quoting into a real node as its peers: the AMM's ladder and its exact
reserves, the market maker's limits and kill switch, and the fewest commands between what rests
and what is wanted."""

from __future__ import annotations

import math

from marketnode.node.liquidity.config import parse_instances
from marketnode.node.liquidity.plan import plan_changes
from marketnode.node.liquidity.quoter import Quoter
from marketnode.plugins.amm import DEFAULTS as AMM_DEFAULTS
from marketnode.plugins.amm import ladder
from marketnode.plugins.host import LIQUIDITY, plugin_host
from marketnode.plugins.market_maker import DEFAULTS as MAKER_DEFAULTS
from marketnode.plugins.market_maker import quotes as market_maker_quotes
from marketnode.plugins.quoting import BUY, SELL, MarketState, Quote, RestingQuote

MARKET = "PUNK-ETH"  # tick 0.01, lot 1 in the default config


def instance(name: str, strategy: str, owner: str, **table):
    tables = {name: {"strategy": strategy, "market": MARKET, "peer": name, "owner": owner,
                     **table}}  # fmt: skip
    return parse_instances(tables, "test", plugin_host(LIQUIDITY))[0]


def quoter_on(node, name: str, strategy: str, owner: str, **table) -> Quoter:
    node.add_peer(name, (owner,))
    chosen = instance(name, strategy, owner, **table)
    return Quoter(chosen, node.client(name), plugin_host(LIQUIDITY))


def test_an_unchanged_level_is_left_alone_and_a_smaller_one_shrinks_in_place():
    resting = [RestingQuote("a", BUY, 100, 5), RestingQuote("b", BUY, 99, 5),
               RestingQuote("c", SELL, 102, 5), RestingQuote("d", SELL, 103, 5)]  # fmt: skip
    wanted = [Quote(BUY, 100, 5), Quote(BUY, 99, 3), Quote(SELL, 104, 5)]
    changes = plan_changes(wanted, resting)
    assert changes.replaces == [("b", Quote(BUY, 99, 3)), ("d", Quote(SELL, 104, 5))]
    assert changes.cancels == ["c"]
    assert changes.news == []


def test_wanted_quotes_that_cross_are_left_out_on_both_sides():
    wanted = [Quote(BUY, 105, 1), Quote(BUY, 103, 1), Quote(SELL, 104, 1), Quote(SELL, 106, 1)]
    changes = plan_changes(wanted, [])
    assert changes.news == [Quote(BUY, 103, 1), Quote(SELL, 106, 1)]


def uncrossed(book: dict[str, tuple[str, int]]) -> bool:
    bids = [price for side, price in book.values() if side == BUY]
    asks = [price for side, price in book.values() if side == SELL]
    return not bids or not asks or max(bids) < min(asks)


def test_no_command_of_a_plan_crosses_the_instances_own_quotes():
    """The commands applied one by one, as the node applies a submit: after each, every own
    bid is below every own ask (a cross is a self-trade the node's STP would cancel)."""
    import random

    chance = random.Random(7)
    for _ in range(2_000):
        mid = chance.randint(50, 150)
        resting = [RestingQuote(f"b{i}", BUY, mid - 1 - i, 1) for i in range(chance.randint(0, 3))]
        resting += [
            RestingQuote(f"a{i}", SELL, mid + 1 + i, 1) for i in range(chance.randint(0, 3))
        ]
        shifted = mid + chance.randint(-8, 8)
        wanted = [
            Quote(BUY, shifted - chance.randint(0, 4), 1) for _ in range(chance.randint(0, 3))
        ]
        wanted += [
            Quote(SELL, shifted + chance.randint(0, 4), 1) for _ in range(chance.randint(0, 3))
        ]
        changes = plan_changes(wanted, resting)
        book = {order.id: (order.side, order.price) for order in resting}
        for order_id in changes.cancels:
            del book[order_id]
            assert uncrossed(book)
        for order_id, quote in changes.replaces:
            book[order_id] = (quote.side, quote.price)
            assert uncrossed(book), (resting, wanted, changes)
        for number, quote in enumerate(changes.news):
            book[f"new{number}"] = (quote.side, quote.price)
            assert uncrossed(book), (resting, wanted, changes)


def test_the_amm_ladder_is_the_curve_with_uniswap_fee():
    quotes = ladder(1000, 1000 * 10_000, AMM_DEFAULTS)
    asks = [q for q in quotes if q.side == SELL]
    bids = [q for q in quotes if q.side == BUY]
    assert asks and bids
    assert all(q.price > 10_000 for q in asks) and all(q.price < 10_000 for q in bids)
    assert sum(q.qty for q in asks) < 1000  # never more base than the pool holds
    assert sum(q.qty * q.price for q in bids) < 1000 * 10_000
    # above the no-fee curve by the fee: the average price of a band a < b is sqrt(a * b)
    assert asks[1].price >= 10_000 * 1.005**1.5 / 0.997 - 1


def test_the_amm_reserves_move_exactly_as_its_fills(running_node):
    node = running_node
    amm = quoter_on(node, "pool", "amm", "0x5001", base="500", quote="5000")
    amm.refresh()
    first = dict(amm.orders)
    asks = sorted((o for o in first.values() if o.side == SELL), key=lambda o: o.price)
    assert len(asks) >= 3
    taker = node.client("alice")
    best = asks[0]
    reply = taker.submit([{"op": "new", "market": MARKET, "id": "t1", "owner": "0xa11ce",
                           "side": "buy", "price": amm.tick.text_of(best.price),
                           "qty": str(best.qty), "tif": "IOC"}])  # fmt: skip
    traded = [e for e in reply.events if e.__struct_config__.tag == "trade"]
    assert sum(int(e.qty) for e in traded) == best.qty
    assert waited_for_fill(amm)
    assert amm.ledger.base == 500 - best.qty
    assert amm.ledger.quote == 500_000 + best.price * best.qty
    amm.refresh()
    kept = [o for o in asks[2:] if o.id in amm.orders and amm.orders[o.id].price == o.price]
    assert kept, "the levels the fill did not touch keep their orders (and priority)"
    assert amm.self_trades == 0


def test_the_market_maker_stops_on_a_limit_and_cancels_everything(running_node):
    node = running_node
    maker = quoter_on(node, "maker", "market_maker", "0x5002", base="100", quote="100000",
                      start_price="100", order_size=5, max_inventory=6)  # fmt: skip
    maker.refresh()
    bids = [o for o in maker.orders.values() if o.side == BUY]
    assert sum(o.qty for o in bids) <= 6, "resting bids never add up past the inventory limit"
    taker = node.client("bob")
    for step, bid in enumerate(sorted(bids, key=lambda o: -o.price)):
        taker.submit([{"op": "new", "market": MARKET, "id": f"s{step}", "owner": "0xb0b",
                       "side": "sell", "price": maker.tick.text_of(bid.price),
                       "qty": str(bid.qty), "tif": "IOC"}])  # fmt: skip
        assert waited_for_fill(maker)
    assert abs(maker.ledger.position) <= 6
    maker.instance.settings["max_inventory"] = 3  # the operator lowered it: past it now
    decision = maker.refresh()
    assert decision.halt and "max_inventory" in decision.halt
    assert not maker.orders
    assert not maker.client.open_orders("0x5002").orders
    assert maker.refresh().halt == decision.halt and not maker.orders  # it stays stopped


def waited_for_fill(quoter: Quoter) -> bool:
    for _ in range(50):
        quoter.absorb(timeout_ms=100)
        if quoter.fill_pending:
            return True
    return False


def maker_state(**changes) -> MarketState:
    fields = dict(market=MARKET, now=0.0, bids=[(9_900, 50)], asks=[(10_100, 50)], mid=10_000.0,
                  base=1_000, quote=10_000_000, target_base=1_000, open_orders=[],
                  recent_fills=[], volatility=0.0, flow_imbalance=0.0, drift=0.0,
                  pnl_today=0.0, resting_notional=0)  # fmt: skip
    return MarketState(**{**fields, **changes})


def test_the_maker_leans_with_a_trend_and_against_its_inventory():
    settings = dict(MAKER_DEFAULTS)
    flat = market_maker_quotes(maker_state(), settings)
    best = {side: [q.price for q in flat if q.side == side] for side in (BUY, SELL)}
    assert max(best[BUY]) < 10_000 < min(best[SELL])
    rising = market_maker_quotes(maker_state(drift=2e-4), settings)
    assert min(q.price for q in rising if q.side == SELL) > min(best[SELL])
    assert max(q.price for q in rising if q.side == BUY) > max(best[BUY])
    long = market_maker_quotes(maker_state(base=1_100, volatility=1e-3), settings)
    assert max(q.price for q in long if q.side == BUY) < max(best[BUY]), "long: r below the mid"
    near_limit = market_maker_quotes(maker_state(base=1_195), settings)
    assert sum(q.qty for q in near_limit if q.side == BUY) <= 5, "never past max_inventory"


def test_the_makers_lean_stops_short_of_the_others_quotes():
    """A steep trend leans the maker's quotes as far as a tick inside the others' book (a bid
    leaned onto their ask would take it); with no one else quoting, `max_lean` half spreads."""
    settings = dict(MAKER_DEFAULTS)
    steep = market_maker_quotes(maker_state(drift=5e-3), settings)
    assert max(q.price for q in steep if q.side == BUY) == 10_099, "a tick under their ask"
    falling = market_maker_quotes(maker_state(drift=-5e-3), settings)
    assert min(q.price for q in falling if q.side == SELL) == 9_901, "a tick over their bid"
    alone = market_maker_quotes(maker_state(drift=5e-3, bids=[], asks=[]), settings)
    half = settings["spread_bps"] * 1e-4
    lean = 10_000 * math.exp(settings["max_lean"] * half)
    assert max(q.price for q in alone if q.side == BUY) == math.floor(lean * (1 - half))


def test_the_makers_lean_has_a_bound_at_the_books_edges():
    """A best ask of one tick (nothing under it to lean to) and a half spread of 100% leave the
    lean to `max_lean` instead of a logarithm of nothing."""
    settings = dict(MAKER_DEFAULTS)
    edge = market_maker_quotes(
        maker_state(drift=5e-3, bids=[(1, 5)], asks=[(1, 5)], mid=1.0), settings
    )
    assert all(quote.price >= 1 for quote in edge)
    wide = market_maker_quotes(maker_state(drift=5e-3), {**settings, "spread_bps": 10_000})
    assert all(quote.price >= 1 for quote in wide)

"""A labelled market for evaluating the integrity detectors and the anomaly leads.

Two markets of one asset (EVAL in ETH and in USDC). Honest traders rest limits away from the mid
and take liquidity with market orders; makers quote both sides near the mid, now and then
hitting another's quote. Every command has a time (`times`, ns): about six seconds a step,
faster in a drop, so 20,000 steps span a day and a half, and legs hours apart are.

Benign but unusual wallets, labelled honest (`benign`, by kind), counts, sizes and timing drawn
from the seed: one-way suppliers (one size to one client again and again, never bought back),
OTC desks with clients who each only sell or only buy blocks, arbitrage bots on both markets,
collectors buying from whoever sells, drops (a block listed, a crowd buys it within minutes),
odd bots.

Wash groups (`wash_groups`: pattern, then a number): self-trades, ping-pong pairs, rings of 3
to 5, churners, `split` (a total passed one way in random pieces, back in other pieces), `slow`
(legs 20 minutes to 2.5 hours apart), `big_ring` (5 to 8 wallets, random sizes each round,
honest trades of the members in between), `market_order` (the buying leg a market order
crossing the spread to the partner's ask, sometimes taking a little of the outside ask too) and
`funder` (a wallet hands lots to 3 to 6 wallets by trades at inside prices, a transfer modelled
as a trade; they pass them among themselves and sell them back: linked only through it). A
leg is made as a wash trader would: the generator follows the book (the real engine, fed every
command as it is made), rests a sell at a random price strictly inside the spread, where nobody
else's order is in the way, and the partner's buy takes it at once. With no room inside the
spread, an immediate leg is skipped and a scheduled one waits.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import msgspec

from ..core.commands import PeerCommand
from ..core.decimals import Unit
from ..core.engine import Engine
from ..core.markets import MarketSpec

HONEST_TRADERS = 240
"""Beside about 150 wash wallets, wash is a minority (about a third of the wallets), as in a real
market and as anomaly detection presumes: a majority would be the norm."""
MARKET = MarketSpec("EVAL-ETH", "EVAL", "ETH", "0.01", "1", "1", "1000", "1000000", "none")
SECOND_MARKET = MarketSpec("EVAL-USDC", "EVAL", "USDC", "0.01", "1", "1", "1000", "1000000", "none")
MARKETS = (MARKET, SECOND_MARKET)
START_NS = 1_790_000_000 * 10**9  # 2026-09-21
STEP_S = 6.0  # mean seconds between steps (exponential gaps)
Range = tuple[int, int]  # inclusive bounds of a draw (random.randint)
WASH_PATTERNS = ("self", "pingpong", "ring", "churn", "split", "slow", "big_ring", "market_order",
                 "funder")  # fmt: skip
BENIGN_KINDS = ("supplier", "otc", "arbitrage", "collector", "drop", "bot")


@dataclass
class LabelledMarket:
    commands: list[dict] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    """Each command's time (ns since the epoch), for a replay that stamps commits with them."""
    wash_groups: dict[str, set[str]] = field(default_factory=dict)
    """Group name (its pattern, then a number) -> its wallets: a trade between two wallets of
    one group is wash."""
    makers: set[str] = field(default_factory=set)
    honest: set[str] = field(default_factory=set)
    benign: dict[str, set[str]] = field(default_factory=dict)
    """Kind (BENIGN_KINDS) -> honest wallets whose trading is unusual but not wash."""

    @property
    def bots(self) -> set[str]:  # odd bots: unusual, not wash
        return self.benign.get("bot", set())


def pattern_of(group: str) -> str:
    """The wash pattern of a group's name ("big_ring12" -> "big_ring")."""
    return group.rstrip("0123456789")


class _Flow:
    """The order flow being made, with the engine that follows its book."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tick = Unit(MARKET.tick_size)
        self.market = LabelledMarket()
        self.engine = Engine(list(MARKETS))
        self.ids = itertools.count(1)
        self.now = START_NS
        self.mids = {spec.symbol: 10_000 for spec in MARKETS}
        self.pending: list[tuple[int, int, Callable[[], object]]] = []
        self.order = itertools.count()
        self.step = 0
        self.market.honest = {f"0xhonest{n:03d}" for n in range(HONEST_TRADERS)}
        self.honest = sorted(self.market.honest)
        self.makers = {MARKET.symbol: [f"0xmaker{n}" for n in range(5)],
                       SECOND_MARKET.symbol: [f"0xmaker{n}" for n in range(3, 7)]}  # fmt: skip
        self.market.makers = {m for makers in self.makers.values() for m in makers}
        self.quotes: dict[tuple[str, str], list[int]] = {}

    def new(self, symbol: str, owner: str, side: str, price: int | None, qty: int,
            tif: str = "GTC", stp: str = "cancel_newest") -> int:  # fmt: skip
        order_id = next(self.ids)
        command = {"op": "new", "market": symbol, "id": order_id, "owner": owner, "side": side,
                   "qty": str(qty), "tif": tif, "stp": stp}  # fmt: skip
        if price is None:
            command["type"] = "market"
        else:
            command["price"] = self.tick.text_of(price)
        self.emit(command)
        return order_id

    def emit(self, command: dict) -> None:
        self.market.commands.append(command)
        self.market.times.append(self.now)
        self.engine.process(msgspec.convert(command, PeerCommand), [])

    def spread(self, symbol: str) -> tuple[int, int]:
        book = self.engine.books[symbol]
        bid, ask = book.bids.best_price(), book.asks.best_price()
        mid = self.mids[symbol]
        return (bid if bid is not None else mid - 1), (ask if ask is not None else mid + 1)

    def inside(self, seller: str, buyer: str, qty: int, symbol: str = MARKET.symbol) -> bool:
        """A sell rested at a random price strictly inside the spread, taken at once by the
        buyer's immediate-or-cancel buy (False: no room inside the spread, nothing sent)."""
        low, high = self.spread(symbol)
        if high - low < 2:
            return False
        price = self.rng.randint(low + 1, high - 1)
        self.new(symbol, seller, "sell", price, qty, stp="none")
        self.new(symbol, buyer, "buy", price, qty, "IOC", stp="none")
        return True

    def leg(self, seller: str, buyer: str, qty: int, symbol: str = MARKET.symbol) -> None:
        """A leg that waits for room inside the spread, as a wash trader would."""
        if not self.inside(seller, buyer, qty, symbol):
            self.later(self.rng.randint(1, 10), partial(self.leg, seller, buyer, qty, symbol))

    def crossing(self, seller: str, buyer: str, qty: int, symbol: str) -> None:
        """One side rests at the far edge of the spread (an ask just above the best bid, or a
        bid just below the best ask) and the other's market order crosses the whole spread to
        it; now and then the market order is a little bigger and takes the outside quote."""
        low, high = self.spread(symbol)
        if high - low < 2:
            return
        extra = self.rng.randint(1, 3) if self.rng.random() < 0.3 else 0
        if self.rng.random() < 0.5:
            self.new(symbol, seller, "sell", low + 1, qty, stp="none")
            self.new(symbol, buyer, "buy", None, qty + extra, "IOC", stp="none")
        else:
            self.new(symbol, buyer, "buy", high - 1, qty, stp="none")
            self.new(symbol, seller, "sell", None, qty + extra, "IOC", stp="none")

    def later(self, steps: int, action: Callable[[], object]) -> None:
        heapq.heappush(self.pending, (self.step + steps, next(self.order), action))

    def run_due(self) -> None:
        while self.pending and self.pending[0][0] <= self.step:
            heapq.heappop(self.pending)[2]()

    def background(self) -> None:
        """One step of the honest market: a maker requotes, or an honest trader rests a limit
        away from the mid or takes liquidity."""
        rng = self.rng
        self.now += int(rng.expovariate(1 / STEP_S) * 1e9)
        symbol = MARKET.symbol if rng.random() < 0.75 else SECOND_MARKET.symbol
        mid = self.mids[symbol] = max(1000, self.mids[symbol] + rng.choice((-1, 0, 0, 1)))
        roll = rng.random()
        if roll < 0.25:
            maker = rng.choice(self.makers[symbol])
            for order_id in self.quotes.pop((symbol, maker), []):
                self.emit({"op": "cancel", "market": symbol, "id": order_id, "owner": maker})
            if rng.random() < 0.1:  # sheds inventory into the best quote, often another maker's
                low, high = self.spread(symbol)
                side = rng.choice(("buy", "sell"))
                self.new(symbol, maker, side, high if side == "buy" else low, 5, "IOC")
            size = rng.randint(5, 30)
            self.quotes[symbol, maker] = [
                self.new(symbol, maker, "buy", mid - rng.randint(1, 2), size),
                self.new(symbol, maker, "sell", mid + rng.randint(1, 2), size),
            ]
        elif roll < 0.65:
            side = rng.choice(("buy", "sell"))
            offset = rng.randint(3, 12)
            price = mid - offset if side == "buy" else mid + offset
            self.new(symbol, rng.choice(self.honest), side, price, organic_size(rng))
        else:
            self.honest_take(rng.choice(self.honest), symbol)

    def honest_take(self, wallet: str, symbol: str) -> None:
        side = self.rng.choice(("buy", "sell"))
        self.new(symbol, wallet, side, None, organic_size(self.rng), "IOC")

    def at_random_steps(self, steps: int, count: int, action: Callable[[], object]) -> None:
        for _ in range(count):
            self.later(self.rng.randint(1, steps - 1), action)


def generate_labelled_market(seed: int = 1, steps: int = 20_000) -> LabelledMarket:
    flow = _Flow(seed)
    rng = flow.rng
    _plan_benign(flow, steps)
    wash_every = max(10, steps // 48)
    patterns = list(WASH_PATTERNS)
    rng.shuffle(patterns)
    for flow.step in range(steps):
        flow.background()
        flow.run_due()
        if flow.step % wash_every == 0 and flow.step:
            number = flow.step // wash_every
            pattern = patterns[number % len(patterns)]
            symbol = MARKET.symbol if rng.random() < 0.8 else SECOND_MARKET.symbol
            flow.market.wash_groups[f"{pattern}{number}"] = WASH[pattern](flow, number, symbol)
    while flow.pending:  # the slow groups' last legs
        flow.step += 1
        flow.background()
        flow.run_due()
    return flow.market


def _plan_benign(flow: _Flow, steps: int) -> None:
    """Benign-but-unusual wallets, their counts, sizes and timing drawn from the seed."""
    rng, benign = flow.rng, flow.market.benign
    symbols = [spec.symbol for spec in MARKETS]
    benign.update({kind: set() for kind in BENIGN_KINDS})
    for n in range(rng.randint(3, 8)):  # one-way supply: one size, one client, never bought back
        supplier, client, size = f"0xsupplier{n}", f"0xclient{n}", rng.randint(5, 60)
        benign["supplier"] |= {supplier, client}
        deliver = partial(flow.leg, supplier, client, size, rng.choice(symbols))
        flow.at_random_steps(steps, rng.randint(6, 20), deliver)
    for n in range(rng.randint(2, 4)):  # OTC desks: big blocks, either way, few counterparties
        desk = f"0xotc{n}"
        clients = {f"0xotc{n}client{k}": rng.random() < 0.5 for k in range(rng.randint(2, 5))}
        benign["otc"] |= {desk, *clients}
        for _ in range(rng.randint(4, 10)):  # a client sells to the desk, or buys from it
            client, size = rng.choice(sorted(clients)), rng.randint(200, 900)
            pair = (client, desk) if clients[client] else (desk, client)
            flow.at_random_steps(steps, 1, partial(flow.leg, *pair, size))
    for n in range(rng.randint(2, 4)):  # arbitrage: buys where it is cheaper, sells where dearer
        bot = f"0xarb{n}"
        benign["arbitrage"].add(bot)
        flow.at_random_steps(steps, rng.randint(20, 60), partial(_arbitrage, flow, bot))
    for n in range(rng.randint(3, 6)):  # collectors: many small buys from whoever sells
        collector = f"0xcollector{n}"
        benign["collector"].add(collector)
        flow.at_random_steps(steps, rng.randint(20, 60), lambda c=collector: flow.new(
            rng.choice(symbols), c, "buy", None, rng.randint(1, 5), "IOC"))  # fmt: skip
    for n in range(rng.randint(1, 3)):  # drops: a block listed, a crowd buys it in minutes
        flow.at_random_steps(steps, 1, partial(_drop, flow, n))
    for n in range(5):
        bot = f"0xbot{n}"
        benign["bot"].add(bot)
        flow.later(n * steps // 5 + 1, partial(_odd_bot, flow, bot))


def _odd_bot(flow: _Flow, bot: str) -> None:  # far from the market, clockwork sizes
    for _ in range(8):
        flow.new(MARKET.symbol, bot, "buy", None, 777, "IOC")


def _arbitrage(flow: _Flow, bot: str) -> None:
    cheap, dear = sorted((spec.symbol for spec in MARKETS), key=flow.mids.__getitem__)
    qty = flow.rng.randint(5, 40)
    flow.new(cheap, bot, "buy", None, qty, "IOC")
    flow.new(dear, bot, "sell", None, qty, "IOC")


def _drop(flow: _Flow, number: int) -> None:
    rng, symbol = flow.rng, MARKET.symbol
    issuer = f"0xissuer{number}"
    buyers = [f"0xdrop{number}b{k}" for k in range(rng.randint(30, 80))]
    flow.market.benign["drop"] |= {issuer, *buyers}
    listing = flow.new(symbol, issuer, "sell", flow.mids[symbol] + 3, rng.randint(300, 800))
    for _ in range(len(buyers) * 2):
        flow.now += int(rng.expovariate(1 / 0.5) * 1e9)
        flow.new(symbol, rng.choice(buyers), "buy", None, rng.randint(1, 8), "IOC")
    flow.emit({"op": "cancel", "market": symbol, "id": listing, "owner": issuer})


def _self(flow: _Flow, number: int, symbol: str) -> set[str]:
    for _ in range(flow.rng.randint(2, 5)):
        flow.inside(f"0xself{number}", f"0xself{number}", flow.rng.randint(1, 50), symbol)
    return {f"0xself{number}"}


def _back_and_forth(
    names: tuple[str, str], rounds: tuple[int, int], flow: _Flow, number: int, symbol: str
) -> set[str]:
    """Ping-pong pairs and churners: the same size one way, then back."""
    a, b = (f"{name}{number}" for name in names)
    for _ in range(flow.rng.randint(*rounds)):
        qty = flow.rng.randint(1, 50)
        flow.inside(a, b, qty, symbol)
        flow.inside(b, a, qty, symbol)
    return {a, b}


def _ring(flow: _Flow, number: int, symbol: str) -> set[str]:
    members = [f"0xring{number}w{k}" for k in range(flow.rng.randint(3, 5))]
    for _ in range(flow.rng.randint(2, 4)):  # rounds: a ring exists to print volume
        qty = flow.rng.randint(1, 50)
        for k, seller in enumerate(members):
            flow.inside(seller, members[(k + 1) % len(members)], qty, symbol)
    return set(members)


def _split(flow: _Flow, number: int, symbol: str) -> set[str]:
    """A total passed one way in random pieces and back in pieces of other sizes."""
    a, b = f"0xsplitA{number}", f"0xsplitB{number}"
    for _ in range(flow.rng.randint(2, 3)):
        total = flow.rng.randint(40, 200)
        for seller, buyer in ((a, b), (b, a)):
            for piece in _pieces(flow.rng, total):
                flow.inside(seller, buyer, piece, symbol)
    return {a, b}


def _laps(flow: _Flow, members: list[str], sizes: Range, gaps: Range, symbol: str) -> int:
    """2-4 laps of a size in `sizes` round the ring, legs `gaps` steps apart; steps spanned."""
    delay = 0
    for _ in range(flow.rng.randint(2, 4)):
        qty = flow.rng.randint(*sizes)
        for seller, buyer in zip(members, members[1:] + members[:1], strict=True):
            delay += flow.rng.randint(*gaps)
            flow.later(delay, partial(flow.leg, seller, buyer, qty, symbol))
    return delay


def _slow(flow: _Flow, number: int, symbol: str) -> set[str]:
    """A ring of 2 to 4 whose legs are 20 minutes to 2.5 hours apart."""
    members = [f"0xslow{number}w{k}" for k in range(flow.rng.randint(2, 4))]
    _laps(flow, members, (1, 50), (200, 1500), symbol)
    return set(members)


def _big_ring(flow: _Flow, number: int, symbol: str) -> set[str]:
    """5 to 8 wallets, random sizes each round, honest trades of the members in between."""
    members = [f"0xbig{number}w{k}" for k in range(flow.rng.randint(5, 8))]
    delay = _laps(flow, members, (5, 80), (1, 60), symbol)
    for member in members:
        for _ in range(flow.rng.randint(1, 3)):
            flow.later(flow.rng.randint(1, delay + 1), partial(flow.honest_take, member, symbol))
    return set(members)


def _market_order(flow: _Flow, number: int, symbol: str) -> set[str]:
    a, b = f"0xmktA{number}", f"0xmktB{number}"
    for _ in range(flow.rng.randint(3, 5)):
        qty = flow.rng.randint(1, 50)
        flow.crossing(a, b, qty, symbol)
        flow.crossing(b, a, qty, symbol)
    return {a, b}


def _funder(flow: _Flow, number: int, symbol: str) -> set[str]:
    """Lots handed out through trades, passed among the funded wallets, sold back."""
    rng = flow.rng
    funder = f"0xfunder{number}"
    funded = [f"0xfunded{number}w{k}" for k in range(rng.randint(3, 6))]
    holding = {wallet: rng.randint(20, 100) for wallet in funded}
    delay = 0
    for wallet, qty in holding.items():
        delay += rng.randint(1, 30)
        flow.later(delay, partial(flow.leg, funder, wallet, qty, symbol))
    for _ in range(len(funded) * rng.randint(2, 3)):
        seller = rng.choice([wallet for wallet in funded if holding[wallet]])
        buyer = rng.choice([wallet for wallet in funded if wallet != seller])
        qty = rng.randint(1, holding[seller])
        holding[seller] -= qty
        holding[buyer] += qty
        delay += rng.randint(1, 30)
        flow.later(delay, partial(flow.leg, seller, buyer, qty, symbol))
    for wallet, qty in holding.items():
        delay += rng.randint(1, 30)
        if qty:
            flow.later(delay, partial(flow.leg, wallet, funder, qty, symbol))
    return {funder, *funded}


WASH: dict[str, Callable[[_Flow, int, str], set[str]]] = {
    "self": _self, "pingpong": partial(_back_and_forth, ("0xpingA", "0xpingB"), (2, 4)),
    "ring": _ring, "churn": partial(_back_and_forth, ("0xchurn", "0xchurnP"), (6, 6)),
    "split": _split,
    "slow": _slow, "big_ring": _big_ring, "market_order": _market_order, "funder": _funder,
}  # fmt: skip
"""Each wash pattern: it starts a group's legs (now or later) and returns the group."""


def _pieces(rng: random.Random, total: int) -> list[int]:
    """`total` cut into 1 to 4 random pieces."""
    cuts = sorted(rng.sample(range(1, total), min(total - 1, rng.randint(0, 3))))
    return [b - a for a, b in itertools.pairwise([0, *cuts, total])]


def organic_size(rng: random.Random) -> int:
    """Sizes with Benford-like first digits and some clustering at round numbers."""
    if rng.random() < 0.15:
        return rng.choice((10, 20, 50, 100))
    return max(1, int(10 ** rng.uniform(0, 2.3)))

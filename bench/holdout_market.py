"""Hold-out benchmark for the wash-trading detectors, built the way an outside reviewer would.

    python bench/holdout_market.py [--seed S] [--orders N] [--out DIR] [--json]

Why a separate generator: the project's own evaluation scores the detectors on a market made by
the project's own generator, so both share the same idea of what wash trading looks like. This
script was written only from the public documentation (README, docs/engine.md, docs/analytics.md,
config.toml, `mnode --help`); it never imports or reads the detectors, the project's generator or
its evaluation. Everything goes through the `mnode` command line, as an operator would use it:

1. Generate a labelled order flow of our own design (three markets with different tick sizes and
   price levels; honest traders, busy market makers, odd-but-honest bots and injected wash
   groups: self-trades, ping-pong pairs, rings and churners). A book model of our own, written
   from docs/engine.md, tells the generator where the book stands, so wash orders are priced
   where nobody else's order is in the way and the partner's order really meets them.
2. `mnode init` a fresh home, replace its markets, `mnode replay` the flow, `mnode integrity scan
   --json`, and read every trade back with `mnode sql`.
3. Label each trade from what the engine actually did (its buyer and seller in the same wash
   group, or the same wallet on both sides) and score the alerts: trade and wallet precision and
   recall, recall per wash pattern, share of market makers flagged, and what `anomalous_wallets`
   picked.

Only the standard library is used, so the benchmark cannot borrow a helper from the code it
judges.

What it cannot test: a replay file has no timestamps, so every trade carries the commit time of
its replay batch and the whole history falls inside one hour. Detectors with time windows (round
trips, trade cycles per hour and day, churn per day) therefore see one window holding all trades,
which is harsher than a real day of trading for graph-based ones. Integrity thresholds are the
defaults `mnode init` writes; only the markets are replaced.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

# Detectors whose alerts do not name wash trades: excluded from the trade-level score.
NON_TRADE_DETECTORS = frozenset({"anomalous_wallets", "market_statistics"})

PATTERNS = ("self_trade", "ping_pong", "ring", "churn")

Key = tuple[str, str, int | str]  # (market, owner, order id): how the engine identifies an order


# --------------------------------------------------------------------------------------------
# Markets


@dataclass(frozen=True)
class MarketSpec:
    """One market of the benchmark: its config.toml rules plus how its flow is sized.

    The three markets differ on purpose: a fine tick on a low price (many ticks inside a spread),
    a fractional lot on a high price, and a coarse tick where the spread is often one or two
    ticks, which leaves a wash trader little room to trade inside it.
    """

    symbol: str
    base: str
    quote: str
    tick: Decimal
    lot: Decimal
    start_price: Decimal
    size_median_lots: int
    round_lots: tuple[int, ...]
    max_lots: int
    half_spread_bps: float
    stp: str
    weight: float

    @property
    def start_ticks(self) -> int:
        """The opening price in ticks."""
        return int(self.start_price / self.tick)

    def price_text(self, ticks: int) -> str:
        """Ticks as the decimal text the engine reads (never a float)."""
        return _plain(Decimal(ticks) * self.tick)

    def qty_text(self, lots: int) -> str:
        """Lots as decimal text."""
        return _plain(Decimal(lots) * self.lot)

    def toml(self) -> str:
        """The `[[markets]]` table, keys as config.toml documents them, decimals as strings."""
        return (
            "[[markets]]\n"
            f'symbol = "{self.symbol}"\n'
            f'base = "{self.base}"\n'
            f'quote = "{self.quote}"\n'
            f'tick_size = "{_plain(self.tick)}"\n'
            f'lot_size = "{_plain(self.lot)}"\n'
            f'min_qty = "{_plain(self.lot)}"\n'
            f'max_qty = "{self.qty_text(self.max_lots)}"\n'
            f'stp = "{self.stp}"\n'
        )


MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec(
        symbol="APE-ETH",
        base="APE",
        quote="ETH",
        tick=Decimal("0.001"),
        lot=Decimal("1"),
        start_price=Decimal("14.250"),
        size_median_lots=8,
        round_lots=(5, 10, 20, 25, 50, 100),
        max_lots=5000,
        half_spread_bps=9.0,
        stp="cancel_newest",
        weight=0.45,
    ),
    MarketSpec(
        symbol="WINE-USDC",
        base="WINE",
        quote="USDC",
        tick=Decimal("0.05"),
        lot=Decimal("0.01"),
        start_price=Decimal("1850.00"),
        size_median_lots=35,
        round_lots=(10, 25, 50, 100, 200, 500),
        max_lots=20000,
        half_spread_bps=6.0,
        stp="cancel_newest",
        weight=0.30,
    ),
    MarketSpec(
        symbol="SWORD-GEM",
        base="SWORD",
        quote="GEM",
        tick=Decimal("1"),
        lot=Decimal("1"),
        start_price=Decimal("640"),
        size_median_lots=3,
        round_lots=(5, 10, 20, 50),
        max_lots=1000,
        half_spread_bps=30.0,
        stp="cancel_oldest",
        weight=0.25,
    ),
)
SPECS = {m.symbol: m for m in MARKETS}


def _plain(d: Decimal) -> str:
    """A decimal without exponent or needless trailing zeros ("640", "0.4", "14.25")."""
    return format(d.normalize(), "f")


# --------------------------------------------------------------------------------------------
# A book model written from docs/engine.md


@dataclass
class Order:
    """A resting or incoming order in engine units (ticks, lots)."""

    key: Key
    side: str
    price: int
    qty: int
    stp: str | None

    @property
    def owner(self) -> str:
        """The order's wallet."""
        return self.key[1]


@dataclass(frozen=True)
class Trade:
    """A trade the model expects the engine to print."""

    market: str
    price: int
    qty: int
    maker: str
    taker: str
    aggressor: str

    @property
    def buyer(self) -> str:
        """The buying wallet."""
        return self.taker if self.aggressor == "buy" else self.maker

    @property
    def seller(self) -> str:
        """The selling wallet."""
        return self.maker if self.aggressor == "buy" else self.taker


class Book:
    """Price levels per side, each level in time priority (dicts keep insertion order)."""

    def __init__(self) -> None:
        self.prices: dict[str, list[int]] = {"buy": [], "sell": []}
        self.levels: dict[str, dict[int, dict[Key, Order]]] = {"buy": {}, "sell": {}}

    def best(self, side: str) -> int | None:
        """Best price of a side (highest bid, lowest ask), None when empty."""
        prices = self.prices[side]
        if not prices:
            return None
        return prices[-1] if side == "buy" else prices[0]

    def first(self, side: str, price: int) -> Order:
        """The oldest order at a level."""
        return next(iter(self.levels[side][price].values()))

    def level_orders(self, side: str) -> Iterable[Order]:
        """Every order of a side, best price first, oldest first within a price."""
        prices = self.prices[side]
        ordered = reversed(prices) if side == "buy" else prices
        for p in list(ordered):
            yield from list(self.levels[side][p].values())

    def add(self, o: Order) -> None:
        """Rest an order behind everything at its price."""
        level = self.levels[o.side].get(o.price)
        if level is None:
            level = {}
            self.levels[o.side][o.price] = level
            bisect.insort(self.prices[o.side], o.price)
        level[o.key] = o

    def remove(self, o: Order) -> None:
        """Take an order off its level."""
        level = self.levels[o.side][o.price]
        del level[o.key]
        if not level:
            del self.levels[o.side][o.price]
            prices = self.prices[o.side]
            del prices[bisect.bisect_left(prices, o.price)]


class Sim:
    """Writes commands and applies them to a model of the engine at the same time.

    The generator needs to know the book as the engine will see it (to price wash orders inside
    the spread, to have a maker requote its live order) without running the project's engine,
    which is part of what is under test. The model covers what the generator uses: limit and
    market orders, GTC/IOC/FOK/POST_ONLY, STP none/cancel_newest/cancel_oldest, cancel and
    replace. After the replay its trades are compared with the engine's, one by one.
    """

    def __init__(self, specs: Iterable[MarketSpec]) -> None:
        self.specs = {s.symbol: s for s in specs}
        self.books = {s: Book() for s in self.specs}
        self.orders: dict[Key, Order] = {}
        self.commands: list[dict[str, Any]] = []
        self.trades: list[Trade] = []
        self.rejects: Counter[str] = Counter()
        self.position: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._next_id: defaultdict[str, int] = defaultdict(int)
        self.string_ids: set[str] = set()

    # ---- identities

    def new_id(self, owner: str) -> int | str:
        """A fresh client order id; some wallets use strings, as real clients do."""
        self._next_id[owner] += 1
        n = self._next_id[owner]
        return f"c-{n}" if owner in self.string_ids else n

    def live(self, key: Key | None) -> Order | None:
        """The resting order under a key, if it still rests."""
        return self.orders.get(key) if key is not None else None

    def best(self, market: str, side: str) -> int | None:
        """Best price of one side of a market."""
        return self.books[market].best(side)

    # ---- commands

    def new(
        self,
        market: str,
        owner: str,
        side: str,
        qty: int,
        price: int | None = None,
        *,
        tif: str = "GTC",
        stp: str | None = None,
        market_order: bool = False,
        tif_on_market: bool = False,
    ) -> Order | None:
        """Send a `new`; returns the order if (part of) it rests, else None."""
        spec = self.specs[market]
        oid = self.new_id(owner)
        cmd: dict[str, Any] = {
            "op": "new",
            "market": market,
            "id": oid,
            "owner": owner,
            "side": side,
        }
        if market_order:
            cmd["type"] = "market"
        else:
            assert price is not None and price > 0
            cmd["price"] = spec.price_text(price)
        cmd["qty"] = spec.qty_text(qty)
        if tif != "GTC" or tif_on_market:
            cmd["tif"] = tif
        if stp is not None:
            cmd["stp"] = stp
        self.commands.append(cmd)

        key: Key = (market, owner, oid)
        mode = stp or spec.stp
        book = self.books[market]
        opp = "sell" if side == "buy" else "buy"
        limit = None if market_order else price
        if tif == "POST_ONLY" and not market_order:
            best = book.best(opp)
            if best is not None and _crosses(side, price, best):
                self.rejects["would_cross"] += 1
                return None
        if tif == "FOK" and not self._fok_fillable(market, owner, side, qty, limit, mode):
            self.rejects["fok_unfillable"] += 1
            return None
        order = Order(key, side, price or 0, qty, stp)
        stopped = self._match(market, order, limit, mode)
        if order.qty > 0 and not stopped and not market_order and tif in ("GTC", "POST_ONLY"):
            book.add(order)
            self.orders[key] = order
            return order
        return None

    def cancel(self, key: Key) -> bool:
        """Send a `cancel`; an order that no longer rests gets `unknown_order`."""
        market, owner, oid = key
        self.commands.append({"op": "cancel", "market": market, "id": oid, "owner": owner})
        order = self.orders.pop(key, None)
        if order is None:
            self.rejects["unknown_order"] += 1
            return False
        self.books[market].remove(order)
        return True

    def replace(self, key: Key, price: int | None = None, qty: int | None = None) -> Order | None:
        """Send a `replace`: reduce in place, or take off and re-enter as a GTC limit order."""
        market, owner, oid = key
        spec = self.specs[market]
        cmd: dict[str, Any] = {"op": "replace", "market": market, "id": oid, "owner": owner}
        if price is not None:
            cmd["price"] = spec.price_text(price)
        if qty is not None:
            cmd["qty"] = spec.qty_text(qty)
        self.commands.append(cmd)
        order = self.orders.get(key)
        if order is None:
            self.rejects["unknown_order"] += 1
            return None
        new_price = order.price if price is None else price
        new_qty = order.qty if qty is None else qty
        book = self.books[market]
        if new_price == order.price and new_qty <= order.qty:
            order.qty = new_qty
            return order
        book.remove(order)
        del self.orders[key]
        fresh = Order(key, order.side, new_price, new_qty, order.stp)
        stopped = self._match(market, fresh, new_price, order.stp or spec.stp)
        if fresh.qty > 0 and not stopped:
            book.add(fresh)
            self.orders[key] = fresh
            return fresh
        return None

    # ---- matching

    def _match(self, market: str, taker: Order, limit: int | None, mode: str) -> bool:
        """Cross an incoming order; True when STP stopped it (its remainder is cancelled)."""
        book = self.books[market]
        opp = "sell" if taker.side == "buy" else "buy"
        while taker.qty > 0:
            best = book.best(opp)
            if best is None or (limit is not None and not _crosses(taker.side, limit, best)):
                return False
            maker = book.first(opp, best)
            if maker.owner == taker.owner and mode != "none":
                if mode == "cancel_newest":
                    return True
                if mode == "cancel_oldest":
                    book.remove(maker)
                    del self.orders[maker.key]
                    continue
                raise ValueError(f"the generator does not use stp mode {mode}")
            q = min(maker.qty, taker.qty)
            trade = Trade(market, maker.price, q, maker.owner, taker.owner, taker.side)
            self.trades.append(trade)
            self.position[(trade.buyer, market)] += q
            self.position[(trade.seller, market)] -= q
            maker.qty -= q
            taker.qty -= q
            if maker.qty == 0:
                book.remove(maker)
                del self.orders[maker.key]
        return False

    def _fok_fillable(
        self, market: str, owner: str, side: str, qty: int, limit: int | None, mode: str
    ) -> bool:
        """Whether one matching pass would fill a FOK in full (docs/engine.md, STP rules)."""
        opp = "sell" if side == "buy" else "buy"
        got = 0
        for o in self.books[market].level_orders(opp):
            if limit is not None and not _crosses(side, limit, o.price):
                break
            if o.owner == owner and mode != "none":
                if mode == "cancel_oldest":
                    continue
                return False
            got += o.qty
            if got >= qty:
                return True
        return False


def _crosses(side: str, price: int, opposite: int) -> bool:
    """Whether an order at `price` on `side` meets an opposite order at `opposite`."""
    return price >= opposite if side == "buy" else price <= opposite


# --------------------------------------------------------------------------------------------
# Actors


@dataclass
class Honest:
    """A retail or semi-pro trader: own markets, style, sizes and patience."""

    owner: str
    weight: float
    markets: tuple[str, ...]
    market_weights: tuple[float, ...]
    p_take: float
    p_cancel: float
    buy_bias: float
    size_mult: float
    round_pref: float
    patience: float
    max_open: int
    open: list[Key] = field(default_factory=list)
    dead: list[Key] = field(default_factory=list)


@dataclass
class Maker:
    """A market maker: two-sided quotes near the mid in several markets, inventory skew."""

    owner: str
    markets: tuple[str, ...]
    spread_mult: float
    size_mult: float
    quotes: dict[tuple[str, str], Key] = field(default_factory=dict)


@dataclass
class Bot:
    """An odd but honest program: its flow is unusual, none of its trades is wash."""

    owner: str
    kind: str
    rate: float
    state: dict[str, Any] = field(default_factory=dict)
    open: list[Key] = field(default_factory=list)


@dataclass
class WashGroup:
    """Wallets that trade among themselves to fake volume, and the pattern they follow."""

    gid: int
    pattern: str
    wallets: tuple[str, ...]
    markets: tuple[str, ...]
    planned_legs: int = 0
    done_legs: int = 0
    dropped_legs: int = 0
    sniped_legs: int = 0


class Generator:
    """Builds the labelled order flow: background market plus an agenda of wash legs."""

    def __init__(self, seed: int, n_orders: int) -> None:
        self.rng = random.Random(seed)
        self.n = n_orders
        self.scale = max(0.25, n_orders / 60_000)
        self.sim = Sim(MARKETS)
        self.fair = {m.symbol: float(m.start_ticks) for m in MARKETS}
        total_steps = max(1.0, n_orders / 1.3)
        self.sigma = 0.10 / math.sqrt(total_steps)
        self.drift = {m.symbol: self.rng.gauss(0, 0.05) / total_steps for m in MARKETS}
        self.used: set[str] = set()
        self.honest: list[Honest] = []
        self.makers: list[Maker] = []
        self.bots: list[Bot] = []
        self.groups: list[WashGroup] = []
        self.camouflage: list[Honest] = []
        self.agenda: list[tuple[int, int, Callable[[], None]]] = []
        self._tie = 0
        self.maker_owners: set[str] = set()

    # ---- helpers

    def wallet(self) -> str:
        """A fresh wallet address; every role draws from the same pool of look-alike names."""
        while True:
            w = f"0x{self.rng.getrandbits(160):040x}"
            if w not in self.used:
                self.used.add(w)
                return w

    def now(self) -> int:
        """Commands written so far: the generator's only clock (the replay has no timestamps)."""
        return len(self.sim.commands)

    def schedule(self, delay: int, fn: Callable[[], None]) -> None:
        """Run `fn` once `delay` more commands have been written."""
        self._tie += 1
        heapq.heappush(self.agenda, (self.now() + max(0, delay), self._tie, fn))

    def half_spread(self, market: str) -> int:
        """A maker's typical half spread in ticks at the current price."""
        return max(1, round(self.fair[market] * SPECS[market].half_spread_bps / 1e4))

    def size(self, market: str, mult: float = 1.0, round_pref: float = 0.2) -> int:
        """A trade size in lots: log-normal, snapped to a round size now and then."""
        spec = SPECS[market]
        lots = spec.size_median_lots * mult * math.exp(self.rng.gauss(0, 0.9))
        q = max(1, round(lots))
        if self.rng.random() < round_pref:
            near = [r for r in spec.round_lots if 0.5 <= r / q <= 2.0]
            if near:
                q = self.rng.choice(near)
        return min(q, spec.max_lots // 4)

    # ---- population

    def populate(self) -> None:
        """Create makers, honest traders, bots and wash groups with seeded traits."""
        rng = self.rng
        symbols = [m.symbol for m in MARKETS]
        weights = [m.weight for m in MARKETS]
        for _ in range(rng.randint(4, 6)):
            k = rng.choice((2, 3, 3))
            mk = Maker(
                self.wallet(),
                tuple(rng.sample(symbols, k)),
                rng.uniform(0.7, 1.6),
                rng.uniform(2.0, 6.0),
            )
            self.makers.append(mk)
            self.maker_owners.add(mk.owner)
        for _ in range(rng.randint(100, 180)):
            self.honest.append(self._honest_profile(self.wallet(), symbols, weights))
        for i, kind in enumerate(("layering", "whale", "dust", "maker_arb", "twap", "fok_poster")):
            bot = Bot(self.wallet(), kind, (1.0, 0.15, 0.8, 0.6, 0.5, 0.7)[i])
            if kind == "fok_poster":
                self.sim.string_ids.add(bot.owner)
            self.bots.append(bot)
        for w in rng.sample([h.owner for h in self.honest], k=len(self.honest) // 6):
            self.sim.string_ids.add(w)
        self._plan_wash(symbols, weights)

    def _honest_profile(self, owner: str, symbols: list[str], weights: list[float]) -> Honest:
        """Traits of one honest trader, heavy-tailed activity (a few very active wallets)."""
        rng = self.rng
        k = rng.choice((1, 1, 2, 2, 3))
        chosen: list[str] = []
        while len(chosen) < k:
            s = rng.choices(symbols, weights)[0]
            if s not in chosen:
                chosen.append(s)
        return Honest(
            owner=owner,
            weight=min(30.0, rng.paretovariate(1.3)),
            markets=tuple(chosen),
            market_weights=tuple(rng.uniform(0.3, 1.0) for _ in chosen),
            p_take=rng.uniform(0.15, 0.7),
            p_cancel=rng.uniform(0.1, 0.35),
            buy_bias=min(0.7, max(0.3, rng.gauss(0.5, 0.06))),
            size_mult=math.exp(rng.gauss(0, 0.6)),
            round_pref=rng.uniform(0.0, 0.6),
            patience=rng.uniform(0.5, 6.0),
            max_open=rng.randint(1, 8),
        )

    # ---- wash plan

    def _plan_wash(self, symbols: list[str], weights: list[float]) -> None:
        """Create the wash groups and put their first legs on the agenda."""
        rng = self.rng

        def market() -> str:
            return rng.choices(symbols, weights)[0]

        def start() -> int:
            return rng.randint(int(0.02 * self.n), int(0.85 * self.n))

        def episodes(lo: int, hi: int) -> int:
            return max(2, round(rng.randint(lo, hi) * self.scale))

        gid = 0
        for _ in range(rng.randint(3, 5)):
            g = WashGroup(gid, "self_trade", (self.wallet(),), (market(),))
            gid += 1
            n_ep = episodes(20, 45)
            g.planned_legs = n_ep
            mult = rng.uniform(0.8, 3.0)
            for _ in range(n_ep):
                self._at(start(), lambda g=g, mult=mult: self._self_trade(g, mult))
            self.groups.append(g)
        for _ in range(rng.randint(5, 8)):
            ms = (market(),) if rng.random() < 0.75 else tuple(rng.sample(symbols, 2))
            g = WashGroup(gid, "ping_pong", (self.wallet(), self.wallet()), ms)
            gid += 1
            rounds = episodes(4, 12)
            g.planned_legs = 2 * rounds
            mult = rng.uniform(0.8, 3.0)
            for _ in range(rounds):
                self._at(start(), lambda g=g, mult=mult: self._ping(g, mult))
            self.groups.append(g)
        for _ in range(rng.randint(3, 5)):
            k = rng.choice((3, 4, 5))
            g = WashGroup(gid, "ring", tuple(self.wallet() for _ in range(k)), (market(),))
            gid += 1
            rounds = episodes(4, 10)
            g.planned_legs = k * rounds
            mult = rng.uniform(0.8, 3.0)
            for _ in range(rounds):
                self._at(start(), lambda g=g, mult=mult: self._ring_leg(g, mult, None, 0, 0))
            self.groups.append(g)
        for _ in range(rng.randint(3, 4)):
            partners = rng.choice((1, 2))
            g = WashGroup(
                gid, "churn", tuple(self.wallet() for _ in range(1 + partners)), (market(),)
            )
            gid += 1
            n_trades = episodes(60, 150)
            g.planned_legs = n_trades
            base = self.size(g.markets[0], rng.uniform(0.8, 2.5), 0.3)
            t0 = start()
            span = rng.uniform(0.05, 0.25) * self.n
            for _ in range(n_trades):
                when = t0 + int(rng.uniform(0, span))
                self._at(when, lambda g=g, base=base: self._churn(g, base))
            self.groups.append(g)
        # A minority of wash wallets also trade honestly now and then, as cover.
        wash_wallets = [w for g in self.groups for w in g.wallets]
        for w in rng.sample(wash_wallets, k=max(1, len(wash_wallets) * 3 // 10)):
            profile = self._honest_profile(w, symbols, weights)
            profile.weight = rng.uniform(0.3, 1.0)
            self.camouflage.append(profile)

    def _at(self, when: int, fn: Callable[[], None]) -> None:
        """Schedule at an absolute command count."""
        self._tie += 1
        heapq.heappush(self.agenda, (when, self._tie, fn))

    def _retry(self, g: WashGroup, fn: Callable[[], None], tries: int) -> None:
        """The spread had no room: try again shortly, give up after many tries."""
        if tries > 300:
            g.dropped_legs += 1
            return
        self.schedule(self.rng.randint(1, 6), fn)

    def _interior(self, market: str) -> int | None:
        """A price strictly inside the spread, so no one else's order is in the way."""
        bid = self.sim.best(market, "buy")
        ask = self.sim.best(market, "sell")
        if bid is None or ask is None or ask - bid < 2:
            return None
        lo, hi = bid + 1, ask - 1
        centre = min(hi, max(lo, self.fair[market]))
        return max(lo, min(hi, round(self.rng.triangular(lo, hi, centre))))

    def _wash_cross(self, g: WashGroup, market: str, seller: str, buyer: str, qty: int) -> bool:
        """One wash trade: one side rests inside the spread, its partner takes it.

        Most takes follow at once; some come a few commands later, when an honest trader may
        have taken part of the resting order first (then only the rest is washed).
        """
        price = self._interior(market)
        if price is None:
            return False
        rng = self.rng
        seller_rests = rng.random() < 0.5
        rester, taker = (seller, buyer) if seller_rests else (buyer, seller)
        rside = "sell" if seller_rests else "buy"
        tside = "buy" if seller_rests else "sell"
        order = self.sim.new(market, rester, rside, qty, price)
        if order is None:  # cannot happen with an interior price; keep the generator honest
            return False
        stp = "none" if seller == buyer else None

        def take() -> None:
            live = self.sim.live(order.key)
            if live is None:
                g.sniped_legs += 1  # an honest taker got there first: no wash trade
                return
            at_top = (
                self.sim.best(market, rside) == live.price
                and self.sim.books[market].first(rside, live.price) is live
            )
            if at_top and rng.random() < 0.25:
                self.sim.new(
                    market,
                    taker,
                    tside,
                    live.qty,
                    stp=stp,
                    tif="IOC",
                    market_order=True,
                    tif_on_market=rng.random() < 0.5,
                )
            else:
                self.sim.new(market, taker, tside, live.qty, live.price, tif="IOC", stp=stp)
            if self.sim.live(order.key) is not None:
                self.schedule(rng.randint(0, 20), lambda: self._cancel_if_live(order.key))
            g.done_legs += 1

        if rng.random() < 0.8:
            take()
        else:
            self.schedule(rng.randint(1, 12), take)
        return True

    def _cancel_if_live(self, key: Key) -> None:
        """Clean up the leftover of a wash order someone else partly took."""
        if self.sim.live(key) is not None:
            self.sim.cancel(key)

    def _self_trade(self, g: WashGroup, mult: float, tries: int = 0) -> None:
        """Same wallet on both sides (the taker sets stp none to get past the engine's STP)."""
        w = g.wallets[0]
        m = g.markets[0] if self.rng.random() < 0.8 else self.rng.choice(list(SPECS))
        if not self._wash_cross(g, m, w, w, self.size(m, mult, 0.25)):
            self._retry(g, lambda: self._self_trade(g, mult, tries + 1), tries)

    def _ping(self, g: WashGroup, mult: float, tries: int = 0) -> None:
        """A sells to B; some time later (the price may have moved) B sells about as much back."""
        rng = self.rng
        a, b = g.wallets if rng.random() < 0.5 else tuple(reversed(g.wallets))
        m = rng.choice(g.markets)
        q = self.size(m, mult, 0.3)
        if not self._wash_cross(g, m, a, b, q):
            self._retry(g, lambda: self._ping(g, mult, tries + 1), tries)
            return
        if rng.random() < 0.6:
            back = q
        else:
            back = max(1, round(q * (1 + rng.choice((-1, 1)) * rng.uniform(0.01, 0.08))))
        r = rng.random()
        gap = (
            rng.expovariate(1 / 60) if r < 0.5 else rng.expovariate(1 / (600 if r < 0.85 else 4000))
        )
        self.schedule(int(gap), lambda: self._pong(g, m, b, a, back, 0))

    def _pong(self, g: WashGroup, m: str, seller: str, buyer: str, q: int, tries: int) -> None:
        """The return leg of a ping-pong."""
        if not self._wash_cross(g, m, seller, buyer, q):
            self._retry(g, lambda: self._pong(g, m, seller, buyer, q, tries + 1), tries)

    def _ring_leg(
        self, g: WashGroup, mult: float, q: int | None, i: int, tries: int, start: int = 0
    ) -> None:
        """Member i sells the round's quantity to member i+1; the last one closes the ring."""
        rng = self.rng
        k = len(g.wallets)
        m = g.markets[0]
        if q is None:
            q = self.size(m, mult, 0.3)
            start = rng.randrange(k)
        seller = g.wallets[(start + i) % k]
        buyer = g.wallets[(start + i + 1) % k]
        leg_q = q if rng.random() < 0.85 else max(1, q + rng.choice((-1, 1)))
        if not self._wash_cross(g, m, seller, buyer, leg_q):
            self._retry(g, lambda: self._ring_leg(g, mult, q, i, tries + 1, start), tries)
            return
        if i + 1 < k:
            gap = rng.expovariate(1 / 30) if rng.random() < 0.8 else rng.expovariate(1 / 400)
            self.schedule(int(gap), lambda: self._ring_leg(g, mult, q, i + 1, 0, start))

    def _churn(self, g: WashGroup, base: int, tries: int = 0) -> None:
        """The churner trades with one of its partners, leaning back towards a flat position."""
        rng = self.rng
        c = g.wallets[0]
        p = rng.choice(g.wallets[1:])
        m = g.markets[0]
        pos = self.sim.position[(c, m)]
        c_sells = pos > 0 if pos != 0 else rng.random() < 0.5
        if rng.random() < 0.15:
            c_sells = not c_sells
        q = base if rng.random() < 0.3 else max(1, round(base * rng.uniform(0.8, 1.25)))
        seller, buyer = (c, p) if c_sells else (p, c)
        if not self._wash_cross(g, m, seller, buyer, q):
            self._retry(g, lambda: self._churn(g, base, tries + 1), tries)

    # ---- background actors

    def step_prices(self) -> None:
        """Move each market's fair value: a slow random walk with drift and rare jumps."""
        rng = self.rng
        for m in self.fair:
            shock = rng.gauss(self.drift[m], self.sigma)
            if rng.random() < 1 / 6000:
                shock += rng.choice((-1, 1)) * rng.uniform(0.005, 0.02)
            self.fair[m] = max(20.0, self.fair[m] * math.exp(shock))

    def maker_act(self, mk: Maker) -> None:
        """Requote both sides of one market around an inventory-skewed fair price."""
        rng = self.rng
        m = rng.choice(mk.markets)
        spec = SPECS[m]
        hs_base = self.half_spread(m)
        inv = self.sim.position[(mk.owner, m)]
        inv_limit = max(4, int(spec.size_median_lots * mk.size_mult * 4))
        res = self.fair[m] - (inv / inv_limit) * hs_base * 1.5
        hs = max(1, round(hs_base * mk.spread_mult * rng.uniform(0.8, 1.2)))
        bid = max(1, math.floor(res - hs))
        ask = max(bid + 1, math.ceil(res + hs))
        if abs(inv) > inv_limit:  # mean reversion: take liquidity to shed inventory
            side = "sell" if inv > 0 else "buy"
            q = abs(inv) - inv_limit // 2
            best = self.sim.best(m, "buy" if side == "sell" else "sell")
            if best is not None:
                limit = best - 2 * hs_base if side == "sell" else best + 2 * hs_base
                self.sim.new(m, mk.owner, side, q, max(1, limit), tif="IOC")
        sides = [("sell", ask), ("buy", bid)]
        cur_ask = self.sim.live(mk.quotes.get((m, "sell")))
        if cur_ask is not None and bid < cur_ask.price:
            sides.reverse()  # move the bid first when the ask is out of the way
        for side, price in sides:
            base_q = max(1, round(spec.size_median_lots * mk.size_mult * rng.uniform(0.6, 1.4)))
            adding = (side == "buy" and inv > 0) or (side == "sell" and inv < 0)
            q = max(1, round(base_q * (0.5 if adding and abs(inv) > inv_limit / 2 else 1.0)))
            key = mk.quotes.get((m, side))
            live = self.sim.live(key)
            if live is not None:
                if live.price == price and rng.random() < 0.5:
                    continue
                if rng.random() < 0.85:
                    if self.sim.replace(live.key, price=price, qty=q) is None:
                        del mk.quotes[(m, side)]  # filled on re-entry: quote anew next time
                    continue
                self.sim.cancel(live.key)
            tif = "POST_ONLY" if rng.random() < 0.3 else "GTC"
            order = self.sim.new(m, mk.owner, side, q, price, tif=tif)
            if order is not None:
                mk.quotes[(m, side)] = order.key

    def honest_act(self, h: Honest) -> None:
        """One decision of an honest trader: cancel or amend, take, or post a limit order."""
        rng = self.rng
        sim = self.sim
        live = [k for k in h.open if sim.live(k) is not None]
        h.dead.extend(k for k in h.open if sim.live(k) is None)
        h.dead = h.dead[-5:]
        h.open = live
        if live and (len(live) >= h.max_open or rng.random() < h.p_cancel):
            key = max(live, key=lambda k: abs(sim.orders[k].price - self.fair[k[0]]))
            if rng.random() < 0.4:
                key = live[0]
            if rng.random() < 0.25:
                o = sim.orders[key]
                hs = self.half_spread(key[0])
                off = rng.expovariate(1 / (h.patience * hs))
                price = max(
                    1,
                    round(self.fair[key[0]] - off if o.side == "buy" else self.fair[key[0]] + off),
                )
                qty = o.qty if rng.random() < 0.6 else max(1, round(o.qty * rng.uniform(0.5, 1.5)))
                if sim.replace(key, price=price, qty=qty) is None:
                    h.open.remove(key)
            else:
                sim.cancel(key)
                h.open.remove(key)
            return
        if h.dead and rng.random() < 0.02:
            sim.cancel(h.dead.pop())  # cancels a fill it has not noticed: unknown_order
            return
        m = rng.choices(h.markets, h.market_weights)[0]
        side = "buy" if rng.random() < h.buy_bias else "sell"
        q = self.size(m, h.size_mult, h.round_pref)
        hs = self.half_spread(m)
        if rng.random() < h.p_take:
            opp = sim.best(m, "sell" if side == "buy" else "buy")
            if opp is not None:
                r = rng.random()
                if r < 0.3:
                    sim.new(
                        m,
                        h.owner,
                        side,
                        min(q, 4 * SPECS[m].size_median_lots),
                        tif="IOC",
                        market_order=True,
                        tif_on_market=rng.random() < 0.5,
                    )
                    return
                slip = rng.randint(0, hs)
                price = max(1, opp + slip if side == "buy" else opp - slip)
                sim.new(m, h.owner, side, q, price, tif="FOK" if r > 0.96 else "IOC")
                return
        off = rng.expovariate(1 / (h.patience * hs))
        if rng.random() < 0.07:
            off = -rng.uniform(0, 2 * hs)  # a marketable limit order
        price = max(1, round(self.fair[m] - off if side == "buy" else self.fair[m] + off))
        tif = "POST_ONLY" if rng.random() < 0.05 else "GTC"
        order = sim.new(m, h.owner, side, q, price, tif=tif)
        if order is not None:
            h.open.append(order.key)

    def bot_act(self, bot: Bot) -> None:
        """Odd-but-honest programs: unusual shapes of flow, none of it wash."""
        rng = self.rng
        sim = self.sim
        bot.open = [k for k in bot.open if sim.live(k) is not None]
        if bot.kind == "layering":
            # Big orders far behind the touch, pulled soon: lots of orders, almost no trades.
            m = bot.state.setdefault("market", "APE-ETH")
            if len(bot.open) >= 4:
                for key in bot.open[:2]:
                    sim.cancel(key)
                return
            hs = self.half_spread(m)
            for _ in range(rng.randint(2, 4)):
                side = rng.choice(("buy", "sell"))
                off = rng.uniform(6, 20) * hs
                price = max(1, round(self.fair[m] - off if side == "buy" else self.fair[m] + off))
                o = sim.new(
                    m, bot.owner, side, SPECS[m].size_median_lots * rng.randint(8, 15), price
                )
                if o is not None:
                    bot.open.append(o.key)
        elif bot.kind == "whale":
            # Rare, huge, aggressive orders that walk the book.
            m = rng.choice(list(SPECS))
            side = rng.choice(("buy", "sell"))
            q = SPECS[m].size_median_lots * rng.randint(15, 40)
            if rng.random() < 0.5:
                sim.new(m, bot.owner, side, q, tif="IOC", market_order=True)
            else:
                hs = self.half_spread(m)
                price = round(self.fair[m] + 8 * hs if side == "buy" else self.fair[m] - 8 * hs)
                sim.new(m, bot.owner, side, q, max(1, price), tif="IOC")
        elif bot.kind == "dust":
            # One lot at a time, all day long, against whoever is at the touch.
            m = bot.state.setdefault("market", "SWORD-GEM")
            side = rng.choice(("buy", "sell"))
            opp = sim.best(m, "sell" if side == "buy" else "buy")
            if opp is not None:
                sim.new(m, bot.owner, side, 1, opp, tif="IOC")
        elif bot.kind == "maker_arb":
            # Takes exactly one round size, only from market makers, and stays flat.
            m = bot.state.setdefault("market", "WINE-USDC")
            pos = sim.position[(bot.owner, m)]
            side = ("sell" if pos > 0 else "buy") if pos else rng.choice(("buy", "sell"))
            opp_side = "sell" if side == "buy" else "buy"
            best = sim.best(m, opp_side)
            if best is None:
                return
            top = sim.books[m].first(opp_side, best)
            size = 100
            if top.owner in self.maker_owners and top.qty >= size:
                sim.new(m, bot.owner, side, size, best, tif="IOC")
        elif bot.kind == "twap":
            # Works one big parent order: equal child orders, always the same direction.
            m = bot.state.setdefault("market", "APE-ETH")
            side = bot.state.setdefault("side", rng.choice(("buy", "sell")))
            opp = sim.best(m, "sell" if side == "buy" else "buy")
            if opp is not None:
                sim.new(m, bot.owner, side, 12, opp, tif="IOC")
        elif bot.kind == "fok_poster":
            # Improves the touch with odd sizes, post-only, amends and pulls constantly,
            # and now and then sweeps with fill-or-kill.
            m = rng.choice(list(SPECS))
            odd = rng.choice((7, 11, 13, 17, 19, 23))
            if bot.open and rng.random() < 0.6:
                key = rng.choice(bot.open)
                if rng.random() < 0.5:
                    sim.cancel(key)
                else:
                    o = sim.orders[key]
                    sim.replace(key, qty=max(1, o.qty - 1))
                return
            side = rng.choice(("buy", "sell"))
            best = sim.best(m, side)
            opp = sim.best(m, "sell" if side == "buy" else "buy")
            if best is None or opp is None:
                return
            if rng.random() < 0.2:
                sim.new(m, bot.owner, side, odd, opp, tif="FOK")
                return
            price = best + 1 if side == "buy" else best - 1
            o = sim.new(m, bot.owner, side, odd, max(1, price), tif="POST_ONLY")
            if o is not None:
                bot.open.append(o.key)

    # ---- main loop

    def run(self) -> None:
        """Write commands until the requested count: background flow, wash legs when due."""
        rng = self.rng
        self.populate()
        traders = self.honest + self.camouflage
        t_weights = [h.weight for h in traders]
        b_weights = [b.rate for b in self.bots]
        while self.now() < self.n:
            while self.agenda and self.agenda[0][0] <= self.now():
                _, _, fn = heapq.heappop(self.agenda)
                fn()
            self.step_prices()
            r = rng.random()
            if r < 0.42:
                self.maker_act(rng.choice(self.makers))
            elif r < 0.47:
                self.bot_act(rng.choices(self.bots, b_weights)[0])
            else:
                self.honest_act(rng.choices(traders, t_weights)[0])

    # ---- truth

    def truth(self) -> dict[str, Any]:
        """Who is who: the labels the scorer needs, written beside the flow."""
        return {
            "makers": sorted(self.maker_owners),
            "honest": sorted(h.owner for h in self.honest),
            "bots": {b.owner: b.kind for b in self.bots},
            "camouflage": sorted(h.owner for h in self.camouflage),
            "groups": [
                {
                    "gid": g.gid,
                    "pattern": g.pattern,
                    "wallets": list(g.wallets),
                    "markets": list(g.markets),
                    "planned_legs": g.planned_legs,
                    "done_legs": g.done_legs,
                    "dropped_legs": g.dropped_legs,
                    "sniped_legs": g.sniped_legs,
                }
                for g in self.groups
            ],
        }


# --------------------------------------------------------------------------------------------
# The mnode command line


class CliError(RuntimeError):
    """An `mnode` command failed; carries its exit code and stderr line."""


def find_mnode(explicit: str | None) -> str:
    """The `mnode` next to this Python first (the venv's), then on PATH."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "mnode"
    if beside.exists():
        return str(beside)
    found = shutil.which("mnode")
    if not found:
        raise CliError("mnode not found: pass --mnode PATH")
    return found


def mnode(exe: str, *args: str, stdout_path: Path | None = None) -> str:
    """Run one `mnode` command; raise with its stderr when it exits non-zero."""
    if stdout_path is not None:
        with stdout_path.open("w") as out:
            proc = subprocess.run([exe, *args], stdout=out, stderr=subprocess.PIPE, text=True)
        text = ""
    else:
        proc = subprocess.run([exe, *args], capture_output=True, text=True)
        text = proc.stdout
    if proc.returncode != 0:
        raise CliError(f"mnode {args[0]} exited {proc.returncode}: {proc.stderr.strip()}")
    return text


def configure_markets(home: Path) -> None:
    """Replace the default `[[markets]]` tables of the new home's config.toml with ours.

    config.toml's comments say the market tables come last; everything before the first table
    line is kept as `mnode init` wrote it.
    """
    path = home / "config.toml"
    lines = path.read_text().splitlines(keepends=True)
    cut = next((i for i, line in enumerate(lines) if line.strip() == "[[markets]]"), len(lines))
    head = "".join(lines[:cut]).rstrip() + "\n\n"
    path.write_text(head + "\n".join(m.toml() for m in MARKETS))


# --------------------------------------------------------------------------------------------
# Scoring


def _ratio(a: int, b: int) -> float | None:
    """a / b, or None when b is 0 (undefined, not zero)."""
    return a / b if b else None


def _f1(p: float | None, r: float | None) -> float | None:
    """Harmonic mean of precision and recall."""
    if p is None or r is None or p + r == 0:
        return None
    return 2 * p * r / (p + r)


def score(
    truth: dict[str, Any], trades: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> dict[str, Any]:
    """Label trades from the engine's own record and score the alerts against the labels."""
    group_of: dict[str, int] = {}
    pattern_of: dict[int, str] = {}
    for g in truth["groups"]:
        pattern_of[g["gid"]] = g["pattern"]
        for w in g["wallets"]:
            group_of[w] = g["gid"]
    makers = set(truth["makers"])
    bots = set(truth["bots"])

    wash: dict[int, str] = {}  # trade seq -> pattern
    wash_group: dict[int, int | None] = {}  # trade seq -> group (None: an unplanned self-trade)
    wash_wallets: set[str] = set()
    for t in trades:
        seq = int(t["seq"])
        b, s = t["buyer"], t["seller"]
        gb, gs = group_of.get(b), group_of.get(s)
        if b == s or (gb is not None and gb == gs):
            wash[seq] = pattern_of[gb] if gb is not None else "self_trade"
            wash_group[seq] = gb
            wash_wallets.update((b, s))

    per_detector: dict[str, dict[str, Any]] = {}
    flagged_trades: set[int] = set()
    flagged_wallets: set[str] = set()
    any_alert_wallets: dict[str, set[str]] = defaultdict(set)
    for a in alerts:
        det = a["detector"]
        d = per_detector.setdefault(det, {"alerts": 0, "trades": set(), "wallets": set()})
        d["alerts"] += 1
        d["trades"].update(int(x) for x in a.get("trades") or [])
        d["wallets"].update(a.get("wallets") or [])
        for w in a.get("wallets") or []:
            any_alert_wallets[w].add(det)
        if det not in NON_TRADE_DETECTORS and a.get("trades"):
            flagged_trades.update(int(x) for x in a["trades"])
            flagged_wallets.update(a.get("wallets") or [])

    tp = len(flagged_trades & wash.keys())
    fp = len(flagged_trades - wash.keys())
    fn = len(wash.keys() - flagged_trades)
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    wtp = len(flagged_wallets & wash_wallets)
    wp, wr = _ratio(wtp, len(flagged_wallets)), _ratio(wtp, len(wash_wallets))

    camouflage = set(truth["camouflage"])
    groups = []
    for g in truth["groups"]:
        seqs = {s for s, gid in wash_group.items() if gid == g["gid"]}
        groups.append(
            {
                "gid": g["gid"],
                "pattern": g["pattern"],
                "wallets": len(g["wallets"]),
                "markets": g["markets"],
                "camouflage": any(w in camouflage for w in g["wallets"]),
                "trades": len(seqs),
                "detected": len(seqs & flagged_trades),
            }
        )

    patterns: dict[str, dict[str, Any]] = {}
    for pat in PATTERNS:
        seqs = {s for s, pp in wash.items() if pp == pat}
        hit = len(seqs & flagged_trades)
        by_det = {
            det: len(seqs & d["trades"])
            for det, d in sorted(per_detector.items())
            if det not in NON_TRADE_DETECTORS
        }
        split = {}
        for label, cam in (("with_camouflage", True), ("without_camouflage", False)):
            gs = [g for g in groups if g["pattern"] == pat and g["camouflage"] is cam]
            n = sum(g["trades"] for g in gs)
            split[label] = {
                "groups": len(gs),
                "trades": n,
                "recall": _ratio(sum(g["detected"] for g in gs), n),
            }
        patterns[pat] = {
            "trades": len(seqs),
            "detected": hit,
            "recall": _ratio(hit, len(seqs)),
            "by_detector": by_det,
            **split,
            "groups_caught": sum(1 for g in groups if g["pattern"] == pat and g["detected"]),
            "groups": sum(1 for g in groups if g["pattern"] == pat),
        }

    detectors = {}
    for det, d in sorted(per_detector.items()):
        named = d["trades"]
        good = len(named & wash.keys())
        detectors[det] = {
            "alerts": d["alerts"],
            "trades_named": len(named),
            "wash_trades_named": good,
            "precision": _ratio(good, len(named)) if det not in NON_TRADE_DETECTORS else None,
            "wallets_named": len(d["wallets"]),
            "makers_named": len(d["wallets"] & makers),
        }

    makers_flagged = sorted(w for w in makers if w in any_alert_wallets)

    def role(w: str) -> str:
        if w in group_of:
            return "wash"
        if w in bots:
            return "bot"
        if w in makers:
            return "maker"
        return "honest"

    anomalous = per_detector.get("anomalous_wallets", {"wallets": set()})["wallets"]
    roles = Counter(role(w) for w in anomalous)
    population = Counter(
        role(w) for w in {t["buyer"] for t in trades} | {t["seller"] for t in trades}
    )
    bot_flags = {kind: sorted(any_alert_wallets.get(w, ())) for w, kind in truth["bots"].items()}

    return {
        "trades": len(trades),
        "wash_trades": len(wash),
        "trade": {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": _f1(p, r)},
        "wallet": {
            "wash_wallets": len(wash_wallets),
            "flagged": len(flagged_wallets),
            "tp": wtp,
            "precision": wp,
            "recall": wr,
            "f1": _f1(wp, wr),
        },
        "patterns": patterns,
        "groups": groups,
        "detectors": detectors,
        "makers": {
            "count": len(makers),
            "flagged": len(makers_flagged),
            "share": _ratio(len(makers_flagged), len(makers)),
            "by": {w: sorted(any_alert_wallets[w]) for w in makers_flagged},
        },
        "anomalous_wallets": {
            "flagged": len(anomalous),
            "wash": roles["wash"],
            "bot": roles["bot"],
            "honest": roles["honest"],
            "maker": roles["maker"],
            "population": dict(population),
        },
        "bots_flagged_by": bot_flags,
    }


def replay_trades(events_path: Path) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The trades (seq, buyer, seller, market, price, qty, owners) and rejects `replay` printed."""
    trades: list[dict[str, Any]] = []
    rejects: Counter[str] = Counter()
    with events_path.open() as f:
        for line in f:
            if '"trade"' not in line and '"rejected"' not in line:
                continue
            ev = json.loads(line)
            if ev["event"] == "trade":
                buy = ev["aggressor"] == "buy"
                ev["buyer"] = ev["taker_owner"] if buy else ev["maker_owner"]
                ev["seller"] = ev["maker_owner"] if buy else ev["taker_owner"]
                trades.append(ev)
            elif ev["event"] == "rejected":
                rejects[ev.get("reason", "?")] += 1
    return trades, rejects


def model_check(sim: Sim, events_path: Path, sql_trades: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare the generator's book model with what the engine printed, trade by trade.

    Not part of the score (labels come from the engine's trades); it shows that wash orders met
    where the generator meant them to, and would expose a difference between docs and engine.
    It also checks that the analytics store (`mnode sql`) holds exactly the trades `replay`
    printed, since the labels are computed from the store.
    """
    printed, rejects = replay_trades(events_path)
    engine = [
        (
            ev["market"],
            Decimal(ev["price"]),
            Decimal(ev["qty"]),
            ev["maker_owner"],
            ev["taker_owner"],
        )
        for ev in printed
    ]
    store_view = sorted((int(t["seq"]), t["buyer"], t["seller"], t["market"]) for t in sql_trades)
    replay_view = sorted((int(t["seq"]), t["buyer"], t["seller"], t["market"]) for t in printed)
    model = [
        (
            t.market,
            Decimal(t.price) * SPECS[t.market].tick,
            Decimal(t.qty) * SPECS[t.market].lot,
            t.maker,
            t.taker,
        )
        for t in sim.trades
    ]
    first = next((i for i, (x, y) in enumerate(zip(model, engine, strict=False)) if x != y), None)
    if first is None and len(model) != len(engine):
        first = min(len(model), len(engine))
    return {
        "model_trades": len(model),
        "engine_trades": len(engine),
        "match": first is None,
        "first_divergence": first,
        "store_matches_replay": store_view == replay_view,
        "engine_rejects": dict(rejects),
        "model_rejects": dict(sim.rejects),
    }


# --------------------------------------------------------------------------------------------
# Report


def _pct(x: float | None) -> str:
    """A share as a percentage, or n/a."""
    return "  n/a" if x is None else f"{100 * x:5.1f}%"


def render(rep: dict[str, Any]) -> str:
    """The human-readable report."""
    s = rep["score"]
    lines = [
        f"hold-out market, seed {rep['seed']}: {rep['commands']} commands, "
        f"{s['trades']} trades, {s['wash_trades']} wash ({rep['home']})",
        f"  engine agreed with the generator's book model: {rep['model_check']['match']} "
        f"({rep['model_check']['engine_trades']} trades); store holds the replayed trades: "
        f"{rep['model_check']['store_matches_replay']}",
        "",
        "trades (union of trade-naming detectors: "
        + ", ".join(d for d in s["detectors"] if d not in NON_TRADE_DETECTORS)
        + ")",
        f"  precision {_pct(s['trade']['precision'])}  recall {_pct(s['trade']['recall'])}  "
        f"F1 {_pct(s['trade']['f1'])}   (tp {s['trade']['tp']}, fp {s['trade']['fp']}, "
        f"fn {s['trade']['fn']})",
        f"wallets: precision {_pct(s['wallet']['precision'])}  recall "
        f"{_pct(s['wallet']['recall'])}   ({s['wallet']['tp']} of {s['wallet']['wash_wallets']}"
        f" wash wallets; {s['wallet']['flagged']} flagged)",
        "",
        "recall per pattern:",
    ]
    for pat, v in s["patterns"].items():
        dets = ", ".join(f"{d} {n}" for d, n in v["by_detector"].items() if n)
        lines.append(
            f"  {pat:<11} {_pct(v['recall'])}  {v['detected']:>4} / {v['trades']:<4} "
            f"groups caught {v['groups_caught']}/{v['groups']}, recall with camouflage "
            f"{_pct(v['with_camouflage']['recall']).strip()} / without "
            f"{_pct(v['without_camouflage']['recall']).strip()};  {dets or 'no detector'}"
        )
    lines += ["", "detectors:"]
    for det, v in s["detectors"].items():
        lines.append(
            f"  {det:<18} {v['alerts']:>4} alerts  {v['trades_named']:>5} trades named "
            f"({v['wash_trades_named']} wash, precision {_pct(v['precision'])})  "
            f"{v['wallets_named']} wallets, {v['makers_named']} makers"
        )
    mk = s["makers"]
    an = s["anomalous_wallets"]
    lines += [
        "",
        f"market makers flagged: {mk['flagged']} of {mk['count']} ({_pct(mk['share']).strip()})"
        + (f"  by {sorted({d for v in mk['by'].values() for d in v})}" if mk["by"] else ""),
        f"anomalous_wallets: {an['flagged']} flagged: {an['wash']} wash, {an['bot']} bots, "
        f"{an['honest']} honest, {an['maker']} makers   (trading population "
        f"{an['population']})",
        "odd bots flagged by: "
        + ", ".join(f"{k} {v or '-'}" for k, v in s["bots_flagged_by"].items()),
        "",
        "wash legs planned/done/no room/sniped/past end: "
        + ", ".join(
            f"{p} {v['planned']}/{v['done']}/{v['no_room']}/{v['sniped']}/{v['past_end']}"
            for p, v in rep["legs"].items()
        ),
        "timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in rep["seconds"].items()),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Generate, replay, scan, score; print the report (or one JSON object)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1, help="random seed of the generated market")
    ap.add_argument("--orders", type=int, default=60_000, help="commands to generate")
    ap.add_argument("--out", type=Path, help="folder for the home and artefacts (new temp dir)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--mnode", help="path of the mnode executable")
    args = ap.parse_args(argv)
    if args.orders < 2000:
        ap.error("--orders must be at least 2000")

    out: Path = args.out or Path(tempfile.mkdtemp(prefix="holdout-"))
    home = out / "home"
    if home.exists():
        print(f"error: {home} exists; pick another --out or remove it", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    try:
        exe = find_mnode(args.mnode)
        t0 = time.perf_counter()
        gen = Generator(args.seed, args.orders)
        gen.run()
        truth = gen.truth()
        flow = out / "orders.ndjson"
        flow.write_text(
            "".join(json.dumps(c, separators=(",", ":")) + "\n" for c in gen.sim.commands)
        )
        (out / "truth.json").write_text(json.dumps(truth, indent=1))
        seconds["generate"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        mnode(exe, "init", str(home))
        configure_markets(home)
        events = out / "events.ndjson"
        mnode(exe, "replay", str(flow), "--home", str(home), stdout_path=events)
        seconds["replay"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        alerts = json.loads(mnode(exe, "integrity", "scan", "--home", str(home), "--json"))
        (out / "alerts.json").write_text(json.dumps(alerts))
        seconds["scan"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        trades = json.loads(
            mnode(
                exe,
                "sql",
                "--home",
                str(home),
                "--json",
                "SELECT seq, buyer, seller, market FROM trades ORDER BY seq",
            )
        )
        seconds["read trades"] = time.perf_counter() - t0
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    legs: dict[str, dict[str, int]] = {
        p: {"planned": 0, "done": 0, "no_room": 0, "sniped": 0, "past_end": 0} for p in PATTERNS
    }
    for g in gen.groups:
        v = legs[g.pattern]
        v["planned"] += g.planned_legs
        v["done"] += g.done_legs
        v["no_room"] += g.dropped_legs
        v["sniped"] += g.sniped_legs
    for v in legs.values():
        v["past_end"] = v["planned"] - v["done"] - v["no_room"] - v["sniped"]
    rep = {
        "seed": args.seed,
        "orders": args.orders,
        "commands": len(gen.sim.commands),
        "home": str(home),
        "markets": [m.symbol for m in MARKETS],
        "population": {
            "honest": len(gen.honest),
            "makers": len(gen.makers),
            "bots": len(gen.bots),
            "wash_groups": len(gen.groups),
            "wash_wallets": sum(len(g.wallets) for g in gen.groups),
            "camouflage": len(gen.camouflage),
        },
        "legs": legs,
        "model_check": model_check(gen.sim, events, trades),
        "score": score(truth, trades, alerts),
        "seconds": seconds,
    }
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    print(json.dumps(rep) if args.json else render(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())

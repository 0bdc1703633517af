"""Hold-out benchmark B: the wash-trading detectors on a game-item market they were not built on.

    python bench/holdout_b.py [--seed N] [--commands N] [--out DIR] [--json] [--mnode PATH]

What it tests. Whether `mnode integrity scan` finds wash trading in a marketplace designed by
an outside reviewer who never read the detectors, the project's own wash generator, its
evaluation code or its first hold-out market: a second, independent check that the detectors
learned "wash trading" and not "the project's generator". Everything goes through the public
surface only, as an operator would use it:

1. This script simulates its own game-item marketplace (six markets, a few thousand wallets,
   labelled wash groups) and writes the commands as ndjson (docs/engine.md's command format).
   It keeps its own copy of every book (price-time priority and the self-trade prevention
   rules of docs/engine.md), so wash orders are priced inside the spread where nobody else's
   order is in the way and the partner takes them a few commands later, as real wash traders
   do; noise is kept on purpose (outsiders sometimes fill part of a wash order, wash wallets
   trade honestly as cover, sizes and prices are never exactly repeated).
2. `mnode init DIR/home`, its `[[markets]]` replaced by this market's, `mnode replay`,
   `mnode integrity scan --json`, and the trades read back with `mnode sql ... --json`.
3. Scores against the labels: a trade is wash when its buyer and seller belong to the same
   wash group (or are the same wallet). Trade precision, recall and F1 over the union of the
   trades named by every detector except `anomalous_wallets` and `market_statistics` (they name
   no specific wash trades); wallet precision and recall over the same alerts; recall per wash
   pattern; market makers named by any alert; and who `anomalous_wallets` flagged (wash, bot,
   maker, other honest wallets).

Why. A detector tuned on one generator can score well on it and badly on real flow. This market
differs from a textbook one on purpose: liquidity from one busy market down to very thin ones,
unlike tick and lot sizes (fractional lots, lots of 5 and 10), prices that trend and revert,
a long tail of retail wallets with a trade or two, busy honest bots, market makers with
inventory control, and wash patterns of its own (self-trades, pairs whose returns are spread
over time with varying sizes, rings of 3 to 6, a cluster trading at random among itself, and a
wallet farm pumping a thin market's volume).

Standalone: standard library only; runs the `mnode` next to this Python (or --mnode).
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
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

BUY, SELL = "buy", "sell"
EXCLUDED_FROM_TRADES = {"anomalous_wallets", "market_statistics"}


def other(side: str) -> str:
    return SELL if side == BUY else BUY


# --------------------------------------------------------------------------------------------
# Markets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketSpec:
    """One market: its exchange rules and how this simulation drives it."""

    symbol: str
    tick: Decimal
    lot: Decimal
    min_lots: int
    max_lots: int
    max_notional: Decimal | None
    stp: str
    price0: float
    activity: float
    """Share of the honest flow that goes to this market."""
    vol: float
    """Standard deviation of the log price over a whole run (random-walk part)."""
    makers: int
    maker_half: tuple[float, float]
    """Range of the makers' half spreads, as fractions of the price."""
    maker_lots: int
    retail_lots: float
    """Median retail order size, in lots."""

    @property
    def tickf(self) -> float:
        return float(self.tick)

    def price_text(self, ticks: int) -> str:
        return format((self.tick * ticks).normalize(), "f")

    def qty_text(self, lots: int) -> str:
        return format((self.lot * lots).normalize(), "f")

    def fit(self, ticks: int, lots: int) -> int:
        """The largest valid quantity <= lots at this price (0: none)."""
        lots = min(lots, self.max_lots)
        if self.max_notional is not None:
            cap = int(self.max_notional / (self.tick * ticks * self.lot))
            lots = min(lots, cap)
        return lots if lots >= self.min_lots else 0

    def toml(self) -> str:
        base, quote = self.symbol.split("-")
        lines = [
            "[[markets]]",
            f'symbol = "{self.symbol}"',
            f'base = "{base}"',
            f'quote = "{quote}"',
            f'tick_size = "{self.tick}"',
            f'lot_size = "{self.lot}"',
            f'min_qty = "{self.qty_text(self.min_lots)}"',
            f'max_qty = "{self.qty_text(self.max_lots)}"',
        ]
        if self.max_notional is not None:
            lines.append(f'max_notional = "{self.max_notional}"')
        lines.append(f'stp = "{self.stp}"')
        return "\n".join(lines) + "\n"


def D(text: str) -> Decimal:
    return Decimal(text)


MARKETS: list[MarketSpec] = [
    # The busy one: shards of a legendary sword, priced in the game's GEM currency.
    MarketSpec(
        symbol="SWORD-GEM",
        tick=D("0.05"),
        lot=D("1"),
        min_lots=1,
        max_lots=250,
        max_notional=D("60000"),
        stp="cancel_newest",
        price0=42.0,
        activity=0.46,
        vol=0.22,
        makers=4,
        maker_half=(0.0022, 0.0055),
        maker_lots=14,
        retail_lots=2.0,
    ),
    # Metaverse land parcels: fine tick, whole parcels.
    MarketSpec(
        symbol="LAND-ETH",
        tick=D("0.001"),
        lot=D("1"),
        min_lots=1,
        max_lots=400,
        max_notional=D("2500"),
        stp="cancel_newest",
        price0=1.85,
        activity=0.21,
        vol=0.30,
        makers=3,
        maker_half=(0.0025, 0.0060),
        maker_lots=10,
        retail_lots=3.0,
    ),
    # Weapon skins sold in bundles of five, coarse tick.
    MarketSpec(
        symbol="SKIN-USDC",
        tick=D("0.25"),
        lot=D("5"),
        min_lots=1,
        max_lots=80,
        max_notional=D("150000"),
        stp="cancel_oldest",
        price0=118.0,
        activity=0.13,
        vol=0.20,
        makers=2,
        maker_half=(0.0040, 0.0090),
        maker_lots=4,
        retail_lots=1.3,
    ),
    # Fractional shares of a rare mech: lots of 0.01, minimum 0.05, thin.
    MarketSpec(
        symbol="MECH-ETH",
        tick=D("0.0005"),
        lot=D("0.01"),
        min_lots=5,
        max_lots=2000,
        max_notional=D("60"),
        stp="decrement",
        price0=0.32,
        activity=0.08,
        vol=0.40,
        makers=1,
        maker_half=(0.010, 0.014),
        maker_lots=60,
        retail_lots=30.0,
    ),
    # Pets: whole items, expensive, thin.
    MarketSpec(
        symbol="PET-USDC",
        tick=D("1"),
        lot=D("1"),
        min_lots=1,
        max_lots=25,
        max_notional=D("20000"),
        stp="cancel_newest",
        price0=340.0,
        activity=0.07,
        vol=0.25,
        makers=1,
        maker_half=(0.012, 0.016),
        maker_lots=2,
        retail_lots=1.0,
    ),
    # Crafting runes in stacks of ten, coarse tick: very thin, the farm's target.
    MarketSpec(
        symbol="RUNE-GEM",
        tick=D("0.01"),
        lot=D("10"),
        min_lots=1,
        max_lots=2000,
        max_notional=D("5000"),
        stp="cancel_newest",
        price0=0.84,
        activity=0.05,
        vol=0.45,
        makers=1,
        maker_half=(0.028, 0.034),
        maker_lots=40,
        retail_lots=25.0,
    ),
]


# --------------------------------------------------------------------------------------------
# The book model (docs/engine.md): price-time priority, trades at the maker's price, STP.
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Order:
    owner: str
    oid: str
    side: str
    price: int
    qty: int
    stp: str | None


@dataclass(frozen=True)
class Fill:
    market: str
    maker: str
    taker: str
    price: int
    qty: int
    aggressor: str
    maker_oid: str

    @property
    def buyer(self) -> str:
        return self.taker if self.aggressor == BUY else self.maker

    @property
    def seller(self) -> str:
        return self.maker if self.aggressor == BUY else self.taker


class Book:
    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self.levels: dict[str, dict[int, deque[Order]]] = {BUY: {}, SELL: {}}
        self.prices: dict[str, list[int]] = {BUY: [], SELL: []}
        self.live: dict[tuple[str, str], Order] = {}

    def best(self, side: str) -> int | None:
        prices = self.prices[side]
        if not prices:
            return None
        return prices[-1] if side == BUY else prices[0]

    def first_at_best(self, side: str) -> Order | None:
        best = self.best(side)
        return None if best is None else self.levels[side][best][0]

    def _add(self, order: Order) -> None:
        levels = self.levels[order.side]
        if order.price not in levels:
            levels[order.price] = deque()
            bisect.insort(self.prices[order.side], order.price)
        levels[order.price].append(order)
        self.live[(order.owner, order.oid)] = order

    def _remove(self, order: Order) -> None:
        levels = self.levels[order.side]
        queue = levels[order.price]
        if queue[0] is order:
            queue.popleft()
        else:
            queue.remove(order)
        if not queue:
            del levels[order.price]
            prices = self.prices[order.side]
            del prices[bisect.bisect_left(prices, order.price)]
        del self.live[(order.owner, order.oid)]

    def _match(self, taker: Order, limit: bool, mode: str) -> list[Fill]:
        fills: list[Fill] = []
        opposite = other(taker.side)
        while taker.qty > 0:
            best = self.best(opposite)
            if best is None:
                break
            if limit and (best > taker.price if taker.side == BUY else best < taker.price):
                break
            resting = self.levels[opposite][best][0]
            if resting.owner == taker.owner and mode != "none":
                if mode == "cancel_newest":
                    taker.qty = 0
                    break
                if mode == "cancel_oldest":
                    self._remove(resting)
                    continue
                if mode == "cancel_both":
                    self._remove(resting)
                    taker.qty = 0
                    break
                cut = min(resting.qty, taker.qty)  # decrement
                resting.qty -= cut
                taker.qty -= cut
                if resting.qty == 0:
                    self._remove(resting)
                continue
            qty = min(resting.qty, taker.qty)
            fills.append(
                Fill(
                    self.spec.symbol, resting.owner, taker.owner, best, qty, taker.side, resting.oid
                )
            )
            resting.qty -= qty
            taker.qty -= qty
            if resting.qty == 0:
                self._remove(resting)
        return fills

    def new(self, order: Order, kind: str, tif: str) -> list[Fill] | None:
        """None when the engine would reject it (only POST_ONLY crossing can happen here)."""
        if tif == "POST_ONLY":
            best = self.best(other(order.side))
            if best is not None and (
                order.price >= best if order.side == BUY else order.price <= best
            ):
                return None
        fills = self._match(order, kind == "limit", order.stp or self.spec.stp)
        if order.qty > 0 and kind == "limit" and tif in ("GTC", "POST_ONLY"):
            self._add(order)
        return fills

    def cancel(self, owner: str, oid: str) -> None:
        self._remove(self.live[(owner, oid)])

    def replace(self, owner: str, oid: str, price: int, qty: int) -> list[Fill]:
        order = self.live[(owner, oid)]
        if price == order.price and qty <= order.qty:
            order.qty = qty
            return []
        self._remove(order)
        entry = Order(owner, oid, order.side, price, qty, order.stp)
        fills = self._match(entry, True, entry.stp or self.spec.stp)
        if entry.qty > 0:
            self._add(entry)
        return fills


# --------------------------------------------------------------------------------------------
# Participants
# --------------------------------------------------------------------------------------------


@dataclass
class Maker:
    addr: str
    market: str
    half: float
    lots: int
    inventory_limit: int
    skew: float
    orders: dict[str, str | None] = field(default_factory=lambda: {BUY: None, SELL: None})


@dataclass
class Group:
    name: str
    pattern: str
    members: list[str]
    markets: list[str]
    lots: float
    """Typical size of one wash transfer, in lots of its first market."""


PATTERNS = ("self_trade", "pair", "ring", "cluster", "farm")


class Market:
    """The simulation: honest flow, wash groups, the book model and the command list."""

    def __init__(self, seed: int, target: int) -> None:
        self.rng = random.Random(seed)
        self.target = target
        self.specs = {spec.symbol: spec for spec in MARKETS}
        self.books = {symbol: Book(spec) for symbol, spec in self.specs.items()}
        self.lines: list[str] = []
        self.fills: list[Fill] = []
        self.rejects_expected = 0
        self.pos: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.last: dict[str, deque[int]] = {s: deque(maxlen=60) for s in self.specs}
        self.role: dict[str, str] = {}
        self.group_of: dict[str, str] = {}
        self.groups: dict[str, Group] = {}
        self.live_of: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
        self.tasks: list[tuple[int, int, Callable[[], None]]] = []
        self.task_counter = 0
        self.oid_counter = 0
        self.wash_attempts: Counter[str] = Counter()
        self.wash_dropped: Counter[str] = Counter()
        self.wash_orders: set[tuple[str, str]] = set()
        # The fair value of each market: log price with regime trends and mean reversion.
        self.iterations = max(1000, int(target * 0.72))
        self.x = {s: math.log(spec.price0) for s, spec in self.specs.items()}
        self.anchor = dict(self.x)
        self.mu = {s: 0.0 for s in self.specs}
        self._make_population()

    # -- helpers ----------------------------------------------------------------------------

    @property
    def now(self) -> int:
        return len(self.lines)

    def scaled(self, count: float) -> float:
        return count * self.target / 50_000

    def address(self) -> str:
        while True:
            addr = f"0x{self.rng.getrandbits(160):040x}"
            if addr not in self.role:
                return addr

    def fair(self, market: str) -> float:
        return math.exp(self.x[market])

    def fair_ticks(self, market: str) -> int:
        return max(1, round(self.fair(market) / self.specs[market].tickf))

    def later(self, delay: float, action: Callable[[], None]) -> None:
        self.task_counter += 1
        heapq.heappush(self.tasks, (self.now + max(0, int(delay)), self.task_counter, action))

    def run_due(self) -> None:
        while self.tasks and self.tasks[0][0] <= self.now:
            _, _, action = heapq.heappop(self.tasks)
            action()

    def step_fair(self) -> None:
        rng, n = self.rng, self.iterations
        for market, spec in self.specs.items():
            if rng.random() < 6.0 / n:  # a new trend regime, about six per run
                self.mu[market] = rng.gauss(0.0, 0.14 * 6.0 / n)
            self.anchor[market] += rng.gauss(0.0, 0.08 / math.sqrt(n))
            pull = 4.0 / n * (self.anchor[market] - self.x[market])
            self.x[market] += self.mu[market] + pull + rng.gauss(0.0, spec.vol / math.sqrt(n))

    # -- commands ---------------------------------------------------------------------------

    def _record(self, fills: list[Fill]) -> None:
        for fill in fills:
            self.fills.append(fill)
            self.pos[(fill.buyer, fill.market)] += fill.qty
            self.pos[(fill.seller, fill.market)] -= fill.qty
            self.last[fill.market].append(fill.price)

    def new(
        self,
        owner: str,
        market: str,
        side: str,
        price: int | None,
        lots: int,
        tif: str = "GTC",
        stp: str | None = None,
    ) -> tuple[str, list[Fill]] | None:
        spec = self.specs[market]
        ref_price = price if price is not None else (self.books[market].best(other(side)) or 1)
        if price is not None and price < 1:
            return None
        lots = spec.fit(ref_price, lots) if price is not None else min(lots, spec.max_lots)
        if lots < spec.min_lots:
            return None
        self.oid_counter += 1
        oid = f"o{self.oid_counter}"
        cmd: dict[str, Any] = {
            "op": "new",
            "market": market,
            "id": oid,
            "owner": owner,
            "side": side,
        }
        if price is None:
            cmd["type"] = "market"
        else:
            cmd["price"] = spec.price_text(price)
        cmd["qty"] = spec.qty_text(lots)
        if tif != "GTC":
            cmd["tif"] = tif
        if stp is not None:
            cmd["stp"] = stp
        self.lines.append(json.dumps(cmd, separators=(",", ":")))
        order = Order(owner, oid, side, price if price is not None else 0, lots, stp)
        fills = self.books[market].new(order, "limit" if price is not None else "market", tif)
        if fills is None:
            self.rejects_expected += 1
            return None
        self._record(fills)
        if (owner, oid) in self.books[market].live:
            self.live_of[owner].append((market, oid))
        return oid, fills

    def cancel(self, owner: str, market: str, oid: str) -> bool:
        if (owner, oid) not in self.books[market].live:
            return False
        self.lines.append(
            json.dumps(
                {"op": "cancel", "market": market, "id": oid, "owner": owner}, separators=(",", ":")
            )
        )
        self.books[market].cancel(owner, oid)
        return True

    def replace(self, owner: str, market: str, oid: str, price: int, lots: int) -> bool:
        spec, book = self.specs[market], self.books[market]
        if (owner, oid) not in book.live or price < 1:
            return False
        lots = spec.fit(price, lots)
        if lots < spec.min_lots:
            return False
        self.lines.append(
            json.dumps(
                {
                    "op": "replace",
                    "market": market,
                    "id": oid,
                    "owner": owner,
                    "price": spec.price_text(price),
                    "qty": spec.qty_text(lots),
                },
                separators=(",", ":"),
            )
        )
        self._record(book.replace(owner, oid, price, lots))
        return True

    def live(self, owner: str, market: str, oid: str | None) -> Order | None:
        return None if oid is None else self.books[market].live.get((owner, oid))

    # -- population ---------------------------------------------------------------------------

    def _make_population(self) -> None:
        rng = self.rng
        markets = list(self.specs)
        weights = [self.specs[m].activity for m in markets]

        self.makers: list[Maker] = []
        for spec in MARKETS:
            for _ in range(spec.makers):
                addr = self.address()
                self.role[addr] = "maker"
                lots = max(spec.min_lots, int(spec.maker_lots * rng.uniform(0.6, 1.6)))
                self.makers.append(
                    Maker(
                        addr,
                        spec.symbol,
                        rng.uniform(*spec.maker_half),
                        lots,
                        inventory_limit=lots * rng.randint(4, 9),
                        skew=rng.uniform(0.4, 1.0) * spec.maker_half[0],
                    )
                )

        # Retail: a long tail (Zipf-like activity), one or two favourite markets each.
        self.retail: list[str] = []
        self.favourite: dict[str, list[str]] = {}
        for _ in range(2600):
            addr = self.address()
            self.role[addr] = "retail"
            self.retail.append(addr)
            favs = rng.choices(markets, weights=weights, k=2)
            self.favourite[addr] = favs if rng.random() < 0.35 else favs[:1]
        retail_w = [1.0 / (i + 30) ** 1.2 for i in range(len(self.retail))]
        self.retail_cw = list(_accumulate(retail_w))

        self.active: list[str] = []
        for _ in range(55):
            addr = self.address()
            self.role[addr] = "active"
            self.active.append(addr)
            self.favourite[addr] = list(dict.fromkeys(rng.choices(markets, weights=weights, k=3)))

        self.bots: list[tuple[str, str]] = []
        for kind in ("momentum", "momentum", "arbitrage", "arbitrage"):
            addr = self.address()
            self.role[addr] = "bot"
            self.bots.append((addr, kind))

        # Background actors: one is drawn per iteration.
        actors: list[tuple[str, Any]] = []
        actor_w: list[float] = []
        for maker in self.makers:
            spec = self.specs[maker.market]
            actors.append(("maker", maker))
            actor_w.append(
                0.44 * (spec.activity**0.6) / sum(s.makers * s.activity**0.6 for s in MARKETS)
            )
        actors.append(("retail", None))
        actor_w.append(0.31)
        actors.append(("active", None))
        actor_w.append(0.15)
        for bot in self.bots:
            actors.append(("bot", bot))
            actor_w.append(0.10 / len(self.bots))
        self.actors = actors
        self.actor_cw = list(_accumulate(actor_w))

        self._make_wash_groups()

    def _group(self, pattern: str, size: int, markets: list[str], lots: float) -> Group:
        name = f"{pattern}{sum(1 for g in self.groups.values() if g.pattern == pattern) + 1}"
        members = []
        for _ in range(size):
            addr = self.address()
            self.role[addr] = "wash"
            self.group_of[addr] = name
            members.append(addr)
        group = Group(name, pattern, members, markets, lots)
        self.groups[name] = group
        return group

    def _make_wash_groups(self) -> None:
        rng = self.rng
        self._group("self_trade", 1, ["SWORD-GEM"], 6)
        self._group("self_trade", 1, ["LAND-ETH"], 9)
        self._group("self_trade", 1, ["PET-USDC"], 2)
        self._group("self_trade", 1, ["RUNE-GEM"], 30)
        self._group("pair", 2, ["LAND-ETH"], 12)
        self._group("pair", 2, ["SKIN-USDC"], 3)
        self._group("pair", 2, ["SWORD-GEM"], 8)
        self._group("pair", 2, ["PET-USDC"], 2)
        self._group("ring", rng.randint(3, 4), ["SKIN-USDC"], 3)
        self._group("ring", rng.randint(5, 6), ["MECH-ETH"], 45)
        self._group("cluster", rng.randint(5, 8), ["LAND-ETH", "MECH-ETH"], 8)
        self._group("farm", rng.randint(9, 13), ["RUNE-GEM"], 18)

    # -- honest behaviour ---------------------------------------------------------------------

    def honest(
        self, wallet: str, market: str, aggression: float, size: float, lifetime: float
    ) -> None:
        """One order from an honest-behaving wallet (retail, active trader, or cover)."""
        rng, spec, book = self.rng, self.specs[market], self.books[market]
        pos = self.pos[(wallet, market)]
        p_sell = 0.5 + 0.3 * math.tanh(pos / (size * 3 + 1))
        side = SELL if rng.random() < p_sell else BUY
        lots = max(spec.min_lots, int(rng.lognormvariate(math.log(size), 0.8)))
        opposite = book.best(other(side))
        fair = self.fair_ticks(market)
        if (
            opposite is not None
            and rng.random() < aggression
            and abs(opposite - fair) < 0.08 * fair
        ):
            slip = rng.choice((0, 0, 0, 1, 2))
            price = opposite + slip if side == BUY else opposite - slip
            tif = "IOC" if rng.random() < 0.6 else "GTC"
        else:
            off = math.exp(rng.uniform(math.log(0.0006), math.log(0.05)))
            price = round(fair * (1 - off)) if side == BUY else round(fair * (1 + off))
            if side == BUY and price >= fair:
                price = fair - 1
            if side == SELL and price <= fair:
                price = fair + 1
            tif = "GTC"
        placed = self.new(wallet, market, side, price, lots, tif)
        if placed and tif == "GTC" and (wallet, placed[0]) in book.live:
            oid = placed[0]
            if rng.random() < 0.85:
                self.later(
                    rng.expovariate(1.0 / lifetime), lambda: self.cancel(wallet, market, oid)
                )

    def retail_action(self) -> None:
        wallet = self.rng.choices(self.retail, cum_weights=self.retail_cw)[0]
        market = self.rng.choice(self.favourite[wallet])
        spec = self.specs[market]
        self.honest(wallet, market, 0.5, spec.retail_lots, 500)

    def active_action(self) -> None:
        rng = self.rng
        wallet = rng.choice(self.active)
        market = rng.choice(self.favourite[wallet])
        spec = self.specs[market]
        mine = [(m, o) for m, o in self.live_of[wallet] if (wallet, o) in self.books[m].live]
        self.live_of[wallet] = mine
        if mine and rng.random() < 0.25:  # move a resting order toward the market
            m, oid = rng.choice(mine)
            order = self.books[m].live[(wallet, oid)]
            fair = self.fair_ticks(m)
            target = round(
                fair * (1 - rng.uniform(0.0005, 0.01) * (1 if order.side == BUY else -1))
            )
            opposite = self.books[m].best(other(order.side))
            if opposite is not None:
                target = (
                    min(target, opposite - 1) if order.side == BUY else max(target, opposite + 1)
                )
            if target != order.price:
                self.replace(wallet, m, oid, target, order.qty)
            return
        self.honest(wallet, market, 0.45, spec.retail_lots * 2.5, 250)

    def bot_action(self, addr: str, kind: str) -> None:
        rng = self.rng
        if kind == "momentum":
            market = rng.choices(["SWORD-GEM", "LAND-ETH", "SKIN-USDC"], weights=[5, 3, 2])[0]
            spec, book, last = self.specs[market], self.books[market], self.last[market]
            if len(last) < 30:
                return
            signal = (sum(list(last)[-8:]) / 8) / (sum(list(last)[-30:]) / 30) - 1
            threshold = 2.5 * spec.tickf / self.fair(market)
            if abs(signal) < threshold:
                return
            side = BUY if signal > 0 else SELL
            opposite = book.best(other(side))
            if opposite is None:
                return
            lots = max(spec.min_lots, int(spec.retail_lots * rng.uniform(1, 4)))
            price = opposite + 1 if side == BUY else opposite - 1
            self.new(addr, market, side, price, lots, "IOC")
            return
        market = rng.choices(list(self.specs), weights=[s.activity**0.5 for s in MARKETS])[0]
        spec, book = self.specs[market], self.books[market]
        fair = self.fair(market) / spec.tickf
        edge = 0.55 * spec.maker_half[0]
        ask, bid = book.best(SELL), book.best(BUY)
        lots = max(spec.min_lots, int(spec.retail_lots * rng.uniform(1, 5)))
        if ask is not None and ask < fair * (1 - edge):
            self.new(addr, market, BUY, ask, lots, "IOC")
        elif bid is not None and bid > fair * (1 + edge):
            self.new(addr, market, SELL, bid, lots, "IOC")

    def maker_action(self, maker: Maker) -> None:
        rng, market = self.rng, maker.market
        spec, book = self.specs[market], self.books[market]
        if rng.random() < 0.01:  # pull the quotes for a moment
            for side in (BUY, SELL):
                oid = maker.orders[side]
                if oid is not None and self.cancel(maker.addr, market, oid):
                    maker.orders[side] = None
            return
        pos = self.pos[(maker.addr, market)]
        center = self.fair(market) * (
            1 - maker.skew * pos / maker.inventory_limit + rng.gauss(0, maker.half * 0.12)
        )
        want = {
            BUY: math.floor(center * (1 - maker.half) / spec.tickf),
            SELL: math.ceil(center * (1 + maker.half) / spec.tickf),
        }
        current = self.live(maker.addr, market, maker.orders[SELL])
        up = current is not None and want[SELL] > current.price
        for side in (SELL, BUY) if up else (BUY, SELL):
            lots = int(maker.lots * rng.uniform(0.6, 1.4))
            signed = pos if side == BUY else -pos
            if signed > maker.inventory_limit:
                lots = 0
            elif signed > maker.inventory_limit / 2:
                lots //= 2
            price = want[side]
            opposite = book.best(other(side))
            if opposite is not None:
                price = min(price, opposite - 1) if side == BUY else max(price, opposite + 1)
            price = max(price, 1)
            oid = maker.orders[side]
            order = self.live(maker.addr, market, oid)
            lots = spec.fit(price, lots)
            if lots < spec.min_lots:
                if order is not None and oid is not None:
                    self.cancel(maker.addr, market, oid)
                    maker.orders[side] = None
                continue
            if order is not None and oid is not None:
                if order.price == price and abs(order.qty - lots) <= max(1, order.qty // 3):
                    continue
                self.replace(maker.addr, market, oid, price, lots)
            else:
                placed = self.new(maker.addr, market, side, price, lots, "POST_ONLY")
                maker.orders[side] = placed[0] if placed else None

    # -- wash trading -------------------------------------------------------------------------

    def transfer(
        self,
        group: Group,
        market: str,
        seller: str,
        buyer: str,
        lots: int,
        tries: int = 0,
        bias: float = 0.5,
    ) -> None:
        """Move `lots` from seller to buyer: one rests inside the spread, the other takes it."""
        rng, book = self.rng, self.books[market]
        if tries == 0:
            self.wash_attempts[group.pattern] += 1
        bid, ask = book.best(BUY), book.best(SELL)
        fair = self.fair_ticks(market)
        room = max(2, round(fair * 0.004))
        low = bid + 1 if bid is not None else max(1, min(fair, ask or fair) - room)
        high = ask - 1 if ask is not None else max(fair, (bid or fair)) + room
        if low > high:
            if tries < 6:
                self.later(
                    rng.randint(3, 40),
                    lambda: self.transfer(group, market, seller, buyer, lots, tries + 1, bias),
                )
            else:
                self.wash_dropped[group.pattern] += 1
            return
        frac = min(1.0, max(0.0, rng.gauss(bias, 0.22)))
        price = low + round((high - low) * frac)
        rest_side = SELL if rng.random() < 0.5 else BUY
        rester, taker = (seller, buyer) if rest_side == SELL else (buyer, seller)
        rest_lots = lots if rng.random() < 0.8 else lots + max(1, int(lots * rng.uniform(0.1, 0.6)))
        placed = self.new(rester, market, rest_side, price, rest_lots)
        if not placed:
            self.wash_dropped[group.pattern] += 1
            return
        oid = placed[0]
        self.wash_orders.add((rester, oid))
        delay = 0 if rng.random() < 0.3 else rng.expovariate(1 / 12)
        self.later(
            delay,
            lambda: self.take(
                group, market, rester, taker, oid, rest_side, price, lots, tries, bias
            ),
        )

    def take(
        self,
        group: Group,
        market: str,
        rester: str,
        taker: str,
        oid: str,
        rest_side: str,
        price: int,
        lots: int,
        tries: int,
        bias: float,
    ) -> None:
        rng, book = self.rng, self.books[market]
        order = book.live.get((rester, oid))
        if order is None:  # filled by outsiders (or gone): the partner gives up
            self.wash_dropped[group.pattern] += 1
            return
        clear = book.first_at_best(rest_side) is order
        if not clear and rng.random() < 0.85:
            self.cancel(rester, market, oid)
            if tries < 5:
                seller, buyer = (rester, taker) if rest_side == SELL else (taker, rester)
                self.later(
                    rng.randint(5, 60),
                    lambda: self.transfer(group, market, seller, buyer, lots, tries + 1, bias),
                )
            else:
                self.wash_dropped[group.pattern] += 1
            return
        qty = min(order.qty, lots)
        side = other(rest_side)
        limit = price
        if rng.random() < 0.3:  # a tick of slack: harmless when the order is first in line
            limit = price + 1 if side == BUY else price - 1
        tif = "IOC" if rng.random() < 0.8 else "GTC"
        placed = self.new(
            taker, market, side, max(1, limit), qty, tif, stp="none" if taker == rester else None
        )
        if placed and (taker, placed[0]) in book.live:
            taker_oid = placed[0]
            self.later(rng.randint(2, 30), lambda: self.cancel(taker, market, taker_oid))
        if (rester, oid) in book.live:  # a residual: left for a while, outsiders may take it
            self.later(rng.randint(20, 500), lambda: self.cancel(rester, market, oid))

    def _jitter(self, lots: float, spread: float, market: str) -> int:
        spec = self.specs[market]
        return max(spec.min_lots, round(lots * self.rng.uniform(1 - spread, 1 + spread)))

    def start_wash(self) -> None:
        rng, span = self.rng, self.target
        warm = int(span * 0.03)
        for group in self.groups.values():
            if group.pattern == "self_trade":
                bursty = rng.random() < 0.5
                self.later(
                    warm + rng.randint(0, 2000), lambda g=group, b=bursty: self.self_trader(g, b)
                )
            elif group.pattern == "pair":
                self.later(warm + rng.randint(0, 3000), lambda g=group: self.pair_leg(g, 0, 0.0))
            elif group.pattern == "ring":
                self.later(warm + rng.randint(0, 3000), lambda g=group: self.ring_lap(g))
            elif group.pattern == "cluster":
                self.later(warm + rng.randint(0, 2000), lambda g=group: self.cluster_trade(g))
            elif group.pattern == "farm":
                starts = sorted(rng.uniform(0.08, 0.9) for _ in range(3))
                for start in starts:
                    self.later(int(span * start), lambda g=group: self.farm_campaign(g))
            for member in group.members:
                self.later(rng.randint(0, span // 3), lambda w=member, g=group: self.cover(w, g))

    def self_trader(self, group: Group, bursty: bool) -> None:
        rng, market, wallet = self.rng, group.markets[0], group.members[0]
        count = rng.randint(3, 8) if bursty else 1
        for i in range(count):
            lots = self._jitter(group.lots, 0.45, market)
            self.later(
                i * rng.randint(4, 30),
                lambda n=lots: self.transfer(group, market, wallet, wallet, n),
            )
        mean_gap = self.target / self.scaled(48) * count
        self.later(rng.expovariate(1 / mean_gap), lambda: self.self_trader(group, bursty))

    def pair_leg(self, group: Group, direction: int, owed: float) -> None:
        """One leg of a round trip; the return leg comes much later, of a similar size."""
        rng, market = self.rng, group.markets[0]
        a, b = group.members if direction == 0 else group.members[::-1]
        total = owed * rng.uniform(0.85, 1.15) if owed else group.lots * rng.uniform(0.6, 1.5)
        chunks = rng.choice((1, 1, 2, 3))
        delay = 0
        for _ in range(chunks):
            lots = max(self.specs[market].min_lots, round(total / chunks * rng.uniform(0.8, 1.2)))
            self.later(delay, lambda n=lots: self.transfer(group, market, a, b, n))
            delay += rng.randint(5, 80)
        if owed:  # the round trip is closed: a new one, either way round, after a pause
            self.later(
                delay + rng.expovariate(1 / (self.target / self.scaled(40))),
                lambda: self.pair_leg(group, rng.randint(0, 1), 0.0),
            )
        else:
            self.later(
                delay + rng.uniform(150, 3000), lambda: self.pair_leg(group, 1 - direction, total)
            )

    def ring_lap(self, group: Group) -> None:
        rng, market = self.rng, group.markets[0]
        members = group.members if rng.random() < 0.7 else group.members[::-1]
        start = rng.randrange(len(members))
        order = members[start:] + members[:start]
        delay = 0
        for i, seller in enumerate(order):
            buyer = order[(i + 1) % len(order)]
            lots = self._jitter(group.lots, 0.12, market)
            self.later(
                delay, lambda s=seller, b=buyer, n=lots: self.transfer(group, market, s, b, n)
            )
            delay += rng.randint(10, 400)
        laps = self.scaled(110) / len(members)
        self.later(delay + rng.expovariate(laps / self.target), lambda: self.ring_lap(group))

    def cluster_trade(self, group: Group) -> None:
        rng = self.rng
        market = rng.choice(group.markets)
        seller, buyer = rng.sample(group.members, 2)
        lots = group.lots if market == group.markets[0] else group.lots * 6
        self.transfer(group, market, seller, buyer, self._jitter(lots, 0.6, market))
        self.later(
            rng.expovariate(self.scaled(260) / self.target), lambda: self.cluster_trade(group)
        )

    def farm_campaign(self, group: Group) -> None:
        rng, market = self.rng, group.markets[0]
        count = int(self.scaled(140) * rng.uniform(0.7, 1.3))
        delay = 0.0
        for i in range(count):
            seller, buyer = rng.sample(group.members, 2)
            lots = self._jitter(group.lots, 0.5, market)
            bias = 0.45 + 0.45 * i / count  # later trades in the upper part of the spread
            self.later(
                delay,
                lambda s=seller, b=buyer, n=lots, x=bias: self.transfer(
                    group, market, s, b, n, 0, x
                ),
            )
            if rng.random() < 0.08:  # a farm wallet lifts an outsider's ask: the pump
                wallet = rng.choice(group.members)
                self.later(delay + 1, lambda w=wallet: self._lift(w, market))
            delay += rng.expovariate(1 / 14)

    def _lift(self, wallet: str, market: str) -> None:
        spec, book = self.specs[market], self.books[market]
        ask = book.best(SELL)
        if ask is not None:
            self.new(wallet, market, BUY, ask, max(spec.min_lots, int(spec.retail_lots)), "IOC")

    def cover(self, wallet: str, group: Group) -> None:
        rng = self.rng
        if rng.random() < 0.6:
            market = rng.choice(group.markets)
        else:
            market = rng.choices(list(self.specs), weights=[s.activity for s in MARKETS])[0]
        self.honest(wallet, market, 0.5, self.specs[market].retail_lots * 1.5, 300)
        self.later(
            rng.expovariate(self.scaled(14) / self.target), lambda: self.cover(wallet, group)
        )

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> None:
        for maker in self.makers:
            self.maker_action(maker)
        self.start_wash()
        while self.now < self.target:
            self.step_fair()
            kind, actor = self.rng.choices(self.actors, cum_weights=self.actor_cw)[0]
            if kind == "maker":
                self.maker_action(actor)
            elif kind == "retail":
                self.retail_action()
            elif kind == "active":
                self.active_action()
            else:
                self.bot_action(*actor)
            self.run_due()

    def is_wash(self, buyer: str, seller: str) -> bool:
        if buyer == seller:
            return True
        group = self.group_of.get(buyer)
        return group is not None and group == self.group_of.get(seller)

    def noise(self) -> dict[str, int]:
        """Trades that blur the wash groups: outsiders on wash orders, wash wallets' cover."""
        outsider_on_wash_order = cover = 0
        for fill in self.fills:
            if self.is_wash(fill.buyer, fill.seller):
                continue
            if (fill.maker, fill.maker_oid) in self.wash_orders:
                outsider_on_wash_order += 1
            elif fill.buyer in self.group_of or fill.seller in self.group_of:
                cover += 1
        return {
            "outsider_fills_of_wash_orders": outsider_on_wash_order,
            "other_trades_of_wash_wallets": cover,
        }

    def pattern(self, buyer: str) -> str:
        group = self.group_of.get(buyer)
        return self.groups[group].pattern if group else "self_trade"


def _accumulate(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


# --------------------------------------------------------------------------------------------
# Through the CLI
# --------------------------------------------------------------------------------------------


def mnode_path(given: str | None) -> str:
    if given:
        return given
    beside = Path(sys.executable).parent / "mnode"
    if beside.exists():
        return str(beside)
    found = shutil.which("mnode")
    if not found:
        sys.exit("holdout_b: no mnode found (pass --mnode PATH)")
    return found


def run_cli(args: list[str], stdout: Any = subprocess.PIPE) -> str:
    proc = subprocess.run(args, stdout=stdout, stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(
            f"holdout_b: {' '.join(args[:3])} ... exit {proc.returncode}: "
            f"{proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout if stdout is subprocess.PIPE else ""


def write_config(home: Path) -> None:
    """Keep the generated config.toml up to its first [[markets]] table; append ours."""
    config = home / "config.toml"
    kept = []
    for line in config.read_text().splitlines():
        if line.strip().startswith("[[markets]]"):
            break
        kept.append(line)
    config.write_text("\n".join(kept).rstrip() + "\n\n" + "\n".join(s.toml() for s in MARKETS))


def ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def f1(p: float | None, r: float | None) -> float | None:
    if not p or not r:
        return 0.0 if p is not None and r is not None else None
    return round(2 * p * r / (p + r), 4)


def score(
    sim: Market, trades: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> dict[str, Any]:
    wash: dict[int, str] = {}
    wash_wallets: set[str] = set()
    market_trades: Counter[str] = Counter()
    market_wash: Counter[str] = Counter()
    for t in trades:
        seq, buyer, seller = int(t["seq"]), t["buyer"], t["seller"]
        market_trades[t["market"]] += 1
        if sim.is_wash(buyer, seller):
            wash[seq] = sim.pattern(buyer)
            wash_wallets.update((buyer, seller))
            market_wash[t["market"]] += 1

    named: set[int] = set()
    flagged_wallets: set[str] = set()
    any_alert_wallets: set[str] = set()
    anomalous: set[str] = set()
    detectors: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        det = alert["detector"]
        wallets = set(alert.get("wallets") or [])
        any_alert_wallets |= wallets
        seqs = {int(s) for s in alert.get("trades") or []}
        entry = detectors.setdefault(
            det, {"alerts": 0, "trades": set(), "wallets": set(), "severity": Counter()}
        )
        entry["alerts"] += 1
        entry["trades"] |= seqs
        entry["wallets"] |= wallets
        entry["severity"][alert.get("severity")] += 1
        if det == "anomalous_wallets":
            anomalous |= wallets
        elif det not in EXCLUDED_FROM_TRADES:
            named |= seqs
            flagged_wallets |= wallets

    tp = len(named & wash.keys())
    precision, recall = ratio(tp, len(named)), ratio(tp, len(wash))
    wtp = len(flagged_wallets & wash_wallets)
    wp, wr = ratio(wtp, len(flagged_wallets)), ratio(wtp, len(wash_wallets))

    per_pattern: dict[str, Any] = {}
    for pattern in PATTERNS:
        seqs = {s for s, p in wash.items() if p == pattern}
        members = {
            w
            for w in wash_wallets
            if w in sim.group_of and sim.groups[sim.group_of[w]].pattern == pattern
        }
        per_pattern[pattern] = {
            "trades": len(seqs),
            "found": len(seqs & named),
            "recall": ratio(len(seqs & named), len(seqs)),
            "wallets": len(members),
            "wallets_found": len(members & flagged_wallets),
        }

    def role_counts(wallets: set[str]) -> dict[str, int]:
        counts = Counter(sim.role.get(w, "unknown") for w in wallets)
        return {r: counts.get(r, 0) for r in ("wash", "bot", "maker", "active", "retail")}

    makers = {m.addr for m in sim.makers}
    return {
        "trades": len(trades),
        "wash_trades": len(wash),
        "wash_share": ratio(len(wash), len(trades)),
        "wash_wallets": len(wash_wallets),
        "trade": {
            "precision": precision,
            "recall": recall,
            "f1": f1(precision, recall),
            "named": len(named),
            "true_positives": tp,
        },
        "wallet": {
            "precision": wp,
            "recall": wr,
            "f1": f1(wp, wr),
            "flagged": len(flagged_wallets),
            "true_positives": wtp,
            "flagged_by_role": role_counts(flagged_wallets),
        },
        "per_pattern": per_pattern,
        "makers": {
            "count": len(makers),
            "flagged_by_any_alert": len(makers & any_alert_wallets),
            "flagged": sorted(makers & any_alert_wallets),
        },
        "anomalous_wallets": {
            "flagged": len(anomalous),
            **role_counts(anomalous),
            "honest": sum(1 for w in anomalous if sim.role.get(w) in ("active", "retail")),
            "wash_by_pattern": {
                pattern: sum(
                    1
                    for w in anomalous & wash_wallets
                    if w in sim.group_of and sim.groups[sim.group_of[w]].pattern == pattern
                )
                for pattern in PATTERNS
            },
        },
        "detectors": {
            det: {
                "alerts": e["alerts"],
                "trades": len(e["trades"]),
                "trade_precision": ratio(len(e["trades"] & wash.keys()), len(e["trades"])),
                "wash_trades_found": len(e["trades"] & wash.keys()),
                "wallets": len(e["wallets"]),
                "wallets_by_role": role_counts(e["wallets"]),
                "severity": dict(e["severity"]),
            }
            for det, e in sorted(detectors.items())
        },
        "markets": {
            m: {
                "trades": market_trades[m],
                "wash": market_wash[m],
                "wash_share": ratio(market_wash[m], market_trades[m]),
            }
            for m in sim.specs
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument(
        "--commands", type=int, default=50_000, help="commands to generate (default 50000)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for orders.ndjson, the node home (DIR/home, replaced), "
        "the replay events and results.json (default: a new temporary folder)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--mnode",
        default=None,
        help="the mnode command (default: beside this Python, else on PATH)",
    )
    args = parser.parse_args()
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="holdout_b_"))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    mnode = mnode_path(args.mnode)
    timings: dict[str, float] = {}

    start = time.monotonic()
    sim = Market(args.seed, args.commands)
    sim.run()
    orders = out / "orders.ndjson"
    orders.write_text("\n".join(sim.lines) + "\n")
    labels = {
        "groups": {
            g.name: {"pattern": g.pattern, "markets": g.markets, "members": g.members}
            for g in sim.groups.values()
        },
        "roles": sim.role,
    }
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    timings["generate_s"] = round(time.monotonic() - start, 2)

    home = out / "home"
    if home.exists():
        shutil.rmtree(home)
    run_cli([mnode, "init", str(home)])
    write_config(home)

    start = time.monotonic()
    events_path = out / "replay_events.ndjson"
    with events_path.open("w") as sink:
        run_cli([mnode, "replay", str(orders), "--home", str(home)], stdout=sink)
    timings["replay_s"] = round(time.monotonic() - start, 2)
    rejects: Counter[str] = Counter()
    replay_trades: list[tuple[str, str, str]] = []
    with events_path.open() as source:
        for line in source:
            event = json.loads(line)
            if event["event"] == "rejected":
                rejects[event["reason"]] += 1
            elif event["event"] == "trade":
                buyer, seller = (
                    (event["taker_owner"], event["maker_owner"])
                    if event["aggressor"] == BUY
                    else (event["maker_owner"], event["taker_owner"])
                )
                replay_trades.append((event["market"], buyer, seller))

    start = time.monotonic()
    alerts = json.loads(run_cli([mnode, "integrity", "scan", "--home", str(home), "--json"]))
    timings["scan_s"] = round(time.monotonic() - start, 2)
    trades = json.loads(
        run_cli(
            [
                mnode,
                "sql",
                "--home",
                str(home),
                "SELECT seq, market, buyer, seller FROM trades ORDER BY seq",
                "--json",
            ]
        )
    )
    (out / "alerts.json").write_text(json.dumps(alerts, indent=1))

    model = [(f.market, f.buyer, f.seller) for f in sim.fills]
    stored = [(t["market"], t["buyer"], t["seller"]) for t in trades]
    agree = sum(1 for a, b in zip(model, stored, strict=False) if a == b)
    result: dict[str, Any] = {
        "seed": args.seed,
        "commands": len(sim.lines),
        "out": str(out),
        "book_model": {
            "trades_model": len(model),
            "trades_replayed": len(replay_trades),
            "trades_stored": len(stored),
            "matching": agree,
            "exact": model == stored == replay_trades,
        },
        "rejects": dict(rejects),
        "noise": sim.noise(),
        "wash_transfers": {"attempted": dict(sim.wash_attempts), "dropped": dict(sim.wash_dropped)},
        **score(sim, trades, alerts),
        "timings": timings,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_summary(result)
    return 0


def print_summary(r: dict[str, Any]) -> None:
    t, w = r["trade"], r["wallet"]
    print(
        f"seed {r['seed']}: {r['commands']} commands, {r['trades']} trades, "
        f"{r['wash_trades']} wash ({r['wash_share']}), {r['wash_wallets']} wash wallets; "
        f"book model exact: {r['book_model']['exact']}; rejects {r['rejects']}"
    )
    print(
        f"  trades  precision {t['precision']}  recall {t['recall']}  F1 {t['f1']}  "
        f"(named {t['named']})"
    )
    print(
        f"  wallets precision {w['precision']}  recall {w['recall']}  F1 {w['f1']}  "
        f"flagged by role {w['flagged_by_role']}"
    )
    for pattern, p in r["per_pattern"].items():
        print(
            f"  {pattern:<11} trades {p['found']}/{p['trades']} recall {p['recall']}  "
            f"wallets {p['wallets_found']}/{p['wallets']}"
        )
    print(f"  noise {r['noise']}")
    m = r["makers"]
    print(f"  makers flagged by any alert: {m['flagged_by_any_alert']}/{m['count']}")
    print(f"  anomalous_wallets: {r['anomalous_wallets']}")
    for det, d in r["detectors"].items():
        print(
            f"  {det:<18} alerts {d['alerts']:>4}  trades {d['trades']:>5}  "
            f"precision {d['trade_precision']}  wallets {d['wallets_by_role']}"
        )
    print(f"  timings {r['timings']}")


if __name__ == "__main__":
    raise SystemExit(main())

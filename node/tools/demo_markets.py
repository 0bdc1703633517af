"""The demo's own markets beside the flow's three, and what the journal says of their quotes.

- FRAC-USDC (shares of a vaulted artwork) is quoted by a constant-product pool, and ITEM-USDC
  (game items) by the market maker: each a `[liquidity.NAME]` instance the node's liquidity
  process runs from the node's start, a peer of its own with one owner. Nobody else rests an
  order there (the demo's takers' orders are immediate-or-cancel, tools/demo_traders.py), so
  the book of each market is its instance's quotes. The maker leans on no drift of its own
  mid and skews half as much to one-sided flow as by default: alone in its market, its mid is
  its own last fill, and the default lean moved its bids above its resting asks after a
  single fill (self-trade prevention then cancelled them).
- DEED-USDC (tokenized property deeds) takes signed orders only; its trades settle on the
  embedded chain (tools/demo_chain.py), whose contract and tokens are written here at the
  addresses their deployment will have.

`quote_coverage` replays the journal for those markets after the run, with each commit's time:
for each instance, how long either side of its book was empty, overall and through the drops,
from the node's own record rather than from what a client happened to see.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core.engine import Engine
from ..core.events import Trade
from ..home.layout import Home
from ..store.lmdb_store import Store
from .demo_chain import EMBEDDED_CHAIN_ID, planned_addresses

LIQUIDITY = {"pool": ("amm", "FRAC-USDC"), "maker": ("market_maker", "ITEM-USDC")}
"""Instance name (also its peer's) -> (strategy, market)."""
LIQUIDITY_OWNERS = {"pool": "0x5001", "maker": "0x5002"}
SETTLED_MARKET = "DEED-USDC"
CONTINUOUS_S = 1.0
"""A book with neither side empty for longer than this quoted continuously: the instance
re-quotes at once after a fill, so a side a taker swept is back within a round trip."""
LOT_UNITS, TICK_UNITS = 10**18, 10**4
"""DEED-USDC's lot (1) in the 18-decimal base token, and its tick (0.01) for one lot in the
6-decimal quote token."""


def demo_tables() -> str:
    """The `[settlement]` and `[liquidity.NAME]` tables of the demo's home."""
    return f"""
[settlement]
chain_id = {EMBEDDED_CHAIN_ID}
contract = "{planned_addresses()["settlement"]}"
verifier_workers = 1

[liquidity.pool]
strategy = "amm"
market = "FRAC-USDC"
peer = "pool"
owner = "{LIQUIDITY_OWNERS["pool"]}"
base = "2000"
quote = "200000"

[liquidity.maker]
strategy = "market_maker"
market = "ITEM-USDC"
peer = "maker"
owner = "{LIQUIDITY_OWNERS["maker"]}"
base = "1000"
quote = "100000"
start_price = "100"
max_inventory = 600
drift_horizon_s = 0.0
flow_skew = 0.5
"""


def demo_markets() -> str:
    """The `[[markets]]` tables of the demo's own markets."""
    addresses = planned_addresses()
    return f"""
[[markets]]
symbol = "FRAC-USDC"       # shares of a vaulted artwork, quoted by a constant-product pool
base = "FRAC"
quote = "USDC"
tick_size = "0.01"
lot_size = "1"

[[markets]]
symbol = "ITEM-USDC"       # game items, quoted by a market maker
base = "ITEM"
quote = "USDC"
tick_size = "0.01"
lot_size = "1"

[[markets]]
symbol = "{SETTLED_MARKET}"       # tokenized property deeds, settled on the embedded chain
base = "DEED"
quote = "USDC"
tick_size = "0.01"
lot_size = "1"
signatures = "required"
base_token = "{addresses["base_token"]}"
quote_token = "{addresses["quote_token"]}"
lot_units = "{LOT_UNITS}"
tick_units = "{TICK_UNITS}"
"""


@dataclass
class SideWatch:
    """One side of one book over the commits: since when it has been empty, and its gaps."""

    empty_since: float | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)

    def see(self, quoted: bool, at: float) -> None:
        if quoted and self.empty_since is not None:
            self.gaps.append((self.empty_since, at))
            self.empty_since = None
        elif not quoted and self.empty_since is None:
            self.empty_since = at


def quote_coverage(home: Home, start: float, end: float,
                   drops: Iterable[tuple[float, float]]) -> dict[str, dict]:  # fmt: skip
    """For each liquidity instance, from the journal (the node stopped or running): when its
    book first had both sides (seconds from `start`, the flow's start in epoch seconds;
    negative: before it), its longest stretch with a side empty between `start` and `end`
    overall and overlapping `drops`, the share of that time it quoted both sides, its trades,
    and whether it quoted continuously (no side empty longer than `CONTINUOUS_S`)."""
    markets = {market: name for name, (_, market) in LIQUIDITY.items()}
    watches = {market: (SideWatch(), SideWatch()) for market in markets}
    first_two_sided: dict[str, float] = {}
    trades = dict.fromkeys(markets, 0)
    engine = Engine()
    config = home.config()
    with Store(home.store_path(config), readonly=True) as store:
        commands = iter(store.journal())
        pending = next(commands, None)
        for length, _, _, time_ns in store.commits():
            at = time_ns / 1e9
            out: list = []
            while pending is not None and pending[0] < length:
                market = getattr(pending[1], "market", None)
                if market is None or market in markets:
                    engine.process(pending[1], out)
                pending = next(commands, None)
            for event in out:
                if type(event) is Trade and start <= at <= end:
                    trades[event.market] += 1
            for market, (bids, asks) in watches.items():
                book = engine.books.get(market)
                has_bid = book is not None and book.bids.best_price() is not None
                has_ask = book is not None and book.asks.best_price() is not None
                bids.see(has_bid, at)
                asks.see(has_ask, at)
                if has_bid and has_ask:
                    first_two_sided.setdefault(market, at)
    drops = list(drops)
    return {
        markets[market]: book_coverage(watch, first_two_sided.get(market), trades[market],
                                       start, end, drops)
        | {"market": market, "strategy": LIQUIDITY[markets[market]][0]}
        for market, watch in watches.items()
    }  # fmt: skip


def book_coverage(watch: tuple[SideWatch, SideWatch], first: float | None, trades: int,
                  start: float, end: float, drops: list[tuple[float, float]]) -> dict:  # fmt: skip
    """The figures of one book between `start` and `end`, its sides' watches having seen every
    commit (a gap still open runs to `end`; `first`: when it first had both sides)."""
    gaps = []
    for side in watch:
        still = [(side.empty_since, end)] if side.empty_since is not None else []
        gaps += [(max(a, start), min(b, end)) for a, b in side.gaps + still
                 if b > start and a < end]  # fmt: skip
    in_drops = [(max(a, d0), min(b, d1)) for a, b in gaps for d0, d1 in drops if b > d0 and a < d1]
    span = end - start
    empty = _union_length(gaps)
    longest = max((b - a for a, b in gaps), default=span if first is None else 0.0)
    return {
        "two_sided_from_s": None if first is None else round(first - start, 3),
        "longest_empty_side_s": round(longest, 3),
        "longest_empty_side_in_drop_s": round(max((b - a for a, b in in_drops), default=0.0), 3),
        "two_sided_share": round(1 - empty / span, 4) if first is not None and span else 0.0,
        "trades": trades,
        "quoted_continuously": first is not None and first <= start and longest <= CONTINUOUS_S,
    }


def _union_length(spans: list[tuple[float, float]]) -> float:
    """The time covered by `spans` (overlaps counted once)."""
    total, reached = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > reached:
            total += b - max(a, reached)
            reached = b
    return total

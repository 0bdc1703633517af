"""`mnode liquidity eval`: the liquidity strategies on seeded flows (liquidity_traces.py)
against a real node (real LMDB, ZeroMQ on loopback, CURVE), each strategy a peer of its own.

Each (trace, seed) runs one node with three markets, one per strategy: the adaptive market
maker, the same maker with a fixed spread (its volatility, flow and inventory terms off: the
baseline), and the AMM. Every market gets the same flow, so the makers are compared on the
same draws. A step is one second of the quoters' clock: the street re-quotes around F, each
quoter refreshes, then the takers act and the quoters absorb their fills.

Measures per strategy (quote-asset amounts; F is the trace's fair price):
- spread_bps: the time-weighted quoted spread, (best own ask - best own bid) / F, averaged
  over the steps it quoted both sides (steps are equal in time); two_sided: the share of such
  steps; depth: its mean resting lots;
- fill_rate: the share of the takers' orders in its market that traded with it;
- inventory: the position's range against `max_inventory`, breaches = steps beyond it;
- adverse selection: for each fill, the move of F over the next `horizon` steps in the taker's
  direction times the lots, summed (the price-impact part of the effective spread, Huang and
  Stoll 1997): what the maker loses to better-informed takers, apart from the spread it earns;
- pnl: the holdings' value at the final F minus the starting holdings' value at the final F;
- mismatch: the ledger against the fills the takers' replies report, lot and tick-lot exact
  (for the AMM, its reserves against its fills).
"""

from __future__ import annotations

import math
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketnode.plugins.host import LIQUIDITY, plugin_host

from ..client import Client, address_of_home
from ..home.keys import PEERS_FOLDER, create_key_pair, load_key_pair
from ..home.layout import Home
from ..home.peers import Peer, load_allowlist, save_allowlist
from ..liquidity.config import parse_instances
from ..liquidity.quoter import Quoter
from ..server.node import Node
from .liquidity_traces import FlowShape, Step, make_steps

STRATEGIES = {
    "adaptive": ("ADAPT-USD", "market_maker", {}),
    "fixed": ("FIXED-USD", "market_maker",
              {"gamma": 0.0, "volatility_weight": 0.0, "flow_widen": 0.0, "flow_skew": 0.0,
               "drift_horizon_s": 0.0}),
    "amm": ("POOL-USD", "amm", {}),
}  # fmt: skip
MAKER_LIMITS = {"max_inventory": 600}
"""Both makers may hold up to 60% of their starting base more or less: a limit the fixed
baseline does not reach on most trending runs, so that it is compared quoting both sides (at a
binding limit a maker stops quoting the side the trend runs into, and its adverse selection
stops with it, whatever its spread)."""
TICK = 0.01
START_BASE, START_QUOTE = 1000, 100_000
"""Each strategy's holdings at the start (lots, quote asset): half the value in the base."""
NODE_CONFIG = """
[endpoints]
orders = "tcp://127.0.0.1:*"
market_data = "tcp://127.0.0.1:*"
admin = "tcp://127.0.0.1:*"

[analytics]
enabled = false

[store]
sync = "none"
"""
MARKET = """
[[markets]]
symbol = "{symbol}"
base = "{base}"
quote = "USD"
tick_size = "0.01"
lot_size = "1"
"""
TAKERS = {"street": "0x3000", "noise": "0x3001", "informed": "0x3002"}


@dataclass
class Tally:
    """One strategy's figures over a run."""

    spreads: list[float] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    steps: int = 0
    taker_orders: int = 0
    taker_orders_filled: int = 0
    fills: int = 0
    lots: int = 0
    adverse: float = 0.0
    positions: list[int] = field(default_factory=list)
    base: int = START_BASE
    quote: int = int(START_QUOTE / TICK)
    self_trades: int = 0
    awaited: int = 0
    """The latest trade seq the takers saw against this strategy."""


def run_flow(trace: str, seed: int, shape: FlowShape, folder: Path) -> dict[str, Any]:
    """One node, three strategies, one trace: each strategy's figures."""
    steps = make_steps(trace, seed, shape)
    home = _home(folder / f"{trace}-{seed}")
    node = Node(home, home.config())
    node.start()
    serving = threading.Thread(target=node.serve, name="node", daemon=True)
    serving.start()
    clock = _Clock()
    clients: list[Client] = []
    try:
        address = address_of_home(home)
        keys = _keys(home)
        takers = {name: Client(address, keys[name]) for name in TAKERS}
        clients += takers.values()
        quoters = {}
        tallies = {name: Tally() for name in STRATEGIES}
        for name, (market, strategy, settings) in STRATEGIES.items():
            table = {"strategy": strategy, "market": market, "peer": name, "owner": _owner(name),
                     "base": str(START_BASE), "quote": str(START_QUOTE), **settings,
                     **(MAKER_LIMITS if strategy == "market_maker" else {})}  # fmt: skip
            instance = parse_instances({name: table}, "eval", plugin_host(LIQUIDITY))[0]
            client = Client(address, keys[name])
            clients.append(client)
            quoters[name] = Quoter(instance, client, plugin_host(LIQUIDITY), clock=clock,
                                   on_trade=_own_take(tallies[name], instance.owner))  # fmt: skip
        for index, step in enumerate(steps):
            clock.now = float(index)
            _run_step(step, shape, takers, quoters, tallies, index)
        return {name: _figures(tallies[name], quoters[name], steps, shape) for name in STRATEGIES}
    finally:
        for client in clients:
            client.close()
        node.stop()
        serving.join(timeout=30)


class _Clock:
    """The quoters' clock: the step's second."""

    now = 0.0

    def __call__(self) -> float:
        return self.now


def _run_step(step: Step, shape: FlowShape, takers: dict[str, Client], quoters: dict[str, Quoter],
              tallies: dict[str, Tally], index: int) -> None:  # fmt: skip
    fair = step.fair / TICK
    street = []
    for quoter in quoters.values():
        market = quoter.instance.market
        for side, price in (("buy", math.floor(fair * (1 - shape.street_width))),
                            ("sell", math.ceil(fair * (1 + shape.street_width)))):  # fmt: skip
            street.append({"op": "cancel", "market": market, "id": f"{side}{index - 1}",
                           "owner": TAKERS["street"]})  # fmt: skip
            street.append(_order(market, "street", f"{side}{index}", side, price, 50, "GTC"))
    _record(takers["street"].submit(street).events, None, quoters, tallies, steps_ahead=step)
    for name, quoter in quoters.items():
        quoter.refresh()
        _measure(tallies[name], quoter, fair)
    for name, quoter in quoters.items():
        market = quoter.instance.market
        orders = []
        if step.informed:
            order = _informed(quoter, step, shape, market, f"i{index}")
            if order is not None:
                orders.append(("informed", order))
        if step.noise is not None:
            side, qty = step.noise
            limit = fair * (1.03 if side == "buy" else 0.97)
            orders.append(("noise", _order(market, "noise", f"n{index}", side, round(limit), qty)))
        for taker, order in orders:
            tallies[name].taker_orders += 1
            events = takers[taker].submit([order]).events
            if _record(events, name, quoters, tallies, steps_ahead=step):
                tallies[name].taker_orders_filled += 1
        _await_fills(quoter, tallies[name])


def _informed(
    quoter: Quoter, step: Step, shape: FlowShape, market: str, order_id: str
) -> dict | None:
    """A taker who knows F `horizon` steps ahead buys below it and sells above it."""
    ahead = step.fair_ahead / TICK
    fair = step.fair / TICK
    asks = [o.price for o in quoter.orders.values() if o.side == "sell"]
    bids = [o.price for o in quoter.orders.values() if o.side == "buy"]
    best_ask = min([*asks, math.ceil(fair * (1 + shape.street_width))])
    best_bid = max([*bids, math.floor(fair * (1 - shape.street_width))])
    if ahead > best_ask:
        return _order(market, "informed", order_id, "buy", math.floor(ahead),
                      shape.informed_qty)  # fmt: skip
    if ahead < best_bid:
        return _order(market, "informed", order_id, "sell", math.ceil(ahead),
                      shape.informed_qty)  # fmt: skip
    return None


def _order(market: str, taker: str, order_id: str, side: str, price: int, qty: int,
           tif: str = "IOC") -> dict[str, Any]:  # fmt: skip
    return {"op": "new", "market": market, "id": order_id, "owner": TAKERS[taker], "side": side,
            "price": f"{price * TICK:.2f}", "qty": str(qty), "tif": tif}  # fmt: skip


def _record(events: list, name: str | None, quoters: dict[str, Quoter],
            tallies: dict[str, Tally], steps_ahead: Step) -> bool:  # fmt: skip
    """Book the takers' trades against each strategy; whether `name`'s was traded."""
    owners = {quoter.instance.owner: strategy for strategy, quoter in quoters.items()}
    traded = False
    for event in events:
        if event.__struct_config__.tag != "trade":
            continue
        if event.maker_owner == event.taker_owner:
            for strategy in {owners.get(event.maker_owner)} - {None}:
                tallies[strategy].self_trades += 1
        strategy = owners.get(event.maker_owner)
        if strategy is None:
            continue
        traded = traded or strategy == name
        tally = tallies[strategy]
        price, qty = round(float(event.price) / TICK), int(event.qty)
        direction = 1 if event.aggressor == "buy" else -1
        tally.fills += 1
        tally.lots += qty
        tally.base -= direction * qty
        tally.quote += direction * qty * price
        tally.adverse += direction * (steps_ahead.fair_ahead - steps_ahead.fair) * qty
        tally.awaited = max(tally.awaited, event.seq)
    return traded


def _own_take(tally: Tally, owner: str) -> Callable[[Any, str], None]:
    """Book a strategy's own quote taking what rests (in its own reply, which the takers do
    not see): a quote the book moved through."""

    def booked(event: Any, side: str) -> None:
        if event.taker_owner != owner or event.maker_owner == owner:
            return
        price, qty = round(float(event.price) / TICK), int(event.qty)
        direction = 1 if side == "buy" else -1
        tally.base += direction * qty
        tally.quote -= direction * qty * price

    return booked


def _await_fills(quoter: Quoter, tally: Tally, within_s: float = 10.0) -> None:
    """Until the quoter has heard of every fill the takers saw (reports follow replies)."""
    for _ in range(int(within_s * 10)):
        if quoter.last_trade_seq >= tally.awaited:
            return
        quoter.absorb(timeout_ms=100)
    raise RuntimeError(f"{quoter.instance.name} did not hear of its fill {tally.awaited}")


def _measure(tally: Tally, quoter: Quoter, fair: float) -> None:
    tally.steps += 1
    asks = [o.price for o in quoter.orders.values() if o.side == "sell"]
    bids = [o.price for o in quoter.orders.values() if o.side == "buy"]
    if asks and bids:
        tally.spreads.append((min(asks) - max(bids)) / fair * 1e4)
    tally.depth.append(sum(o.qty for o in quoter.orders.values()))
    tally.positions.append(quoter.ledger.position)


def _figures(tally: Tally, quoter: Quoter, steps: list[Step], shape: FlowShape) -> dict:
    final = steps[-1].fair_ahead / TICK
    ledger = quoter.ledger
    pnl = (ledger.base * final + ledger.quote) - (START_BASE * final + START_QUOTE / TICK)
    limit = quoter.instance.settings.get("max_inventory")
    tally.positions.append(ledger.position)
    return {
        "spread_bps": _mean(tally.spreads),
        "two_sided": round(len(tally.spreads) / max(1, tally.steps), 4),
        "depth": _mean(tally.depth),
        "fill_rate": round(tally.taker_orders_filled / max(1, tally.taker_orders), 4),
        "fills": tally.fills,
        "lots": tally.lots,
        "inventory_min": min(tally.positions),
        "inventory_max": max(tally.positions),
        "max_inventory": limit,
        "inventory_breaches": 0 if limit is None else sum(abs(p) > limit for p in tally.positions),
        "adverse_selection": round(tally.adverse, 4),
        "pnl": round(pnl * TICK, 4),
        "realized": round(ledger.realized * TICK, 4),
        "halted": quoter.halted,
        "mismatch": abs(ledger.base - tally.base) + abs(ledger.quote - tally.quote),
        "self_trades": tally.self_trades + quoter.self_trades,
        "rejected": dict(quoter.rejected),
    }


def _mean(values: list) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def _owner(strategy: str) -> str:
    return f"0x{4000 + list(STRATEGIES).index(strategy)}"


def _home(path: Path) -> Home:
    home = Home.create(path)
    markets = "".join(MARKET.format(symbol=m, base=m.split("-")[0]) for m, _, _ in
                      STRATEGIES.values())  # fmt: skip
    home.config_path.write_text(NODE_CONFIG.strip() + "\n" + markets)
    config = home.config()
    allowlist = load_allowlist(home.peers_path(config))
    owners = {**{name: owner for name, owner in TAKERS.items()},
              **{name: _owner(name) for name in STRATEGIES}}  # fmt: skip
    for name, owner in owners.items():
        key = create_key_pair(home.keys_path(config) / PEERS_FOLDER, name)
        allowlist = allowlist.with_peer(Peer(name, key.public_text, (owner,)))
    save_allowlist(home.peers_path(config), allowlist)
    return home


def _keys(home: Home) -> dict:
    folder = home.keys_path(home.config()) / PEERS_FOLDER
    names = [*TAKERS, *STRATEGIES]
    return {name: load_key_pair(folder / f"{name}.key_secret") for name in names}


def evaluate(seeds: list[int], traces: list[str], shape: FlowShape,
             progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:  # fmt: skip
    """Every trace on every seed, and the goals' worst cases (liquidity_summary.py)."""
    from .liquidity_summary import summarise

    runs = []
    with tempfile.TemporaryDirectory(prefix="mnode-liquidity-") as folder:
        for trace in traces:
            for seed in seeds:
                figures = run_flow(trace, seed, shape, Path(folder))
                runs.append({"trace": trace, "seed": seed, "strategies": figures})
                progress(f"{trace} seed {seed}: " + ", ".join(
                    f"{name} spread {f['spread_bps']:.1f} bps, adverse {f['adverse_selection']:.2f}"
                    for name, f in figures.items()))  # fmt: skip
    return summarise(runs, seeds, shape)

"""Trade cycles (Victor and Weintraud, WWW 2021): per market and time window, the seller -> buyer
graph's strongly connected components of more than one wallet whose members all end with a net
position within 1% of the component's mean trade size: volume that went round and came back.

The graph holds only partners' trades (see `partners`): over a day of a busy market, honest
traders and makers join one giant component whose members' positions never balance, and a ring
inside it would go unseen. A component that does not balance is peeled, its most unbalanced
member removed and the rest searched again, so a ring joined by an outsider is still found.

Real rings rarely balance to the lot: an honest taker snipes a leg, a size is off by one. A
component whose members are each within `volume_net_share` of their own volume in it (default
20%) is reported too, as medium severity; the paper's criterion, within `net_share` (1%) of the
mean trade size, is high severity.

A market maker in a quiet hour may fill one trader's orders both ways, a cycle of a few trades
that balances; but a maker requotes all day, while a wash wallet's orders are meant to fill. As
in `wash_clusters`, a wallet that cancels or replaces more than `max_requotes_per_trade` orders
per trade in the market and window is left out of the graph. So is a known maker (see
`partners`), which may refresh its quotes rarely (a tolerance keeps them) and fill the same few
traders both ways: its trades are no edge, and a ring that passes through it as well still goes
round among its other members.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from .alerts import Alert, decimal_text
from .hookspecs import declare_settings, hookimpl, settings_of
from .partners import (
    PartnerTrade,
    net_positions,
    partner_trades,
    total_notional,
)

NAME = "trade_cycles"
DEFAULTS = {
    "windows_s": [3600, 86400],
    "net_share": 0.01,
    "volume_net_share": 0.2,
    "min_pair_share": 0.3,
    "min_trades": 3,
    "max_requotes_per_trade": 0.5,
}

MAKERS = """
SELECT market, bucket, wallet FROM window_wallets
WHERE window_s = $window AND requotes > $requotes * trades
"""
"""Wallets that requote more than `$requotes` orders per trade in a market and window."""


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    nodes = sorted(set(edges) | {v for targets in edges.values() for v in targets})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            advanced = False
            for target in targets:
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(edges.get(target, ())))))
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


integrity_settings = declare_settings("integrity_settings", NAME, DEFAULTS)


@hookimpl
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    option = settings_of(settings, NAME, DEFAULTS)
    net_share = Decimal(str(option["net_share"]))
    volume_net_share = Decimal(str(option["volume_net_share"]))
    alerts: dict[tuple, Alert] = {}
    for window in option["windows_s"]:
        partners = partner_trades(connection, window, option["min_pair_share"])
        makers = _makers(connection, window, option["max_requotes_per_trade"])
        for (market, bucket), all_trades in partners.items():
            requoting = makers.get((market, bucket), set())
            trades = [t for t in all_trades if not {t.seller, t.buyer} & requoting]
            for members, inside in _balanced_components(trades, volume_net_share):
                if len(inside) < option["min_trades"]:
                    continue  # one trade each way between two wallets is no cycle yet
                alert = _alert(market, bucket, window, members, inside, net_share)
                alerts.setdefault((market, tuple(alert.trades)), alert)
    return list(alerts.values())


def _makers(connection, window_s: int, requotes_per_trade: float) -> dict[tuple, set[str]]:
    """The wallets that requote all day, by (market, window start), from the running totals
    that `partner_trades` has just brought up to date."""
    found: dict[tuple, set[str]] = defaultdict(set)
    rows = connection.execute(
        MAKERS, {"window": window_s, "requotes": requotes_per_trade}
    ).fetchall()
    for market, bucket, wallet in rows:
        found[market, bucket].add(wallet)
    return found


def _balanced_components(
    trades: list[PartnerTrade], volume_net_share: Decimal
) -> list[tuple[list[str], list[PartnerTrade]]]:
    """Components (and their trades) whose members each end within `volume_net_share` of their
    volume in it of flat; an unbalanced one is searched again without its most unbalanced
    member."""
    found = []
    pending = [{wallet for trade in trades for wallet in (trade.seller, trade.buyer)}]
    while pending:
        members = pending.pop()
        inside = [t for t in trades if t.seller in members and t.buyer in members]
        edges: dict[str, set[str]] = {}
        for trade in inside:
            edges.setdefault(trade.seller, set()).add(trade.buyer)
        for component in strongly_connected(edges):
            if len(component) < 2:
                continue
            group = set(component)
            its_trades = [t for t in inside if t.seller in group and t.buyer in group]
            net = net_positions(its_trades)
            volume: dict[str, Decimal] = defaultdict(Decimal)
            for trade in its_trades:
                volume[trade.seller] += trade.qty
                volume[trade.buyer] += trade.qty
            worst = max(component, key=lambda wallet: (abs(net[wallet]) / volume[wallet], wallet))
            if abs(net[worst]) <= volume_net_share * volume[worst]:
                found.append((component, its_trades))
            elif len(component) > 2:
                pending.append(group - {worst})
    return found


def _alert(
    market: str,
    bucket: float,
    window: int,
    members: list[str],
    trades: list[PartnerTrade],
    net_share: Decimal,
) -> Alert:
    net = net_positions(trades)
    mean_size = sum(t.qty for t in trades) / len(trades)
    exact = all(abs(net[member]) <= net_share * mean_size for member in members)
    return Alert(
        detector=NAME,
        severity="high" if exact else "medium",
        market=market,
        wallets=members,
        trades=sorted(t.seq for t in trades),
        evidence={
            "cycle": members,
            "window_s": window,
            "window_start": bucket,
            "mean_trade_size": decimal_text(mean_size),
            "net_positions": {m: decimal_text(net[m]) for m in members},
        },
        wash_volume=total_notional(trades),
    )

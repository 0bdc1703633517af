"""Trade cycles (Victor and Weintraud, WWW 2021): per market and time window, the seller -> buyer
graph's strongly connected components of more than one wallet whose members all end with a net
position within 1% of the component's mean trade size: volume that went round and came back."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from .alerts import Alert
from .hookspecs import hookimpl, settings_of

NAME = "trade_cycles"
DEFAULTS = {"windows_s": [3600, 86400], "net_share": 0.01}

QUERY = """
SELECT market, epoch(time_bucket(to_seconds(?), time)) AS bucket, seq, seller, buyer,
       CAST(qty AS VARCHAR), CAST(notional AS VARCHAR)
FROM trades WHERE seller <> buyer ORDER BY market, bucket, seq
"""


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


@hookimpl
def integrity_settings() -> dict[str, dict[str, Any]]:
    return {NAME: DEFAULTS}


@hookimpl
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    alerts: dict[tuple, Alert] = {}
    option = settings_of(settings, NAME, DEFAULTS)
    net_share = Decimal(str(option["net_share"]))
    for window in option["windows_s"]:
        groups: dict[tuple, list[tuple]] = defaultdict(list)
        for market, bucket, seq, seller, buyer, qty, notional in connection.execute(
            QUERY, [window]
        ).fetchall():
            groups[market, bucket].append((seq, seller, buyer, Decimal(qty), Decimal(notional)))
        for (market, bucket), trades in groups.items():
            for alert in _cycles(market, bucket, window, trades, net_share):
                alerts.setdefault((market, tuple(alert.trades)), alert)
    return list(alerts.values())


def _cycles(
    market: str, bucket: float, window: int, trades: list[tuple], net_share: Decimal
) -> list[Alert]:
    edges: dict[str, set[str]] = defaultdict(set)
    for _, seller, buyer, _, _ in trades:
        edges[seller].add(buyer)
    found = []
    for component in strongly_connected(edges):
        if len(component) < 2:
            continue
        members = set(component)
        inside = [t for t in trades if t[1] in members and t[2] in members]
        mean_size = sum(t[3] for t in inside) / len(inside)
        net: dict[str, Decimal] = defaultdict(Decimal)
        for _, seller, buyer, qty, _ in inside:
            net[seller] -= qty
            net[buyer] += qty
        if all(abs(net[m]) <= net_share * mean_size for m in members):
            found.append(
                Alert(
                    detector="trade_cycles",
                    severity="high",
                    market=market,
                    wallets=component,
                    trades=[t[0] for t in inside],
                    evidence={
                        "cycle": component,
                        "window_s": window,
                        "window_start": bucket,
                        "mean_trade_size": str(mean_size),
                        "net_positions": {m: str(net[m]) for m in component},
                    },
                    wash_volume=str(sum(t[4] for t in inside).normalize()),
                )
            )
    return found

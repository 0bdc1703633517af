"""The sharding policy's advice applied to a cluster: which markets to move where.

The policy (plugins/sharding.py) tells a busy node which groups of its markets would each fill
a new node (`details.new_nodes`). In a cluster the new nodes are the ones already there that
serve the fewest markets: each group goes to one of them, never to the node it leaves, two
groups never to the same node. A group left without a node needs another node in the cluster,
which is said rather than done. A node with sharding advice of its own is busy: it is never
a destination (two busy nodes would only swap their markets).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .directory import Directory


@dataclass(frozen=True)
class Plan:
    moves: list[tuple[str, str, str]] = field(default_factory=list)
    """(market, from node, to node), in the order to carry out."""
    unplaced: list[list[str]] = field(default_factory=list)
    """Groups of markets the advice would move for which no node is left."""
    reasons: list[str] = field(default_factory=list)
    """The advice followed, as the policy worded it."""


def plan_moves(directory: Directory, advice: dict[str, list[dict]]) -> Plan:
    """The moves that apply each node's sharding advice (`advice`: node -> its current
    recommendations, as the admin `scale` request answers them)."""
    served = {name: 0 for name in directory.nodes}
    for entry in directory.markets.values():
        served[entry.node] = served.get(entry.node, 0) + 1
    taken = {source for source, recommendations in advice.items()
             if any(_groups(r) for r in recommendations)}  # busy: never a destination  # fmt: skip
    plan = Plan()
    for source in sorted(advice):
        for recommendation in advice[source]:
            groups = _groups(recommendation)
            if not groups:
                continue
            plan.reasons.append(f"{source}: {recommendation['reason']}")
            for group in groups:
                mine = [m for m in group if directory.markets.get(m) is not None
                        and directory.markets[m].node == source]  # fmt: skip
                free = sorted((count, name) for name, count in served.items()
                              if name != source and name not in taken)  # fmt: skip
                if not mine:
                    continue
                if not free:
                    plan.unplaced.append(mine)
                    continue
                destination = free[0][1]
                taken.add(destination)
                plan.moves.extend((market, source, destination) for market in mine)
    return plan


def _groups(recommendation: dict) -> list[list[str]]:
    """The groups of markets a recommendation would move to new nodes (none: not sharding)."""
    if recommendation.get("policy") != "sharding":
        return []
    return recommendation.get("details", {}).get("new_nodes") or []

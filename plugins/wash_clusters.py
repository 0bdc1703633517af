"""Wash clusters: three or more wallets that trade mostly with each other, again and again.

A ring run at random, or a farm of wallets pumping a thin market's volume, spreads each wallet's
trading over many of its fellows, so no single pair stands out (see `partners`) and no wallet
ends flat on its own; what gives the group away is that its members hardly trade with anybody
else. Candidates are pairs that traded at least `min_pair_trades` times, for at least
`min_pair_share` of both wallets' volume (a market maker's share with anyone is tiny); their
connected components are then trimmed, member by member, to wallets that do at least
`min_inside_share` of their volume, and `min_member_trades` trades, inside the group, and both
sell and buy inside it. A member that only sells, or only buys, moves the asset one way: an
OTC desk's clients trade with nobody but the desk, again and again, yet the blocks went from
the sellers to the buyers, while a wash wallet's lots come back (a desk with two such clients
was the only false cluster on seeds 9-16 of the labelled market: trade precision 0.9764).

A group that is most of its market trades mostly with itself by construction (in a market of
fifty wallets, any forty do): a group whose members' volume is over `max_market_share` of the
market's in the window is not a cluster.

Market makers in a thin market may trade mostly with each other too, shedding inventory into one
another's quotes; but a maker requotes all day, while a wash wallet's orders are meant to fill.
A wallet that cancels or replaces more than `max_requotes_per_trade` orders per trade in the
market and window is never a member; nor is a known maker of the market (see `partners`),
whatever its requotes: in a thin market its few takers' volume is mostly with it. A ring that
trades with a maker too is found among its other members, its trades with the maker counted as
the members' outside volume (cover, like any honest trade).

Wash that hides dilutes the group: a ring of five to eight wallets with honest trades between its
legs keeps each member under 60% of its volume inside, and wallets linked only through a common
funder trade fewer than five times inside it. Such a group is still told from honest trading by
where its positions end: wash comes back to flat (the asset did not change hands), while a
supply chain, or collectors buying from many sellers, moves the asset one way. So a group is
also accepted when trimmed to members with `flat_min_inside_share` of their volume and
`flat_min_member_trades` trades inside it, if it came back to flat: each member's net position
inside it is within `max_flat_net_share` of its volume inside it (as `trade_cycles` asks of a
ring with a sniped leg). Without the flatness test, the looser trimming alone flagged honest
wallets (precision 0.91 on the labelled market); with it asked of the group as a whole (the sum
of the members' |net| against their summed volume), a thin market's community of nineteen
active traders passed: nets that wander at random grow slower than the volume, a wash wallet's
stays at nought.

Two kinds of hiding get past that looser trimming, and what makes them wash is still where the
lots go. A ring of eight that went round twice, with a few honest trades of ordinary sizes
between its legs, leaves members with a fifth to two fifths of their volume inside; but each
lap passes one lot on, so every member ends exactly where it started. So a group of linked
wallets with `flat_min_member_trades` trades each inside it, whatever their share, is accepted
when every member's net inside it is within `max_exact_net_share` of the group's mean trade size
(Victor and Weintraud's criterion, `trade_cycles`' high severity): traders who deal with each
other now and then under much other trading end near flat by chance, not to the unit. And a
funder that hands lots out, one trade each, to wallets that pass them on among themselves once
per pair and sell them back leaves few pairs that traded twice: most funded wallets are in no
candidate pair. A fringe wallet, in no candidate pair but doing at least `flat_min_inside_share`
of its volume with linked wallets (never a requoting wallet or a known maker), is linked by each
of its trades to the wallets it traded with, for the looser trimming; the group must still come
back to flat as above, so a desk between one-way clients, each trading with it once or twice,
is not one (the asset moved from the sellers to the buyers).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from .alerts import Alert, decimal_text
from .hookspecs import declare_settings, hookimpl, settings_of
from .partners import KNOWN_MAKER, PARTNER_TRADES, PartnerTrade, net_positions, total_notional
from .window_totals import bring_up_to_date

NAME = "wash_clusters"
DEFAULTS = {
    "window_s": 30 * 24 * 3600,
    "min_pair_trades": 2,
    "min_pair_share": 0.05,
    "min_inside_share": 0.6,
    "min_member_trades": 5,
    "min_members": 3,
    "max_requotes_per_trade": 0.5,
    "max_market_share": 0.5,
    "flat_min_inside_share": 0.4,
    "flat_min_member_trades": 3,
    "max_flat_net_share": 0.2,
    "max_exact_net_share": 0.01,
}

QUERY = f"""
WITH {PARTNER_TRADES},
candidates AS (
    SELECT market, bucket, a, b FROM totals
    WHERE trades >= $pair_trades
      AND a_requotes <= $requotes * a_trades AND b_requotes <= $requotes * b_trades
),
linked AS (
    SELECT market, bucket, a AS wallet FROM candidates
    UNION SELECT market, bucket, b FROM candidates
),
volumes AS (SELECT * FROM window_wallets WHERE window_s = $window),
fringe AS (
    SELECT market, bucket, wallet, sum(volume) AS volume FROM (
        SELECT p.market, p.bucket, p.b AS wallet, p.volume FROM window_pairs p
        SEMI JOIN linked l ON l.market = p.market AND l.bucket = p.bucket AND l.wallet = p.a
        WHERE p.window_s = $window
        UNION ALL
        SELECT p.market, p.bucket, p.a, p.volume FROM window_pairs p
        SEMI JOIN linked l ON l.market = p.market AND l.bucket = p.bucket AND l.wallet = p.b
        WHERE p.window_s = $window
    ) GROUP BY ALL
),
members AS (
    SELECT * FROM linked
    UNION SELECT f.market, f.bucket, f.wallet FROM fringe f
    JOIN volumes v ON v.market = f.market AND v.bucket = f.bucket AND v.wallet = f.wallet
    WHERE f.volume >= $fringe_share * v.volume AND v.requotes <= $requotes * v.trades
      AND NOT {KNOWN_MAKER.format(wallet="f.wallet", market="f.market")}
),
market_volumes AS (SELECT market, bucket, sum(volume) AS volume FROM volumes GROUP BY ALL)
SELECT t.market, t.bucket, t.seq, t.seller, t.buyer, CAST(t.qty AS VARCHAR),
       CAST(t.notional AS VARCHAR), CAST(vs.volume AS VARCHAR), CAST(vb.volume AS VARCHAR),
       CAST(mv.volume AS VARCHAR),
       EXISTS (SELECT 1 FROM candidates c
               WHERE c.market = t.market AND c.bucket = t.bucket
                 AND c.a = least(t.seller, t.buyer) AND c.b = greatest(t.seller, t.buyer))
FROM t
SEMI JOIN members ms ON ms.market = t.market AND ms.bucket = t.bucket AND ms.wallet = t.seller
SEMI JOIN members mb ON mb.market = t.market AND mb.bucket = t.bucket AND mb.wallet = t.buyer
JOIN volumes vs ON vs.market = t.market AND vs.bucket = t.bucket AND vs.wallet = t.seller
JOIN volumes vb ON vb.market = t.market AND vb.bucket = t.bucket AND vb.wallet = t.buyer
JOIN market_volumes mv ON mv.market = t.market AND mv.bucket = t.bucket
ORDER BY t.market, t.bucket, t.seq
"""
"""Requotes count against a wallet in its market and window (a maker requotes all day); the
totals come from the running totals (window_totals), the trades up to the seq they include."""


integrity_settings = declare_settings("integrity_settings", NAME, DEFAULTS)


@hookimpl
def detect_integrity(connection, settings: dict[str, Any]) -> list[Alert]:
    option = settings_of(settings, NAME, DEFAULTS)
    groups: dict[tuple[str, float], _Window] = defaultdict(_Window)
    until = bring_up_to_date(connection, option["window_s"])
    rows = connection.execute(
        QUERY,
        {
            "until": until,
            "window": option["window_s"],
            "pair_trades": option["min_pair_trades"],
            "share": option["min_pair_share"],
            "requotes": option["max_requotes_per_trade"],
            "fringe_share": option["flat_min_inside_share"],
        },
    ).fetchall()
    for market, bucket, seq, seller, buyer, qty, notional, sold, bought, total, candidate in rows:
        window = groups[market, bucket]
        window.market_volume = Decimal(total)
        window.add(PartnerTrade(seq, seller, buyer, Decimal(qty), Decimal(notional)))
        window.volumes[seller] = Decimal(sold)
        window.volumes[buyer] = Decimal(bought)
        if candidate:
            window.links[seller].add(buyer)
            window.links[buyer].add(seller)
    alerts: dict[tuple, Alert] = {}
    for (market, bucket), window in groups.items():
        for members in window.clusters(option):
            alert = _alert(market, bucket, option["window_s"], members, window)
            alerts.setdefault((market, tuple(alert.trades)), alert)  # (in two windows: once)
    return list(alerts.values())


class _Window:
    """One market and window: candidate wallets' trades among themselves, their whole volumes,
    and which pairs are candidate links."""

    def __init__(self) -> None:
        self.trades: list[PartnerTrade] = []
        self.of_wallet: defaultdict[str, list[PartnerTrade]] = defaultdict(list)
        self.volumes: dict[str, Decimal] = {}
        self.links: defaultdict[str, set[str]] = defaultdict(set)
        self.market_volume = Decimal(0)
        """Every wallet's volume in the market and window, summed (each trade counts twice,
        as the members' volumes do)."""

    def clusters(self, option: dict[str, Any]) -> list[set[str]]:
        """Groups of linked wallets, each member trading mostly and often inside its group; and
        groups that came back to flat, trimmed looser (see the module's docstring), unless the
        first hold all their members. A funded wallet that traded three times inside is trimmed
        from the strict group of its funder and fellows: the flat group holding it is reported
        instead of that one."""
        found = self.trimmed(
            option, self.links, option["min_inside_share"], option["min_member_trades"]
        )
        taken = set().union(*found)
        at_least, share = option["flat_min_member_trades"], option["flat_min_inside_share"]
        flat = [
            *self.trimmed(option, self.links, share, at_least),
            *self.trimmed(option, self.loose_links(), share, at_least),
        ]
        exact = self.trimmed(option, self.links, 0, at_least)
        for group in [g for g in flat if self.flat(g, option)] + [
            g for g in exact if self.exactly_flat(g, option)
        ]:
            if not group <= taken and group not in found:
                found = [strict for strict in found if not strict < group] + [group]
        return found

    def loose_links(self) -> dict[str, set[str]]:
        """The candidate links, and a link for every trade of a fringe wallet (one that is in
        no candidate pair but does much of its volume with the linked wallets)."""
        links = defaultdict(set, {wallet: set(ends) for wallet, ends in self.links.items()})
        for trade in self.trades:
            if trade.seller not in self.links or trade.buyer not in self.links:
                links[trade.seller].add(trade.buyer)
                links[trade.buyer].add(trade.seller)
        return links

    def flat(self, group: set[str], option: dict[str, Any]) -> bool:
        """Each member's net position inside `group` within `max_flat_net_share` of its
        volume inside it."""
        most_net = Decimal(str(option["max_flat_net_share"]))
        volume, _ = self.inside(group)
        net = net_positions(self.among(group))
        return all(abs(net[wallet]) <= most_net * volume[wallet] for wallet in group)

    def exactly_flat(self, group: set[str], option: dict[str, Any]) -> bool:
        """Each member's net position inside `group` within `max_exact_net_share` of the mean
        size of the group's trades (Victor and Weintraud's criterion, as in `trade_cycles`)."""
        trades = self.among(group)
        mean_size = sum(t.qty for t in trades) / len(trades)
        most_net = Decimal(str(option["max_exact_net_share"])) * mean_size
        net = net_positions(trades)
        return all(abs(net[wallet]) <= most_net for wallet in group)

    def trimmed(
        self,
        option: dict[str, Any],
        links: dict[str, set[str]],
        min_inside_share: float,
        min_member_trades: int,
    ) -> list[set[str]]:
        """Components of wallets joined by `links`, trimmed, member by member, to those with at
        least `min_inside_share` of their volume and `min_member_trades` trades inside the
        group, that both sold and bought in it."""
        found = []
        pending = _components(links, set(links))
        least_share = Decimal(str(min_inside_share))
        most_of_market = Decimal(str(option["max_market_share"])) * self.market_volume
        while pending:
            group = pending.pop()
            if len(group) < option["min_members"]:
                continue
            volume, count = self.inside(group)
            trades = self.among(group)
            both_ways = {t.seller for t in trades} & {t.buyer for t in trades}
            keep = {
                wallet
                for wallet in both_ways
                if count[wallet] >= min_member_trades
                and volume[wallet] >= least_share * self.volumes[wallet]
            }
            if keep != group:
                pending.extend(_components(links, keep))
            elif sum(self.volumes[wallet] for wallet in group) <= most_of_market:
                found.append(group)  # (most of the market trades among itself by construction)
        return found

    def inside(self, group: set[str]) -> tuple[dict[str, Decimal], dict[str, int]]:
        """Each member's volume and trade count with the other members."""
        volume: dict[str, Decimal] = defaultdict(Decimal)
        count: dict[str, int] = defaultdict(int)
        for trade in self.among(group):
            for wallet in (trade.seller, trade.buyer):
                volume[wallet] += trade.qty
                count[wallet] += 1
        return volume, count

    def add(self, trade: PartnerTrade) -> None:
        """A trade of the window (they come oldest first)."""
        self.trades.append(trade)
        self.of_wallet[trade.seller].append(trade)
        self.of_wallet[trade.buyer].append(trade)

    def among(self, group: set[str]) -> list[PartnerTrade]:
        """The trades between members of `group`, oldest first (from the members' own: groups
        are small, the window's trades many)."""
        found = {
            t.seq: t
            for wallet in group
            for t in self.of_wallet[wallet]
            if t.seller in group and t.buyer in group
        }
        return [found[seq] for seq in sorted(found)]


def _components(links: dict[str, set[str]], wallets: set[str]) -> list[set[str]]:
    """Connected components of `wallets` by `links` (restricted to `wallets`)."""
    seen: set[str] = set()
    components = []
    for start in sorted(wallets):
        if start in seen:
            continue
        component = {start}
        frontier = [start]
        while frontier:
            for neighbour in links[frontier.pop()]:
                if neighbour in wallets and neighbour not in component:
                    component.add(neighbour)
                    frontier.append(neighbour)
        seen |= component
        components.append(component)
    return components


def _alert(market: str, bucket: float, window_s: int, members: set[str], window: _Window) -> Alert:
    trades = window.among(members)
    volume, count = window.inside(members)
    net = net_positions(trades)
    shares = {wallet: volume[wallet] / window.volumes[wallet] for wallet in sorted(members)}
    return Alert(
        detector=NAME,
        severity="high" if min(shares.values()) >= Decimal("0.9") else "medium",
        market=market,
        wallets=sorted(members),
        trades=[t.seq for t in trades],
        evidence={
            "members": len(members),
            "inside_share": {wallet: round(float(share), 3) for wallet, share in shares.items()},
            "trades_inside": {wallet: count[wallet] for wallet in sorted(members)},
            "net_positions": {wallet: decimal_text(net[wallet]) for wallet in sorted(members)},
            "window_s": window_s,
            "window_start": bucket,
        },
        wash_volume=total_notional(trades),
    )

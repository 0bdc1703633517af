"""A labelled market for evaluating the integrity detectors.

Honest traders place limit orders away from the mid and take liquidity with market orders;
market makers quote both sides close to the mid with many counterparties and a mean-reverting
inventory. Injected among them: self-trades, ping-pong pairs, rings of 3 to 5 wallets passing
matched volume round a few times, churners, and odd bots. A wash trade is made the way a wash
trader would: the generator follows the book (the real engine, fed every command as it is made),
rests a sell strictly inside the spread, where nobody else's order is in the way, and takes it at
once with the partner's immediate-or-cancel buy at the same price, so the two always meet. With
no room inside the spread, that leg is skipped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import msgspec

from ..core.commands import PeerCommand
from ..core.decimals import Unit
from ..core.engine import Engine
from ..core.markets import MarketSpec

HONEST_TRADERS = 240
"""With about a hundred injected wallets, wash traders are a minority of the wallets (about a
quarter), as in a real market and as anomaly detection presumes: a majority would be the norm."""
MARKET = MarketSpec("EVAL-ETH", "EVAL", "ETH", "0.01", "1", "1", "1000", "1000000", "none")


@dataclass
class LabelledMarket:
    commands: list[dict] = field(default_factory=list)
    wash_groups: dict[str, set[str]] = field(default_factory=dict)
    """Pattern name -> its wallets: a trade between two wallets of one group is wash."""
    makers: set[str] = field(default_factory=set)
    honest: set[str] = field(default_factory=set)
    bots: set[str] = field(default_factory=set)
    """Odd bots: anomalous, not wash."""


def generate_labelled_market(seed: int = 1, steps: int = 20_000) -> LabelledMarket:
    rng = random.Random(seed)
    tick = Unit(MARKET.tick_size)
    market = LabelledMarket()
    market.honest = {f"0xhonest{n:03d}" for n in range(HONEST_TRADERS)}
    market.makers = {f"0xmaker{n}" for n in range(5)}
    honest = sorted(market.honest)
    makers = sorted(market.makers)
    mid = 10_000
    engine = Engine([MARKET])
    """Follows the book as the commands are made, so wash orders can be priced where nothing
    else is in the way."""
    ids = iter(range(1, 10**9))
    maker_quotes: dict[str, list[int]] = {m: [] for m in makers}
    wash_every = max(10, steps // 48)
    patterns = ["self", "pingpong", "ring", "churn"]
    group_number = 0

    def new(
        owner: str,
        side: str,
        price: int | None,
        qty: int,
        tif: str = "GTC",
        stp: str = "cancel_newest",
    ) -> int:
        order_id = next(ids)
        command = {"op": "new", "market": MARKET.symbol, "id": order_id, "owner": owner,
                   "side": side, "qty": str(qty), "tif": tif, "stp": stp}  # fmt: skip
        if price is None:
            command["type"] = "market"
        else:
            command["price"] = tick.text_of(price)
        emit(command)
        return order_id

    def emit(command: dict) -> None:
        market.commands.append(command)
        engine.process(msgspec.convert(command, PeerCommand), [])

    def wash(seller: str, buyer: str, qty: int) -> None:
        book = engine.books[MARKET.symbol]
        bid, ask = book.bids.best_price(), book.asks.best_price()
        low = bid if bid is not None else mid - 1
        high = ask if ask is not None else mid + 1
        if high - low < 2:
            return  # no price inside the spread: someone else's order would be in the way
        price = (low + high) // 2
        new(seller, "sell", price, qty, stp="none")
        new(buyer, "buy", price, qty, "IOC", stp="none")

    for step in range(steps):
        mid = max(1000, mid + rng.choice((-1, 0, 0, 1)))
        roll = rng.random()
        if roll < 0.25:  # a maker requotes both sides
            maker = rng.choice(makers)
            for order_id in maker_quotes[maker]:
                emit({"op": "cancel", "market": MARKET.symbol, "id": order_id, "owner": maker})
            size = rng.randint(5, 30)
            maker_quotes[maker] = [
                new(maker, "buy", mid - rng.randint(1, 2), size),
                new(maker, "sell", mid + rng.randint(1, 2), size),
            ]
        elif roll < 0.65:  # honest resting limit away from the mid
            side = rng.choice(("buy", "sell"))
            offset = rng.randint(3, 12)
            price = mid - offset if side == "buy" else mid + offset
            new(rng.choice(honest), side, price, _organic_size(rng))
        else:  # honest taker
            new(rng.choice(honest), rng.choice(("buy", "sell")), None, _organic_size(rng), "IOC")
        if step % wash_every == 0 and step:
            pattern = patterns[group_number % len(patterns)]
            group_number += 1
            name = f"{pattern}{group_number}"
            if pattern == "self":
                wallet = f"0xself{group_number}"
                market.wash_groups[name] = {wallet}
                for _ in range(rng.randint(2, 5)):
                    wash(wallet, wallet, rng.randint(1, 50))
            elif pattern == "pingpong":
                a, b = f"0xpingA{group_number}", f"0xpingB{group_number}"
                market.wash_groups[name] = {a, b}
                for _ in range(rng.randint(2, 4)):
                    qty = rng.randint(1, 50)
                    wash(a, b, qty)
                    wash(b, a, qty)
            elif pattern == "ring":
                members = [f"0xring{group_number}w{k}" for k in range(rng.randint(3, 5))]
                market.wash_groups[name] = set(members)
                for _ in range(rng.randint(2, 4)):  # rounds: a ring exists to print volume
                    qty = rng.randint(1, 50)
                    for k, seller in enumerate(members):
                        wash(seller, members[(k + 1) % len(members)], qty)
            else:
                churner, partner = f"0xchurn{group_number}", f"0xchurnP{group_number}"
                market.wash_groups[name] = {churner, partner}
                for _ in range(6):
                    qty = rng.randint(1, 50)
                    wash(churner, partner, qty)
                    wash(partner, churner, qty)
        if step % (steps // 5) == 0:  # an odd bot: far from the market, clockwork sizes
            bot = f"0xbot{step}"
            market.bots.add(bot)
            for _ in range(8):
                new(bot, "buy", None, 777, "IOC")
    return market


def _organic_size(rng: random.Random) -> int:
    """Sizes with Benford-like first digits and some clustering at round numbers."""
    if rng.random() < 0.15:
        return rng.choice((10, 20, 50, 100))
    return max(1, int(10 ** rng.uniform(0, 2.3)))

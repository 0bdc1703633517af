"""The demo's traders beside its seeded flow, each a thread of the flow's process
(tools/demo_flow.py) with a peer of its own:

- the wash ring: four wallets passing the same quantity round and round in LAND-ETH;
- the liquidity takers: a few wallets trading against the pool's and the maker's markets
  (tools/demo_markets.py) around a wandering fair price, buys and sells in turn so that
  neither instance is pushed to its inventory limit, faster in the drop;
- the deed dealer: a signed sell in DEED-USDC met at once by a signed buy of one of the dev
  wallets (EIP-712, their keys in chain/orders.py), one trade every two seconds: what the
  embedded chain settles comfortably beside everything else (tools/demo_chain.py). The dealer
  only sells and the buyers only buy, so the flow moves deeds one way, as an issuer's sale
  does, and is nobody's wash.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..chain.eip712 import Domain, address_from_text
from ..chain.orders import Wallet, chain_settings, dev_wallets, sign_command
from ..client import Client, NodeAddress
from ..core.commands import NewOrder
from ..core.markets import Market
from ..home.config import NodeConfig
from ..home.keys import KeyPair
from ..protocol.wire_events import WireTrade
from .calibration import DROP_TIMES
from .demo_chain import DEV_WALLETS
from .demo_markets import LIQUIDITY, SETTLED_MARKET

RING = [f"0xd3m0{n}" for n in range(4)]
RING_MARKET = "LAND-ETH"
TAKERS = [f"0x7a4e{n}" for n in range(6)]
TAKER_ORDERS_PER_S = 2.0
"""Market orders a second into each liquidity market outside the drop (the drop's multiple in
it)."""
TAKER_MAX_QTY = 6
TAKER_REACH = Decimal("0.01")
FAIR_START = Decimal("100.00")
"""Both liquidity markets' fair price at the start: the pool's reserves' ratio, the maker's
`start_price` (tools/demo_markets.py)."""
TAKER_TICK = Decimal("0.01")
SIGNED_TRADE_S = 2.0
DEED_PRICE = Decimal("250.00")
SIGNED_EXPIRY_S = 86_400


def ring(address: NodeAddress, key: KeyPair, tick: Decimal, stop: threading.Event,
         traded: Callable[[int], None]) -> None:  # fmt: skip
    """Pass 3 units round the ring twice a second, inside LAND-ETH's spread. A lap is one
    message, its legs applied one after the other: no other order comes between them, and
    only the book's moves since the snapshot can have a leg meet an outsider."""
    numbers = iter(range(1, 10**9))
    with Client(address, key) as client:
        while not stop.wait(0.5):
            book = client.snapshot(RING_MARKET)
            bid = Decimal(book.bids[0].price) if book.bids else None
            ask = Decimal(book.asks[0].price) if book.asks else None
            if bid is None or ask is None or ask - bid < 2 * tick:
                continue
            price = str(((bid + ask) / 2).quantize(tick))
            lap = []
            for seller, buyer in zip(RING, RING[1:] + RING[:1], strict=True):
                number = next(numbers)
                lap += [
                    {"op": "new", "market": RING_MARKET, "id": f"r{number}s", "owner": seller,
                     "side": "sell", "price": price, "qty": "3", "stp": "none"},
                    {"op": "new", "market": RING_MARKET, "id": f"r{number}b", "owner": buyer,
                     "side": "buy", "price": price, "qty": "3", "tif": "IOC", "stp": "none"},
                ]  # fmt: skip
            traded(_trades_in(client.submit(lap)))


def liquidity_takers(address: NodeAddress, key: KeyPair, stop: threading.Event,
                     in_drop: Callable[[], bool],
                     traded: Callable[[int], None]) -> None:  # fmt: skip
    """Orders against each liquidity market, `TAKER_ORDERS_PER_S` a second each (times the
    drop's multiple while `in_drop()`), buys and sells in turn, of 1 to `TAKER_MAX_QTY` lots:
    immediate-or-cancel at `TAKER_REACH` through a fair price that wanders a tick at a time
    (seeded). A taker pays no price whatever: an instance quoting far from the fair price is
    not traded with, so a quoter's own fills cannot walk its price away."""
    draws = random.Random(17)
    sides = itertools.cycle(("buy", "sell"))
    numbers = itertools.count(1)
    fair = {market: FAIR_START for _, market in LIQUIDITY.values()}
    with Client(address, key) as client:
        while not stop.wait(1 / (TAKER_ORDERS_PER_S * (DROP_TIMES if in_drop() else 1))):
            side = next(sides)
            reach = 1 + TAKER_REACH if side == "buy" else 1 - TAKER_REACH
            orders = []
            for market, price in fair.items():
                fair[market] = max(TAKER_TICK, price + draws.choice((-1, 0, 1)) * TAKER_TICK)
                limit = (fair[market] * reach).quantize(TAKER_TICK)
                qty = str(draws.randint(1, TAKER_MAX_QTY))
                orders.append({"op": "new", "market": market, "id": f"t{next(numbers)}",
                               "owner": draws.choice(TAKERS), "side": side, "price": str(limit),
                               "qty": qty, "tif": "IOC"})  # fmt: skip
            traded(_trades_in(client.submit(orders)))


def deed_dealer(address: NodeAddress, key: KeyPair, config: NodeConfig, stop: threading.Event,
                traded: Callable[[int], None]) -> None:  # fmt: skip
    """Every `SIGNED_TRADE_S`, the dealer (dev wallet 0) offers one deed and a buyer (the
    other dev wallets in turn) takes it, both orders signed by their owners. Ids and nonces
    count from the start's millisecond: a later flow on the same node (the steering test runs
    two) signs no nonce an earlier one used."""
    spec = next(spec for spec in config.markets if spec.symbol == SETTLED_MARKET)
    market = Market(spec)
    settings = chain_settings(market)
    assert settings is not None  # the demo's DEED-USDC takes signed orders only
    domain = Domain(config.settlement.chain_id, address_from_text(config.settlement.contract))
    dealer, *buyers = dev_wallets(DEV_WALLETS)
    expiry = int(time.time()) + SIGNED_EXPIRY_S
    draws = random.Random(23)
    numbers = itertools.count(int(time.time() * 1000))

    def signed(wallet: Wallet, side: str, price: str, tif: str) -> NewOrder:
        number = next(numbers)
        order = NewOrder(number, wallet.text, SETTLED_MARKET, side, "limit", price, "1", tif,
                         chain_id=domain.chain_id, nonce=number, expiry=expiry,
                         max_fee_bps=int(spec.fee_bps))  # fmt: skip
        return sign_command(order, settings, domain, wallet, market)

    with Client(address, key) as client:
        for buyer in itertools.cycle(buyers):
            if stop.wait(SIGNED_TRADE_S):
                return
            price = str(DEED_PRICE + Decimal(draws.randint(-100, 100)) / 100)
            pair = [signed(dealer, "sell", price, "GTC"), signed(buyer, "buy", price, "IOC")]
            traded(_trades_in(client.submit(pair)))


def _trades_in(reply: Any) -> int:
    return sum(1 for event in reply.events if type(event) is WireTrade)

"""The relayer's view of the journal: each trade between two signed orders, as the settlement
contract's batch entry, found exactly once.

The journal holds commands, not trades, so the relayer replays it through an engine of its own
(deterministic: the same trades, with the same seqs, as the node's) and remembers the signed
orders the engine accepted, by (market, owner, id), to pair them with the trades they make;
a signed order moved here from another node (an import) is known by the `new` its import
carries, so its trades on this node settle as the same order.
Like the analytics follower it replays from the start at each run and hands on only what lies
past the position its state store has reached; the position moves with the trades, in one
SQLite transaction, so a relayer killed anywhere neither loses nor repeats a trade.

A trade's id on chain is its engine `seq`: unique, journaled, the contract's replay key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from web3 import Web3

from ..core.commands import ImportMarket, NewOrder
from ..core.engine import Engine
from ..core.events import Accepted, Cancelled, Rested, Trade
from ..core.markets import Market
from ..core.validation import units_of
from ..store.lmdb_store import Store
from .eip712 import address_from_text
from .orders import chain_settings, signed_order
from .settlement_store import PendingTrade

BPS = 10_000
DEADLINE_MARGIN_S = 30
"""A trade must be on chain this long before either order's expiry (the contract refuses an
expired order): blocks, confirmations and a replacement take time."""


def signed_order_entry(command: NewOrder, market: Market) -> list[Any]:
    """The contract's `Order` struct for a journaled signed order (checksummed addresses)."""
    settings = chain_settings(market)
    assert settings is not None  # the engine took a signed order: its market takes them
    owner = address_from_text(command.owner)
    ticks, lots = units_of(market.tick, command.price), units_of(market.lot, command.qty)
    order = signed_order(command, settings, owner, ticks, lots)
    addresses = {0, 1, 3}  # owner, base, quote
    return [
        Web3.to_checksum_address(value) if index in addresses else value
        for index, value in enumerate(order)
    ]


def trade_entry(trade: Trade, buy: tuple, sell: tuple, fee_bps: int) -> list[Any]:
    """The contract's `Trade` struct: the two orders, their signatures, the fill and the fees
    (the market's `fee_bps` of the quote amount, charged to each side)."""
    (buy_order, buy_sig), (sell_order, sell_sig) = buy, sell
    quote_amount = trade.price * trade.qty * buy_order[8]
    fee = quote_amount * fee_bps // BPS
    return [trade.seq, buy_order, sell_order, buy_sig, sell_sig, trade.qty, trade.price, fee, fee]


class JournalTrades:
    """Replays `store`'s journal; `follow` gives the trades past `position` commit by commit."""

    def __init__(self, store: Store, max_delay_s: float) -> None:
        self.store = store
        self.max_delay_s = max_delay_s
        self.engine = Engine()
        self.replayed = 0
        self.signed: dict[tuple[str, str, Any], tuple[list[Any], str]] = {}
        """(market, owner, id) -> (contract Order, signature hex) of the signed orders the
        engine accepted, until they are filled or cancelled."""

    def follow(self, position: int) -> Iterator[tuple[int, list[PendingTrade]]]:
        """(journal position, its new signed trades) after each commit not yet replayed; the
        trades of commands before `position` are replayed but not handed on."""
        for end, _, _, time_ns in self.store.commits(start=self.replayed):
            found: list[PendingTrade] = []
            for number, command in self.store.journal(self.replayed, end):
                out: list = []
                self.engine.process(command, out)
                self.replayed = number + 1
                accepted = bool(out) and type(out[0]) is Accepted
                if accepted and type(command) is NewOrder and command.order_hash:
                    self._remember(command.market, command)
                elif type(command) is ImportMarket and any(type(e) is Rested for e in out):
                    for moved in command.orders:  # moved here: signed by the `new` it carries
                        if moved.placed is not None:
                            self._remember(command.market, moved.placed)
                trades = self._trades(out, time_ns / 1e9)
                if number >= position:
                    found.extend(trades)
            yield end, found

    def _remember(self, market: str, command: NewOrder) -> None:
        """A signed order now resting here, placed by the journaled `command` (on this node,
        or on the node a market moved from: the import carries that node's `new`)."""
        entry = signed_order_entry(command, self.engine.books[market].market)
        self.signed[(market, command.owner, command.id)] = (entry, command.sig)

    def _trades(self, out: list, traded_at: float) -> list[PendingTrade]:
        """The signed trades among `out`; orders gone from the book are forgotten."""
        found = []
        for event in out:
            if type(event) is Cancelled and event.remaining == 0:
                self.signed.pop((event.market, event.owner, event.id), None)
            if type(event) is not Trade:
                continue
            maker_key = (event.market, event.maker_owner, event.maker_id)
            taker_key = (event.market, event.taker_owner, event.taker_id)
            maker, taker = self.signed.get(maker_key), self.signed.get(taker_key)
            if event.maker_remaining == 0:
                self.signed.pop(maker_key, None)
            if event.taker_remaining == 0:
                self.signed.pop(taker_key, None)
            if maker is None or taker is None:
                continue  # an unsigned side: the node's trusted peers settle it themselves
            buy, sell = (taker, maker) if event.aggressor == "buy" else (maker, taker)
            peers = (event.taker_peer, event.maker_peer)
            buyer_peer, seller_peer = peers if event.aggressor == "buy" else peers[::-1]
            spec = self.engine.books[event.market].market.spec
            entry = trade_entry(event, buy, sell, int(spec.fee_bps))
            expiry = min(buy[0][10], sell[0][10])
            deadline = min(traded_at + self.max_delay_s, expiry - DEADLINE_MARGIN_S)
            found.append(PendingTrade(
                event.seq, event.market, buy[0][0], sell[0][0], event.price, event.qty, entry,
                traded_at, deadline, buyer_peer, seller_peer,
            ))  # fmt: skip
        return found

"""One liquidity instance at work: a peer of the node (its own key and owner) whose strategy
says what should rest, and which keeps the book that way with the fewest commands (plan.py).

`refresh` reads the book (a snapshot, the instance's own orders left out), asks the strategy
(`desired_quotes`) and sends the changes in one `submit`; `absorb` takes the execution reports
that came meanwhile. Every fill moves the ledger exactly and asks for a refresh, which the
process does at once; otherwise the timer (`refresh_s`) does. Quotes are GTC limit orders: a
level the book has moved through takes what rests there, at that order's price (never worse
than the strategy's own), as an AMM's curve must when another quote is on the wrong side of it.
Prices and quantities are whole ticks and lots here, decimal text only in the commands and
events (the market's `Unit`s convert).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from marketnode.plugins.host import PluginHost
from marketnode.plugins.quoting import BUY, Decision, Fill, MarketState, Quote, RestingQuote

from ..client import Client, ClientError
from ..core.decimals import Unit
from .config import Instance
from .ledger import Ledger, MarketWatch
from .plan import Changes, plan_changes

log = logging.getLogger("marketnode.liquidity")
BOOK_DEPTH = 10
"""Levels of the others' book a strategy is shown each side."""
CLOSE_TIMEOUT_S = 2.0
"""How long a closing instance waits for its cancels' answer (the node answers in ms)."""
LIMITS = {"max_inventory": "lots", "max_daily_loss": "quote", "max_resting_notional": "quote"}
"""The hard limits whose use the host can tell from its books (the position away from the
start, the day's loss at mid, the resting notional), by the setting naming each: a strategy
declaring one of these settings has its headroom shown (the market maker declares all three)."""


class Quoter:
    """One instance's quoting, through `client` (connected with the instance's own key)."""

    def __init__(
        self,
        instance: Instance,
        client: Client,
        host: PluginHost,
        clock: Callable[[], float] = time.time,
        ledger: Ledger | None = None,
        on_trade: Callable[[Any, str], None] | None = None,
    ) -> None:
        self.instance = instance
        self.client = client
        self.host = host
        self.clock = clock
        rules = next((m for m in client.markets().markets if m.market == instance.market), None)
        if rules is None:
            raise ClientError(
                f"liquidity {instance.name}: the node has no market {instance.market}"
            )
        self.tick, self.lot = Unit(rules.tick), Unit(rules.lot)
        self.tick_lot = float(rules.tick) * float(rules.lot)
        self.min_qty = self.lot.ceil_units(rules.min_qty)
        self.max_qty = self.lot.floor_units(rules.max_qty) if rules.max_qty else None
        if ledger is None:
            base = self.lot.floor_units(instance.base)
            quote = int(float(instance.quote) / self.tick_lot)
            ledger = Ledger(base, quote, start_base=base)
        self.ledger = ledger
        self.on_trade = on_trade
        """Told of every trade of the instance's with its side (an evaluation checks the ledger
        against them)."""
        self.watch = MarketWatch(instance.volatility_window_s, instance.flow_window_s)
        self.orders: dict[str, RestingQuote] = {}
        """The instance's resting orders by id."""
        self.sides: dict[str, str] = {}
        """The side of every order id sent this run (a new order may trade before it rests)."""
        self.prefix = f"lq-{instance.name[:24]}-{int(time.time() * 1000):x}-"
        self.sent = 0
        self.rejected: dict[str, int] = {}
        self.self_trades = 0
        self.last_trade_seq = 0
        """The latest trade of the instance's taken (for whoever waits until it has heard)."""
        self.halted: str | None = None
        self.stopped: dict[str, Any] | None = None
        """When and by whom the operator stopped the instance (`mnode liquidity stop`), if so."""
        self.fill_pending = False
        """A fill came since the last refresh: refresh now."""
        self.last_mid: float | None = float(instance.start_price) / float(rules.tick) or None
        self.last_fill_price: int | None = None
        self.last_quotes: list[Quote] = []
        self.refreshed_at = 0.0
        self._cancel_leftovers()

    # -- the strategy ---------------------------------------------------------------------------

    def refresh(self) -> Decision:
        """Absorb what came, ask the strategy, send the changes; a halt cancels all and stops."""
        self.absorb()
        state = self.state()
        self.refreshed_at = state.now
        self.fill_pending = False
        if self.halted is not None:
            return Decision([], self.halted)
        decision = self.host.call_each(
            "desired_quotes", strategy=self.instance.strategy, state=state,
            settings=self.instance.settings,
        )  # fmt: skip
        if decision is None:
            decision = Decision([], f"no plugin answers for strategy {self.instance.strategy}")
        if decision.halt is not None:
            self.halt(decision.halt)
            return decision
        self.last_quotes = decision.quotes
        self.send(plan_changes(decision.quotes, list(self.orders.values())))
        return decision

    @property
    def quoting(self) -> bool:
        """Neither halted by a limit nor stopped by the operator."""
        return self.halted is None and self.stopped is None

    @property
    def state_word(self) -> str:
        """`halted` (a limit; `mnode liquidity resume` clears it), `stopped` (the operator;
        `mnode liquidity start`), or `quoting`. A halt is named first: a start alone does not
        make a halted instance quote."""
        if self.halted is not None:
            return "halted"
        return "stopped" if self.stopped is not None else "quoting"

    def stop(self, stopped: dict[str, Any]) -> None:
        """The operator's stop: cancel every resting order and quote no more until started."""
        self.stopped = stopped
        self.last_quotes = []
        self.send(Changes(cancels=list(self.orders)))

    def halt(self, reason: str) -> None:
        """The kill switch: cancel every resting order, quote no more, say why."""
        self.halted = reason
        self.last_quotes = []
        self.send(Changes(cancels=list(self.orders)))
        log.error("liquidity %s halted: %s", self.instance.name, reason)

    def state(self) -> MarketState:
        now = self.clock()
        snapshot = self.client.snapshot(self.instance.market)
        own: dict[tuple[str, int], int] = {}
        for order in self.orders.values():
            own[order.side, order.price] = own.get((order.side, order.price), 0) + order.qty
        bids = self._others(snapshot.bids, BUY, own)
        asks = self._others(snapshot.asks, "sell", own)
        if bids and asks:
            mid: float | None = (bids[0][0] + asks[0][0]) / 2
        else:  # no one else quotes both sides: the latest fill, else the latest mid
            mid = self.last_fill_price or self.last_mid
        self.last_mid = mid
        self.watch.observe_mid(now, mid)
        resting = list(self.orders.values())
        return MarketState(
            market=self.instance.market, now=now, bids=bids, asks=asks, mid=mid,
            base=self.ledger.base, quote=self.ledger.quote, target_base=self.ledger.start_base,
            open_orders=resting, recent_fills=self.watch.recent_fills(now),
            volatility=self.watch.volatility(), flow_imbalance=self.watch.flow_imbalance(now),
            drift=self.watch.drift(),
            pnl_today=self.ledger.pnl_today(mid, now),
            resting_notional=sum(order.price * order.qty for order in resting),
            min_qty=self.min_qty, max_qty=self.max_qty, tick_lot=self.tick_lot,
        )  # fmt: skip

    def _others(self, levels: list, side: str, own: dict[tuple[str, int], int]) -> list:
        found = []
        for level in levels:
            price = self.tick.units(level.price)
            qty = self.lot.units(level.qty) - own.get((side, price), 0)
            if qty > 0:
                found.append((price, qty))
            if len(found) == BOOK_DEPTH:
                break
        return found

    # -- the node -------------------------------------------------------------------------------

    def send(self, changes: Changes) -> None:
        """The changes in one submit (cancels, replaces, then new orders), its events absorbed."""
        if not changes:
            return
        market, owner = self.instance.market, self.instance.owner
        commands: list[dict[str, Any]] = [
            {"op": "cancel", "market": market, "id": order_id, "owner": owner}
            for order_id in changes.cancels
        ]
        for order_id, quote in changes.replaces:
            commands.append({"op": "replace", "market": market, "id": order_id, "owner": owner,
                             "price": self.tick.text_of(quote.price),
                             "qty": self.lot.text_of(quote.qty)})  # fmt: skip
        for quote in changes.news:
            self.sent += 1
            order_id = f"{self.prefix}{self.sent}"
            self.sides[order_id] = quote.side
            commands.append({"op": "new", "market": market, "id": order_id, "owner": owner,
                             "side": quote.side, "price": self.tick.text_of(quote.price),
                             "qty": self.lot.text_of(quote.qty)})  # fmt: skip
        self.take(self.client.submit(commands).events)

    def absorb(self, timeout_ms: int = 0) -> int:
        """Take the execution reports that have come (waiting up to `timeout_ms` for the
        first); how many were taken."""
        taken = 0
        while (report := self.client.next_report(timeout_ms if not taken else 0)) is not None:
            self.take(report.events)
            taken += 1
        return taken

    def take(self, events: list) -> None:
        """Keep the resting orders and the ledger as the node's events say."""
        for event in events:
            kind = event.__struct_config__.tag
            if kind == "trade":
                self._trade(event)
            elif kind == "rested" and event.id in self.sides:
                self.orders[event.id] = RestingQuote(
                    event.id, event.side, self.tick.units(event.price), self.lot.units(event.qty)
                )
            elif kind == "replaced" and event.id in self.orders:
                if event.in_place:
                    self._set_remaining(event.id, self.lot.units(event.qty), event.price)
                else:
                    del self.orders[event.id]  # its re-entry's events follow
            elif kind == "cancelled" and event.id in self.orders:
                self._set_remaining(event.id, self.lot.units(event.remaining) if
                                    event.remaining != "0" else 0)  # fmt: skip
            elif kind == "rejected":
                self.rejected[event.reason] = self.rejected.get(event.reason, 0) + 1
                log.info("liquidity %s: %s %s rejected (%s)", self.instance.name, event.op,
                         event.id, event.reason)  # fmt: skip

    def _trade(self, event: Any) -> None:
        owner = self.instance.owner
        price, qty = self.tick.units(event.price), self.lot.units(event.qty)
        mine = []
        if event.maker_owner == owner and event.maker_id in self.sides:
            mine.append(self.sides[event.maker_id])
            self._set_remaining(event.maker_id, self.lot.units(event.maker_remaining)
                                if event.maker_remaining != "0" else 0)  # fmt: skip
        if event.taker_owner == owner and event.taker_id in self.sides:
            mine.append(self.sides[event.taker_id])
        if event.maker_owner == event.taker_owner == owner:
            self.self_trades += 1
        if mine:
            self.last_fill_price = price
            self.last_trade_seq = max(self.last_trade_seq, event.seq)
        for side in mine:
            if self.on_trade is not None:
                self.on_trade(event, side)
            fill = Fill(self.clock(), price, qty, side, event.aggressor)
            self.ledger.apply(fill, self.instance.settings.get("fee_bps", 0))
            self.watch.observe_fill(fill)
            self.fill_pending = True

    def _set_remaining(self, order_id: str, qty: int, price: str | None = None) -> None:
        order = self.orders.get(order_id)
        if order is None:
            return
        if qty <= 0:
            del self.orders[order_id]
            return
        ticks = self.tick.units(price) if price is not None else order.price
        self.orders[order_id] = RestingQuote(order_id, order.side, ticks, qty)

    def _cancel_leftovers(self) -> None:
        """Cancel what an earlier run of this instance left resting: the book starts clean."""
        leftovers = [
            order.id for order in self.client.open_orders(self.instance.owner).orders
            if order.market == self.instance.market
        ]  # fmt: skip
        self.send(Changes(cancels=leftovers))

    def close(self) -> bool:
        """Cancel everything resting (the instance stops quoting), waiting at most
        `CLOSE_TIMEOUT_S` for the node; False when it did not answer. A process stopped with
        its node is stopped after the node's loop has ended: no answer would ever come, and the
        full request timeout would hold the node's stop until its supervisor's SIGKILL."""
        self.client.timeout_ms = min(self.client.timeout_ms, int(CLOSE_TIMEOUT_S * 1000))
        try:
            self.absorb()
            self.send(Changes(cancels=list(self.orders)))
        except ClientError as error:
            log.warning("liquidity %s: could not cancel on close: %s", self.instance.name, error)
            return False
        return True

    def summary(self) -> dict[str, Any]:
        """What `mnode liquidity status` and the dashboard show of this instance, in decimal
        text and floats (quote-asset amounts, base units)."""
        mid = self.last_mid
        ledger = self.ledger
        in_quote = self.tick_lot
        base_unit = float(self.lot.text)
        return {
            "name": self.instance.name, "strategy": self.instance.strategy,
            "market": self.instance.market, "owner": self.instance.owner,
            "state": self.state_word, "halted": self.halted, "stopped": self.stopped,
            "base": round(ledger.base * base_unit, 12),
            "target_base": round(ledger.start_base * base_unit, 12),
            "quote": round(ledger.quote * in_quote, 12),
            "position_lots": ledger.position, "fills": ledger.fills,
            "realized": round(ledger.realized * in_quote, 12),
            "unrealized": round(ledger.unrealized(mid) * in_quote, 12),
            "fees": round(ledger.fees * in_quote, 12),
            "pnl_today": round(ledger.pnl_today(mid, self.clock()) * in_quote, 12),
            "mid": None if mid is None else round(mid * float(self.tick.text), 12),
            "quotes": [[q.side, self.tick.text_of(q.price), self.lot.text_of(q.qty)]
                       for q in self.last_quotes],
            "limits": self.limits(),
            "rejected": dict(self.rejected), "self_trades": self.self_trades,
        }  # fmt: skip

    def limits(self) -> list[dict[str, Any]]:
        """Each hard limit the strategy's settings name (`LIMITS`) with what is used of it now:
        `name`, `limit`, `used` and the `unit` they are in."""
        used = {
            "max_inventory": abs(self.ledger.position),
            "max_daily_loss": max(0.0, -self.ledger.pnl_today(self.last_mid, self.clock()))
            * self.tick_lot,
            "max_resting_notional": sum(o.price * o.qty for o in self.orders.values())
            * self.tick_lot,
        }
        return [
            {"name": name, "unit": unit, "limit": self.instance.settings[name],
             "used": round(used[name], 12)}
            for name, unit in LIMITS.items() if name in self.instance.settings
        ]  # fmt: skip

"""A plain reference exchange for checking the matching engine against.

It follows the written order semantics as directly as possible and is slow on purpose: orders are
dicts in one list per market, the opposite side is sorted by (price, time) on every pass, and
numbers are exact `Fraction`s until they are reported in whole ticks and lots.

Commands are plain dicts shaped like the wire commands::

    {"op": "new", "id": 1, "owner": "a", "market": "BTC-USD", "side": "buy", "type": "limit",
     "price": "100.5", "qty": "0.02", "tif": "GTC", "stp": None}
    {"op": "cancel", "id": 1, "owner": "a", "market": "BTC-USD"}
    {"op": "replace", "id": 1, "owner": "a", "market": "BTC-USD", "price": "101", "qty": None}

`process` returns event dicts (`event` is accepted, rejected, trade, rested, cancelled or
replaced) numbered by one global `seq`; prices are in ticks and quantities in lots.
"""

from __future__ import annotations

import copy
import re
from fractions import Fraction

SIDES = ("buy", "sell")
ORDER_TYPES = ("limit", "market")
TIFS = ("GTC", "IOC", "FOK", "POST_ONLY")
STP_MODES = ("none", "cancel_newest", "cancel_oldest", "cancel_both", "decrement")
MAX_UNITS = 2**63 - 1
"""The node's own bound on an order's lots and on its ticks x lots, in every market
(docs/protocol.md: `qty_above_max`, `notional_above_max`)."""

_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def to_fraction(value):
    """The exact value of a decimal string or an integer; None if it is not a plain decimal."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Fraction(value)
    return None


def is_multiple(value, step) -> bool:
    return (value / step).denominator == 1


def _remove(orders, order):
    """Take `order` (this very dict) out of the list `orders`."""
    for index, candidate in enumerate(orders):
        if candidate is order:
            del orders[index]
            return
    raise AssertionError(f"not resting: {order!r}")


def _optional(text):
    return None if text is None else Fraction(text)


class ReferenceExchange:
    """Every market's resting orders and the event counter."""

    def __init__(self, markets):
        self.markets = {}
        self.books = {}
        for spec in markets:
            self.markets[spec["symbol"]] = {
                "tick": Fraction(spec["tick_size"]),
                "lot": Fraction(spec["lot_size"]),
                "min_qty": _optional(spec.get("min_qty")),
                "max_qty": _optional(spec.get("max_qty")),
                "max_notional": _optional(spec.get("max_notional")),
                "stp": spec.get("stp", "cancel_newest"),
            }
            self.books[spec["symbol"]] = []
        self.seq = 0

    # -- inspection ---------------------------------------------------------------------------

    def resting(self):
        """Resting orders as dicts: by market (configured order), bids then asks, best price
        first, oldest first within a price."""
        result = []
        for symbol, orders in self.books.items():
            bids = [order for order in orders if order["side"] == "buy"]
            asks = [order for order in orders if order["side"] == "sell"]
            bids.sort(key=lambda order: (-order["price"], order["time"]))
            asks.sort(key=lambda order: (order["price"], order["time"]))
            for order in bids + asks:
                result.append(
                    {
                        "market": symbol,
                        "id": order["id"],
                        "owner": order["owner"],
                        "side": order["side"],
                        "price": order["price"],
                        "qty": order["qty"],
                        "stp": order["stp"],
                    }
                )
        return result

    def find(self, symbol, owner, order_id):
        for order in self.books.get(symbol, []):
            if order["owner"] == owner and order["id"] == order_id:
                return order
        return None

    # -- commands -----------------------------------------------------------------------------

    def process(self, command):
        events = []
        op = command.get("op")
        if op == "new":
            self._new(command, events)
        elif op == "cancel":
            self._cancel(command, events)
        elif op == "replace":
            self._replace(command, events)
        else:
            raise ValueError(f"not a command: {command!r}")
        return events

    def _emit(self, events, kind, **fields):
        self.seq += 1
        event = {"event": kind, "seq": self.seq}
        event.update(fields)
        events.append(event)
        return event

    def _answer(self, events, command, reason):
        common = {
            "op": command["op"],
            "market": command.get("market"),
            "id": command["id"],
            "owner": command["owner"],
        }
        if reason is None:
            self._emit(events, "accepted", **common)
        else:
            self._emit(events, "rejected", **common, reason=reason)

    def _market_of(self, command):
        symbol = command.get("market")
        return self.markets.get(symbol) if isinstance(symbol, str) else None

    # new ---------------------------------------------------------------------------------------

    def _check_new(self, command):
        """The first failing check's reason, or None and the order in ticks and lots."""
        market = self._market_of(command)
        if market is None:
            return "unknown_market", None
        side = command.get("side")
        if not isinstance(side, str) or side not in SIDES:
            return "bad_side", None
        order_type = command.get("type", "limit")
        if not isinstance(order_type, str) or order_type not in ORDER_TYPES:
            return "bad_type", None
        tif = command.get("tif", "GTC")
        if not isinstance(tif, str) or tif not in TIFS:
            return "bad_tif", None
        stp = command.get("stp")
        if stp is None:
            stp = market["stp"]
        elif not isinstance(stp, str) or stp not in STP_MODES:
            return "bad_stp", None
        qty = to_fraction(command.get("qty"))
        if qty is None or qty <= 0:
            return "bad_qty", None
        is_market = order_type == "market"
        price = None
        if not is_market:
            price = to_fraction(command.get("price"))
            if price is None or price <= 0:
                return "bad_price", None
            if not is_multiple(price, market["tick"]):
                return "off_tick", None
        if not is_multiple(qty, market["lot"]):
            return "off_lot", None
        if market["min_qty"] is not None and qty < market["min_qty"]:
            return "qty_below_min", None
        if market["max_qty"] is not None and qty > market["max_qty"]:
            return "qty_above_max", None
        if qty / market["lot"] > MAX_UNITS:
            return "qty_above_max", None
        if not is_market and _above_notional(market, price, qty):
            return "notional_above_max", None
        symbol = command["market"]
        if self.find(symbol, command["owner"], command["id"]) is not None:
            return "duplicate_id", None
        taker = {
            "id": command["id"],
            "owner": command["owner"],
            "side": side,
            "price": None if is_market else int(price / market["tick"]),
            "qty": int(qty / market["lot"]),
            "stp": stp,
            "time": None,
        }
        if tif == "POST_ONLY":
            opposite = [o for o in self.books[symbol] if o["side"] != side]
            if any(self._crosses(taker, maker) for maker in opposite):
                return "would_cross", None
        if tif == "FOK":
            trial_book = copy.deepcopy(self.books[symbol])
            trial_taker = dict(taker)
            steps, _ = self._match(symbol, trial_book, trial_taker)
            traded = sum(step["qty"] for step in steps if step["event"] == "trade")
            if traded != taker["qty"]:
                return "fok_unfillable", None
        never_rests = is_market or tif in ("IOC", "FOK")
        return None, (taker, never_rests)

    def _new(self, command, events):
        reason, checked = self._check_new(command)
        self._answer(events, command, reason)
        if reason is None:
            taker, never_rests = checked
            self._enter(command["market"], taker, never_rests, events)

    # matching ----------------------------------------------------------------------------------

    @staticmethod
    def _crosses(taker, maker):
        if taker["price"] is None:
            return True
        if taker["side"] == "buy":
            return maker["price"] <= taker["price"]
        return maker["price"] >= taker["price"]

    def _match(self, symbol, book, taker):
        """Cross `taker` with `book` (a list it changes); events without seq, and whether
        self-trade prevention stopped the taker (its remainder is then cancelled by the caller,
        after any resting order STP cancelled)."""
        steps = []
        if taker["side"] == "buy":
            opposite = sorted(
                (o for o in book if o["side"] == "sell"), key=lambda o: (o["price"], o["time"])
            )
        else:
            opposite = sorted(
                (o for o in book if o["side"] == "buy"), key=lambda o: (-o["price"], o["time"])
            )
        mode = taker["stp"]
        for maker in opposite:
            if taker["qty"] == 0 or not self._crosses(taker, maker):
                break
            if maker["owner"] == taker["owner"] and mode != "none":
                if mode == "cancel_newest":
                    return steps, True
                if mode in ("cancel_oldest", "cancel_both"):
                    steps.append(self._cancel_step(symbol, maker, "stp", maker["qty"]))
                    _remove(book, maker)
                    if mode == "cancel_both":
                        return steps, True
                    continue
                # decrement: both shrink by the smaller quantity, no trade; the resting order's
                # reduction is reported first, then the incoming order's
                cut = min(maker["qty"], taker["qty"])
                steps.append(self._cancel_step(symbol, maker, "stp", cut))
                steps.append(self._cancel_step(symbol, taker, "stp", cut))
                if maker["qty"] == 0:
                    _remove(book, maker)
                continue
            fill = min(maker["qty"], taker["qty"])
            maker["qty"] -= fill
            taker["qty"] -= fill
            steps.append(
                {
                    "event": "trade",
                    "market": symbol,
                    "price": maker["price"],
                    "qty": fill,
                    "maker_id": maker["id"],
                    "maker_owner": maker["owner"],
                    "taker_id": taker["id"],
                    "taker_owner": taker["owner"],
                    "aggressor": taker["side"],
                    "maker_remaining": maker["qty"],
                    "taker_remaining": taker["qty"],
                }
            )
            if maker["qty"] == 0:
                _remove(book, maker)
        return steps, False

    @staticmethod
    def _cancel_step(symbol, order, reason, qty):
        order["qty"] -= qty
        return {
            "event": "cancelled",
            "market": symbol,
            "id": order["id"],
            "owner": order["owner"],
            "reason": reason,
            "qty": qty,
            "remaining": order["qty"],
        }

    def _enter(self, symbol, taker, never_rests, events):
        steps, stopped = self._match(symbol, self.books[symbol], taker)
        for step in steps:
            fields = dict(step)
            kind = fields.pop("event")
            self._emit(events, kind, **fields)
        if taker["qty"] == 0:
            return
        if stopped or never_rests:
            self._emit(
                events,
                "cancelled",
                market=symbol,
                id=taker["id"],
                owner=taker["owner"],
                reason="stp" if stopped else "ioc",
                qty=taker["qty"],
                remaining=0,
            )
            return
        rested = self._emit(
            events,
            "rested",
            market=symbol,
            id=taker["id"],
            owner=taker["owner"],
            side=taker["side"],
            price=taker["price"],
            qty=taker["qty"],
        )
        taker["time"] = rested["seq"]
        self.books[symbol].append(taker)

    # cancel ------------------------------------------------------------------------------------

    def _cancel(self, command, events):
        if self._market_of(command) is None:
            self._answer(events, command, "unknown_market")
            return
        symbol = command["market"]
        order = self.find(symbol, command["owner"], command["id"])
        if order is None:
            self._answer(events, command, "unknown_order")
            return
        self._answer(events, command, None)
        _remove(self.books[symbol], order)
        self._emit(
            events,
            "cancelled",
            market=symbol,
            id=order["id"],
            owner=order["owner"],
            reason="user",
            qty=order["qty"],
            remaining=0,
        )

    # replace -----------------------------------------------------------------------------------

    def _check_replace(self, command):
        market = self._market_of(command)
        if market is None:
            return "unknown_market", None
        symbol = command["market"]
        order = self.find(symbol, command["owner"], command["id"])
        qty = price = None
        if command.get("qty") is not None:
            qty = to_fraction(command["qty"])
            if qty is None or qty <= 0:
                return "bad_qty", None
        if command.get("price") is not None:
            price = to_fraction(command["price"])
            if price is None or price <= 0:
                return "bad_price", None
            if not is_multiple(price, market["tick"]):
                return "off_tick", None
        if qty is not None:
            if not is_multiple(qty, market["lot"]):
                return "off_lot", None
            if market["min_qty"] is not None and qty < market["min_qty"]:
                return "qty_below_min", None
            if market["max_qty"] is not None and qty > market["max_qty"]:
                return "qty_above_max", None
            if qty / market["lot"] > MAX_UNITS:
                return "qty_above_max", None
        if order is not None:
            if price is None:
                price = order["price"] * market["tick"]
            if qty is None:
                qty = order["qty"] * market["lot"]
        if price is not None and qty is not None and _above_notional(market, price, qty):
            return "notional_above_max", None
        if order is None:
            return "unknown_order", None
        return None, (order, int(price / market["tick"]), int(qty / market["lot"]))

    def _replace(self, command, events):
        reason, checked = self._check_replace(command)
        self._answer(events, command, reason)
        if reason is not None:
            return
        order, price, qty = checked
        symbol = command["market"]
        in_place = price == order["price"] and qty <= order["qty"]
        self._emit(
            events,
            "replaced",
            market=symbol,
            id=order["id"],
            owner=order["owner"],
            side=order["side"],
            price=price,
            qty=qty,
            in_place=in_place,
        )
        if in_place:
            order["qty"] = qty
            return
        _remove(self.books[symbol], order)
        incoming = {
            "id": order["id"],
            "owner": order["owner"],
            "side": order["side"],
            "price": price,
            "qty": qty,
            "stp": order["stp"],
            "time": None,
        }
        self._enter(symbol, incoming, False, events)


def _above_notional(market: dict, price: Fraction, qty: Fraction) -> bool:
    """Is price x qty above the market's max_notional, or its ticks x lots above MAX_UNITS?"""
    if market["max_notional"] is not None and price * qty > market["max_notional"]:
        return True
    return price / market["tick"] * (qty / market["lot"]) > MAX_UNITS

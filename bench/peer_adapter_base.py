"""What every engine beside marketnode in bench/peers.py is driven through: the flow's neutral
steps, the adapter's interface, and the timed run and the agreement check's run of one.

The flow reaches an adapter as neutral steps `(kind, market, order_id, is_buy, price, qty)`
with prices in ticks and quantities in lots. `calls` turns them into the engine's own calls
(zero-argument callables, built before the clock starts: the orders an API wants as objects
are made there, as marketnode's commands arrive decoded); the timed part only makes the calls.
A kind an engine lacks is emulated with calls it has, and the adapter says which: IOC as a
limit and a cancel of what is left, FOK as IOC, post-only as a plain limit, a market order as
an IOC at a price beyond any in the flow, a replace as a cancel and a new limit.

Standard library only, like the adapters, so that a worker in another interpreter can run them.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import ClassVar

Step = tuple[str, int, int, bool, int, int]
"""(kind, market index, order id, is buy, price in ticks (0 for market), qty in lots); kind is
one of KINDS."""
KINDS = ("limit", "post", "ioc", "fok", "market", "cancel", "replace")
FAR_PRICE = 10**12
"""A buy limit at this price (a sell at 1) crosses every resting order of the flow."""
Call = Callable[[], object]
Fills = tuple[int | None, int]
"""One step's trades (None where the peer does not report them) and traded lots."""
INSTALL_HINT = "not installed: pip install -r bench/peers-requirements.txt"


class Adapter:
    """A fresh engine of one peer with a book per market, and the flow mapped to its calls."""

    name: ClassVar[str]
    distribution: ClassVar[str]
    """The peer's name on PyPI (its version is reported)."""
    modules: ClassVar[tuple[str, ...]]
    """What must import for the peer to run."""
    min_python: ClassVar[tuple[int, int]] = (3, 11)
    native: ClassVar[frozenset[str]] = frozenset({"limit", "cancel"})
    """The kinds this peer has calls of its own for; the others are emulated."""

    def __init__(self, markets: int) -> None:
        self.markets = markets

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this peer cannot run in this interpreter, in one line, or None."""
        if sys.version_info[:2] < cls.min_python:
            need = ".".join(map(str, cls.min_python))
            return f"needs Python >= {need}: run it with --peer-python (bench/peers.py)"
        for module in cls.modules:
            try:
                importlib.import_module(module)
            except ImportError:
                return INSTALL_HINT
            except Exception as error:  # a broken install: say so in one line
                return f"does not import: {type(error).__name__}: {error}"
        return None

    @classmethod
    def version(cls) -> str:
        try:
            return metadata.version(cls.distribution)
        except metadata.PackageNotFoundError:
            return "unknown"

    @classmethod
    def emulated(cls) -> list[str]:
        return [kind for kind in KINDS if kind != "replace" and kind not in cls.native]

    def calls(self, steps: Sequence[Step]) -> list[Call]:
        """The peer's calls for `steps`, in order (a step may take more than one)."""
        out: list[Call] = []
        for kind, market, order_id, is_buy, price, qty in steps:
            if kind == "cancel":
                out.append(self.cancel(market, order_id))
            elif kind == "replace":
                out += (
                    self.cancel(market, order_id),
                    self.limit(market, order_id, is_buy, price, qty),
                )
            elif kind in self.native:
                out.append(getattr(self, kind)(market, order_id, is_buy, price, qty))
            else:
                out += self.emulate(kind, market, order_id, is_buy, price, qty)
        return out

    def emulate(
        self, kind: str, market: int, order_id: int, is_buy: bool, price: int, qty: int
    ) -> list[Call]:
        if kind == "post":
            return [self.limit(market, order_id, is_buy, price, qty)]
        if kind == "market":
            price = FAR_PRICE if is_buy else 1
            if "ioc" in self.native:
                return [self.ioc(market, order_id, is_buy, price, qty)]
        if kind == "fok" and "ioc" in self.native:
            return [self.ioc(market, order_id, is_buy, price, qty)]
        return [self.limit(market, order_id, is_buy, price, qty), self.cancel(market, order_id)]

    def limit(self, market: int, order_id: int, is_buy: bool, price: int, qty: int) -> Call:
        raise NotImplementedError

    def cancel(self, market: int, order_id: int) -> Call:
        raise NotImplementedError

    def fills(self, step: Step, result: object) -> Fills:
        """What the call of a limit or cancel step traded (the agreement check's, untimed)."""
        raise NotImplementedError


def timed_run(adapter: type[Adapter], steps: Sequence[Step], markets: int) -> dict[str, float]:
    """One run of `steps` through a fresh `adapter`: only the calls are timed."""
    calls = adapter(markets).calls(steps)
    started, cpu_started = time.perf_counter(), time.process_time()
    for call in calls:
        call()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
    }


def step_fills(adapter: type[Adapter], steps: Sequence[Step], markets: int) -> list[Fills]:
    """Each step's fills through a fresh `adapter`; the steps are limits and cancels only."""
    engine = adapter(markets)
    calls = engine.calls(steps)
    if len(calls) != len(steps):
        raise ValueError("the agreement subflow holds only limit and cancel steps")
    return [engine.fills(step, call()) for step, call in zip(steps, calls, strict=True)]

"""Both matching cores for the differential tests: the Python reference engine and the compiled
one, and what "the same state" means between them.

A test of the compiled core is skipped, with the reason, where the install recorded that it
could not build it (setup.py: a failing or missing compiler, no Python headers), where no C
compiler or Cython is at hand, or where MARKETNODE_CORE=python says the machine runs the Python
engine on purpose: the Python engine then runs, as it should, and says why. It fails where the
core is not built and none of these holds: a build that did not run or a module that does not
load is a fault, not this machine's limit.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sysconfig
from collections.abc import Sequence

import msgspec
import pytest

from marketnode.node.core.compiled import CORE_VARIABLE, build_failure, compiled_engine_class
from marketnode.node.core.engine import Engine, PythonEngine
from marketnode.node.core.markets import MarketSpec
from marketnode.node.store.statehash import hash_records, nonce_writes, order_key, order_value

CORES = ("python", "compiled")


def engine_of(core: str, markets: Sequence[MarketSpec] = ()) -> Engine:
    """An engine of `core`, whatever MARKETNODE_CORE says (see the module's docstring)."""
    if core == "python":
        return PythonEngine(markets)
    if os.environ.get(CORE_VARIABLE) == "python":
        pytest.skip(f"{CORE_VARIABLE}=python: this machine runs the Python engine on purpose")
    if compiled_engine_class("auto") is None:
        if (failure := build_failure()) is not None:
            pytest.skip(f"the compiled core is not built: the install could not ({failure})")
        if not build_tools_at_hand():
            pytest.skip("the compiled core is not built: no C compiler or Cython here to build it")
    return compiled_engine_class("compiled")(markets)


def build_tools_at_hand() -> bool:
    """Could this machine have built the compiled core: Cython importable and the C compiler
    Python was built with (sysconfig's CC) on the PATH?"""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return importlib.util.find_spec("Cython") is not None and shutil.which(compiler) is not None


def state_hash(engine: Engine) -> int:
    """The state hash the store would keep for `engine`'s books and nonces."""
    records = [(order_key(order), order_value(order)) for order in engine.resting_orders()]
    records += nonce_writes(engine.nonces, engine.nonces.owners()).items()
    return hash_records(records)


def state_of(engine: Engine) -> tuple:
    """Everything of an engine that a reader can see: its sequence, each market's orders with
    their priority in book order, levels' totals, open orders per owner, nonces and hash."""
    books = {
        symbol: [
            (
                [(level.price, level.qty, level.count) for level in side.levels_best_first()],
                side.keys,
            )
            for side in (book.bids, book.asks)
        ]
        for symbol, book in engine.books.items()
    }
    return (
        engine.seq,
        [msgspec.msgpack.encode(order) for order in engine.resting_orders()],
        books,
        {owner: count for owner, count in engine.open_orders.items() if count},
        [(owner, engine.nonces.state_of(owner)) for owner in engine.nonces.owners()],
        engine.now,
        state_hash(engine),
    )


def assert_same_events(got: list, want: list) -> None:
    """Identical events: the same classes, fields and reason members, in the same order."""
    assert [type(event) for event in got] == [type(event) for event in want]
    assert msgspec.msgpack.encode(got) == msgspec.msgpack.encode(want)
    assert got == want

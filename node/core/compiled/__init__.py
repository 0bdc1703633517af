"""The compiled matching core: `Engine`'s hot paths in C, and the switch that picks a core.

`_engine.pyx` (with `_match.pxi`, `_replace.pxi`, `_records.pxi` and its `_digest.pxi`,
`_answers.pxi`, `_journal.pxi`, `_market_data.pxi`, `_intake.pxi` and `_slots.pxi`; setup.py
builds it into the `_engine` extension) holds `CompiledEngine`, an `Engine` whose dispatch,
new-order and replace checks, matching, resting, replacing and cancelling are compiled;
`plan_records`, the store's record plan of a commit (`record_planner`); `JournalWriter`,
which writes a commit's journal entry with msgspec's bytes (`journal_encoder`); `AnswerWriter`
and `MarketDataWriter`, which write a submit's reply and a batch's market data as msgpack
straight from the core's objects (`writer_classes`); and `admit_and_apply`, the node's
admission and application of a message's commands (`intake_function`). It works on the Python
engine's own books, orders and events, so the store, the state hash and replay cannot tell
the two apart, and tests/test_engine_model.py and tests/test_engine_cores.py run both and
require identical events, books and state hashes. The Python engine stays the reference.

Which core `Engine(...)` builds: the one a tool forces for a while (`core_forced`), else the
environment variable MARKETNODE_CORE, else the node's `[engine] core` (given here by
`configure_core`), else "auto": the compiled one where it built. The install never depends on
it: setup.py leaves the extension out, saying so in one line, where it cannot build.

Why Cython and not Rust through PyO3 (docs/performance.md, "The compiled core"): on a price
level's FIFO and its match loop, Rust ran 12-23 M fills/s, Cython 5-7 M and Python 0.5-0.8 M;
both compiled loops are far beyond what the engine needs, since its time goes to the Python
objects at its edges (commands in, events out), which both reach through the same C API. Cython
needs only a C compiler and a package from PyPI at build time, which setuptools' build_ext
fetches and drives; PyO3 needs a Rust toolchain and crates from crates.io, which a fresh
machine with "the usual compilers" may lack (this one cannot reach crates.io at all).

May import: what node.core may (the standard library and msgspec) and node.core's modules.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..markets import ConfigError

CORES = ("auto", "compiled", "python")
CORE_VARIABLE = "MARKETNODE_CORE"


class CoreUnavailable(ConfigError):
    """The compiled core was asked for by name but is not built here (one line): a setting
    this machine cannot honour, answered like any other configuration mistake."""


@dataclass(frozen=True)
class CoreChoice:
    """The core that `Engine(...)` builds now and why, for `mnode status` and the benches."""

    core: str
    """"compiled" or "python"."""
    reason: str


_configured = "auto"
"""The node's `[engine] core`, as the node gave it through `configure_core`."""
_forced: str | None = None
"""The core that `core_forced` imposes for a while, over the variable and the configuration."""


def check_core_setting(value: object, where: str) -> str:
    """A checked `core` setting; ConfigError with one line naming `where` otherwise."""
    if value not in CORES:
        raise ConfigError(f"{where}: core: {value!r} is not one of {', '.join(CORES)}")
    return str(value)


def configure_core(setting: str) -> None:
    """Make `setting` ("auto", "compiled", "python") the configured core; the environment
    variable still overrides it, so an operator can switch without editing the file."""
    global _configured
    _configured = check_core_setting(setting, "[engine]")


@contextmanager
def core_forced(setting: str | None) -> Iterator[CoreChoice]:
    """Within: every `Engine(...)` is of `setting`'s core, whatever the environment variable
    or the configuration say (the benchmark runs both cores side by side); None forces
    nothing, and the choice is the node's own."""
    global _forced
    choice = choose_core(setting)
    previous, _forced = _forced, setting
    try:
        yield choice
    finally:
        _forced = previous


NOT_BUILT = Path(__file__).with_name("_engine.not-built")
"""What the install wrote when it could not build the compiled core: why, in one line
(setup.py)."""


def build_failure() -> str | None:
    """Why the install could not build the compiled core, as it recorded; None if it did not
    record a failure (the core built, or no install ran here)."""
    try:
        return NOT_BUILT.read_text().strip() or "no reason given"
    except OSError:
        return None


def _compiled_class() -> tuple[type | None, str]:
    """The compiled engine class, or None and why it cannot be loaded."""
    try:
        from ._engine import CompiledEngine
    except ImportError as error:
        failure = build_failure()
        why = f"the install could not build it: {failure}" if failure else str(error)
        return None, f"the compiled core is not built ({why}); reinstall with a C compiler"
    return CompiledEngine, "built"


def choose_core(setting: str | None = None) -> CoreChoice:
    """The core for `setting`, else the forced one, else MARKETNODE_CORE, else the configured.

    Raises CoreUnavailable if "compiled" is asked for and not built, ConfigError if the
    setting is none of CORES.
    """
    if setting is None and _forced is not None:
        setting = _forced
    if setting is not None:
        source = f"core {setting!r} asked for"
    elif os.environ.get(CORE_VARIABLE):
        setting, source = os.environ[CORE_VARIABLE], f"{CORE_VARIABLE}={os.environ[CORE_VARIABLE]}"
    else:
        setting, source = _configured, f"[engine] core = {_configured!r}"
    check_core_setting(setting, source)
    if setting == "python":
        return CoreChoice("python", f"{source}: the Python reference engine")
    compiled, why = _compiled_class()
    if compiled is not None:
        return CoreChoice("compiled", f"{source}: the compiled core ({why})")
    if setting == "compiled":
        raise CoreUnavailable(f"{source}: {why}, or choose core python")
    return CoreChoice("python", f"{source}: {why}")


def compiled_engine_class(setting: str | None = None) -> type | None:
    """The class of the compiled engine if `choose_core(setting)` picks it, else None."""
    if choose_core(setting).core == "python":
        return None
    return _compiled_class()[0]


def _of_compiled_core(engine: object) -> bool:
    """Is `engine` an engine of the compiled core (whose compiled helpers it may be given)?"""
    compiled, _why = _compiled_class()
    return compiled is not None and isinstance(engine, compiled)


def record_planner(engine: object) -> Callable | None:
    """The compiled core's `plan_records` (node/store/statehash.py's `BookHash.plan` in C) for
    an engine of the compiled core; None for the Python engine, whose store work stays Python
    as the reference."""
    if not _of_compiled_core(engine):
        return None
    from ._engine import plan_records

    return plan_records


def journal_encoder(engine: object) -> Callable | None:
    """The compiled core's journal writer for an engine of the compiled core: a function that
    writes a batch of commands as msgpack with the same bytes as msgspec's default encoder
    (which it calls for what it has no fast path for); None for the Python engine, whose store
    encodes through msgspec as the reference."""
    if not _of_compiled_core(engine):
        return None
    from enum import Enum

    import msgspec

    from ..commands import CancelOrder, NewOrder, ReplaceOrder
    from ._engine import JournalWriter

    encode = msgspec.msgpack.Encoder().encode
    return JournalWriter((NewOrder, CancelOrder, ReplaceOrder), encode, Enum).encode_batch


def writer_classes(engine: object) -> tuple[type | None, type | None]:
    """The compiled core's `AnswerWriter` and `MarketDataWriter` (node/server/answers.py's and
    marketdata.py's structs and msgspec encoding of replies and market data, written in C) for
    an engine of the compiled core; None, None for the Python engine, whose node answers and
    publishes through the reference path."""
    if not _of_compiled_core(engine):
        return None, None
    from ._engine import AnswerWriter, MarketDataWriter

    return AnswerWriter, MarketDataWriter


def intake_function(engine: object) -> Callable | None:
    """The compiled core's `admit_and_apply` (node/server/taking.py's `MessageTaker.apply` with
    the gateway's checks of each command, in C) for an engine of the compiled core; None for
    the Python engine, whose node admits and applies through the reference path."""
    if not _of_compiled_core(engine):
        return None
    from ._engine import admit_and_apply

    return admit_and_apply

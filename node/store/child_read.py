"""Reading a store in a forked child, so that LMDB's C assertions on damaged pages end the child,
not the caller (lmdb_store.py's docstring)."""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .lmdb_store import Store, StoreError, one_line

T = TypeVar("T")


def read_in_child(path: Path, reader: Callable[[Store], T]) -> T:
    """`reader(store)` on the store at `path` opened read-only in a forked child; its result.

    LMDB stops the process with a C assertion (SIGABRT) on some damaged pages, which no Python
    handler survives: in a child, that is a StoreError here, with LMDB's own line. Any other
    error of the reader on the store is a StoreError too (a damaged store is its one cause).
    """
    result_read, result_write = os.pipe()
    errors_read, errors_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        status = 1
        try:
            os.close(result_read)
            os.close(errors_read)
            os.dup2(errors_write, 2)
            try:
                with Store(path, readonly=True) as store:
                    outcome: tuple[bool, object] = (True, reader(store))
            except StoreError as error:
                outcome = (False, str(error))
            except Exception as error:  # any other fault of a damaged store: one line too
                what = f"{type(error).__name__}: {one_line(error)}"
                outcome = (False, f"{path}: the store cannot be read ({what})")
            with os.fdopen(result_write, "wb") as out:
                pickle.dump(outcome, out)
            status = 0
        finally:
            os._exit(status)
    os.close(result_write)
    os.close(errors_write)
    with os.fdopen(result_read, "rb") as results:
        payload = results.read()
    with os.fdopen(errors_read, "rb") as errors:
        said = errors.read().decode("utf-8", "replace").strip().splitlines()
    _, wait_status = os.waitpid(pid, 0)
    if not payload:
        if os.WIFSIGNALED(wait_status):
            ended = f"signal {signal.Signals(os.WTERMSIG(wait_status)).name}"
        else:
            ended = f"exit {os.WEXITSTATUS(wait_status)}"
        last = f": {said[-1]}" if said else ""
        raise StoreError(f"{path}: the store is damaged: LMDB stopped reading it ({ended}{last})")
    ok, value = pickle.loads(payload)
    if not ok:
        raise StoreError(str(value))
    return value  # type: ignore[return-value]

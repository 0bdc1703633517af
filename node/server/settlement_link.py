"""The node's side of its relayer process (node/chain/relayer_service.py): started when
`[settlement] enabled`, kept by a `Supervisor` like the analytics process (it dies with the
node, restarts with a backoff), and described for `status`.

The node never talks to the relayer: the relayer reads the journal, and its state store
(settlement/state.sqlite in the home) is the one place its progress is kept, read here
read-only when `status` is asked.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..chain.settlement_store import SettlementStore, state_path
from ..home.config import SettlementConfig
from ..home.layout import Home
from .supervisor import Supervisor

RELAYER_MODULE = "marketnode.node.chain.relayer_service"


class SettlementLink:
    """The relayer process, when enabled."""

    def __init__(self, home: Home, settlement: SettlementConfig) -> None:
        self.home = home
        self.enabled = settlement.enabled
        self.supervisor = Supervisor("settlement", RELAYER_MODULE, [str(home.path)])

    def start(self) -> None:
        if self.enabled:
            self.supervisor.start()

    def supervise(self) -> None:
        """Notice the relayer's death and restart it when due (from the loop's housekeeping)."""
        if self.enabled:
            self.supervisor.tend()

    def stop(self) -> None:
        self.supervisor.stop()

    def status(self) -> Any:
        """`off`, or the process's state with the trades' counts and the batches in flight."""
        if not self.enabled:
            return "off"
        state = self.supervisor.status()
        try:
            store = SettlementStore(state_path(self.home.path), readonly=True)
        except (FileNotFoundError, sqlite3.Error):
            return state
        try:
            return {"state": state, **store.summary()}
        except sqlite3.Error:
            return state
        finally:
            store.close()

"""The node's side of its liquidity process (node/liquidity/service.py): started when the home
configures a `[liquidity.NAME]` instance, kept by a `Supervisor` like the analytics and relayer
processes (it dies with the node, restarts with a backoff), and described for `status`.

The process is a peer like any other: its instances reach the node on the order socket with
their own keys, so nothing of it runs on the matching thread and the node needs no socket of
its own for it. What it quotes and holds it writes every second to liquidity/state.json in the
home; `status` reads that file (small, written whole) with its age, never the process itself.
A table the process cannot take (an unknown strategy, a missing key) ends it with exit code 3
and one line in its log, which `status` shows as its death.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..home.layout import Home
from .supervisor import SupervisedLink, Supervisor

SERVICE_MODULE = "marketnode.node.liquidity.service"
STATE_FILE = ("liquidity", "state.json")
"""Where the process writes its state in the home (node/liquidity/service.py `state_path`)."""


class LiquidityLink(SupervisedLink):
    """The liquidity process, when the home configures instances (stopped, it cancels its
    instances' orders, then ends)."""

    def __init__(self, home: Home, tables: dict[str, Any]) -> None:
        self.home = home
        self.enabled = any(
            not isinstance(table, dict) or table.get("enabled", True) is not False
            for table in tables.values()
        )
        """Some instance is configured and not disabled (a broken table counts: the process
        names the mistake)."""
        self.supervisor = Supervisor("liquidity", SERVICE_MODULE, [str(home.path)])

    def status(self) -> Any:
        """`off`, or the process's state with its latest report of each instance (quotes,
        holdings, PnL, why it halted) and the report's age in seconds (None: none yet)."""
        if not self.enabled:
            return "off"
        state = self.supervisor.status()
        try:
            report = json.loads(self.home.path.joinpath(*STATE_FILE).read_text())
        except (OSError, ValueError):
            return {"state": state, "age_s": None, "instances": []}
        age = round(time.time() - report.get("updated_at", 0.0), 3)
        return {"state": state, "age_s": age, "instances": report.get("instances", [])}

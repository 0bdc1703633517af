"""The node's side of its liquidity process (node/liquidity/service.py): started when the home
configures a `[liquidity.NAME]` instance, kept by a `Supervisor` like the analytics and relayer
processes (it dies with the node, restarts with a backoff), and described for `status`.

The process is a peer like any other: its instances reach the node on the order socket with
their own keys, so nothing of it runs on the matching thread and the node needs no socket of
its own for it. What it quotes and holds it writes every second to liquidity/state.json in the
home; the node reads that file (small, written whole) at its housekeeping when it has changed,
and `status` answers from that reading, with the report's age and the reading's: a status
request costs the matching thread no file read, and never asks the process itself.
A table the process cannot take (an unknown strategy, a missing key) ends it with exit code 3
and one line in its log, which `status` shows as its death.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..home.layout import Home
from .supervisor import SupervisedLink, Supervisor

SERVICE_MODULE = "marketnode.node.liquidity.service"
LIQUIDITY_CLOSE_S = 5.0
"""How long a stopping node serves on while the process closes: its last act is cancelling its
instances' quotes, and cancels nobody read would leave them resting in the journal, live at the
next start until a new process cancels them."""
STATE_FILE = ("liquidity", "state.json")
"""Where the process writes its state in the home (node/liquidity/records.py `state_path`)."""


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
        self.report: dict[str, Any] | None = None
        """The process's latest report as last read (None: none read yet)."""
        self.read_at: float | None = None
        """When the node last looked at the report's file (wall clock)."""
        self._version: tuple[int, int, int] | None = None
        """The file's (inode, mtime, size) when it was read: a file replaced anew is read
        again (the process writes it once a second)."""

    def supervise(self) -> None:
        """Tend the process and read its report if the file changed (from housekeeping)."""
        super().supervise()
        if self.enabled:
            self.read_report()

    def read_report(self) -> None:
        path = self.home.path.joinpath(*STATE_FILE)
        self.read_at = time.time()
        try:
            found = os.stat(path)
            version = (found.st_ino, found.st_mtime_ns, found.st_size)
            if version == self._version:
                return
            report = json.loads(path.read_text())
        except (OSError, ValueError):  # not written yet, or replaced between stat and read
            return
        if isinstance(report, dict):
            self.report, self._version = report, version

    def status(self) -> Any:
        """`off`, or the process's state with its latest report of each instance (quotes,
        holdings, PnL, why it does not quote), the report's age in seconds (`age_s`) and how
        long ago the node read it (`read_age_s`; None: not yet)."""
        if not self.enabled:
            return "off"
        now = time.time()
        state = self.supervisor.status()
        read_age = None if self.read_at is None else round(now - self.read_at, 3)
        if self.report is None:
            return {"state": state, "age_s": None, "read_age_s": read_age, "instances": []}
        age = round(now - self.report.get("updated_at", 0.0), 3)
        return {"state": state, "age_s": age, "read_age_s": read_age,
                "instances": self.report.get("instances", [])}  # fmt: skip

"""The demo's last word on integrity: the alerts a scan found after the last trade.

The analytics process follows the journal and scans every `scan_interval_s`; right after the
flow stops it may still be catching up, and alerts read then would leave out what it is about
to find. So the demo waits (saying each second what it waits for and how long it still will)
until the process has caught up and then either the ring is flagged or a whole scan interval
has passed (a scan started after the catch-up has run), or until `FINAL_SCAN_S` is over: then
what is kept is reported as not final.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..client import AdminClient, ClientError

FINAL_SCAN_S = 45.0
SCAN_GRACE_S = 5.0
"""Beyond one scan interval after the catch-up: time for that scan to finish."""
ALERTS_QUERY = "SELECT detector, wallets, len(trades) AS trades FROM alerts"


def ring_flagged(alerts: list[dict], ring: Sequence[str]) -> bool:
    """Whether one of `alerts` names every wallet of `ring`."""
    return any(set(ring) <= set(alert["wallets"]) for alert in alerts)


def wait_for_final_scan(
    admin: AdminClient,
    scan_interval_s: float,
    ring: Sequence[str],
    on_note: Callable[[str], None],
    patience_s: float = FINAL_SCAN_S,
) -> tuple[list[dict], bool]:
    """The alerts kept and whether a scan after the catch-up found them (False: the wait ran
    out after `patience_s`; the node is asked at least once)."""
    deadline = time.monotonic() + patience_s
    caught_up_at: float | None = None
    alerts: list[dict] = []
    while True:
        lag = _lag(admin)
        try:
            result = admin.call("sql", query=ALERTS_QUERY)
            alerts = [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]
        except ClientError:  # busy catching up or scanning: the next second will tell
            pass
        now = time.monotonic()
        if caught_up_at is None and lag == 0:
            caught_up_at = now  # the flow has stopped: caught up stays caught up
        if caught_up_at is not None and (
            ring_flagged(alerts, ring) or now - caught_up_at >= scan_interval_s + SCAN_GRACE_S
        ):
            return alerts, True
        left = deadline - now
        if left <= 0:
            return alerts, False
        on_note(f"waiting for the final integrity scan: {_waiting_for(lag)}, {left:.0f} s left")
        time.sleep(1)


def _lag(admin: AdminClient) -> int | None:
    """Journal commands the analytics process has still to read (None: it did not answer)."""
    try:
        return admin.call("analytics")["lag_commands"]
    except ClientError:
        return None


def _waiting_for(lag: int | None) -> str:
    if lag is None:
        return "analytics busy (not answering)"
    if lag:
        return f"analytics {lag:,} commands behind"
    return "analytics caught up, its next scan due"

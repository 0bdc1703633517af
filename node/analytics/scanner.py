"""The running node's integrity scans: one thread per lane of detectors, each on its schedule.

The wash detectors (the `findings` lane) are quick and incremental; the scoring ones (`scores`:
the anomaly forest, trained for seconds over every wallet, and the market statistics) are not.
Each lane scans in a thread and on a DuckDB cursor of its own, so a wash ring's alert never waits
for a forest's training (measured with a busy core beside the node: a 13 s training held the next
wash scan back and the p95 detection latency went from 8 s to 30 s).

A lane scans every `scan_interval_s`, but never takes more than half of a core: its next scan
starts no sooner than the CPU time its last one used after it ended. The follower, which fills the
store the scans read, shares the process's interpreter lock and its DuckDB thread; scans run back
to back would starve it, the store would fall behind the journal and every alert would wait for it
to catch up. The CPU time, not the wall time, is what is spaced: on a busy machine a scan of 0.5 s
of CPU takes 3 s waiting for a core, and spacing by the wall time put 6 to 13 s between scans
that had left the follower most of the process anyway. On a quiet node the interval decides.

An anomaly lead says which wash findings already name its wallet (`explain_leads`, as
`mnode integrity scan` does over one scan's alerts): the scoring lane explains its leads by the
wash lane's last finished scan, and starts its first scan only after the wash lane's first has
finished. That one also creates the running totals' tables, and DuckDB refuses two transactions
creating one table at once (a scoring scan beside it failed on a new file).

The scoring lane also waits while the follower is behind the journal (up to `MOST_DEFERRAL_S`
past its time): a forest's training takes seconds of the process's CPU, which on a busy machine
is what the follower needs to catch up, and its leads are a slower view anyway.

What each lane's last scan cost (in all, each detector, the keeping of its alerts) is part of the
process's `lag` answer, so that where detection time goes (the follower's lag, the scans) can be
read off a live node (bench/detection_latency.py reports it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from typing import Any

import duckdb

from marketnode.plugins.alerts import Alert
from marketnode.plugins.anomalous_wallets import explain_leads

from .integrity import prepare_lane, scan_each, store_alerts

log = logging.getLogger(__name__)

MOST_DEFERRAL_S = 60.0
"""How long past its time a lane that waits for the follower waits for it to catch up."""
BACKGROUND_NICE = 10
"""The scoring lane's thread runs at this nice (the wash lane at the process's own): a forest's
training takes seconds of a core, and its leads are a slower view anyway, so it yields to
everything else of the machine: the wash scans, the follower, the node, and an operator's
dashboard (beside a busy core, a key pressed during a training waited 0.7 to 1 s for a core)."""


class LaneScanner:
    """Scans one lane's detectors in a thread when due; each detector's new alerts are put on
    `found` as soon as it has finished, for the main thread to publish (sockets stay there)."""

    def __init__(
        self,
        lane: str,
        connection: duckdb.DuckDBPyConnection,
        settings: dict[str, dict[str, Any]],
        interval_s: float,
        found: queue.SimpleQueue,
        waits_for_follower: bool = False,
        explained_by: LaneScanner | None = None,
        nice: int = 0,
    ) -> None:
        self.lane = lane
        self.waits_for_follower = waits_for_follower
        self.nice = nice
        """Added to the scanning thread's niceness (Linux keeps one per thread)."""
        self.explained_by = explained_by
        """The lane whose last findings this one's anomaly leads are explained by."""
        self.latest: list[Alert] = []
        """Every alert of this lane's last finished scan (kept before or not)."""
        self.connection = connection
        self.settings = settings
        self.interval_s = interval_s
        self.found = found
        self.next_start = time.monotonic()
        """The first scan runs at once: after a restart it brings the detectors' running
        totals up to date before the next load, and on a new node it loads the detectors'
        libraries while the node is still quiet."""
        self.thread: threading.Thread | None = None
        self.cursor: duckdb.DuckDBPyConnection | None = None
        self.scans = 0
        self.last: dict[str, Any] = {}
        """The last finished scan: `scan_s`, the CPU its thread used (`cpu_s`: far less than
        `scan_s` when the process waits for a core), `detectors_s` (each), `store_s` and when
        it started (`started_at`, wall clock)."""
        self._lock = threading.Lock()

    def start_when_due(self, follower_caught_up: bool = True) -> None:
        if self.thread is not None and not self.thread.is_alive():
            self.thread = None
        now = time.monotonic()
        if self.thread is not None or now < self.next_start:
            return
        behind = self.waits_for_follower and not follower_caught_up
        if behind and now < self.next_start + MOST_DEFERRAL_S:
            return
        if self.explained_by is not None and not self.explained_by.scans:
            return
        self.next_start = float("inf")  # planned when this scan ends
        self.cursor = self.connection.cursor()
        self.thread = threading.Thread(
            target=self._scan, args=(self.cursor,), name=f"integrity-{self.lane}", daemon=True
        )
        self.thread.start()

    def join(self) -> None:
        """Wait for the scan under way, if any."""
        if self.thread is not None:
            self.thread.join()

    def stop(self, within_s: float) -> bool:
        """Interrupt a running scan and wait up to `within_s` for its thread; False if it is
        still running then. DuckDB's interrupt ends a query at once, but not a detector's own
        Python (a forest's training, the import of its library: seconds at nice 10), and a
        process that waited for it was killed after the supervisor's 10 s."""
        if self.thread is None or not self.thread.is_alive():
            return True
        with contextlib.suppress(duckdb.Error):  # it may have just finished and closed
            self.cursor.interrupt()
        self.thread.join(within_s)
        return not self.thread.is_alive()

    def _scan(self, cursor: duckdb.DuckDBPyConnection) -> None:
        started, started_at, cpu = time.monotonic(), time.time(), time.thread_time()
        mark, store_s, detectors, scanned = started, 0.0, {}, []
        try:
            if not self.scans:  # at the thread's own priority (prepare_integrity says why)
                prepare_lane(self.lane)
            if self.nice:
                with contextlib.suppress(OSError):  # a platform without per-thread priorities
                    tid = threading.get_native_id()
                    niceness = os.getpriority(os.PRIO_PROCESS, tid) + self.nice
                    os.setpriority(os.PRIO_PROCESS, tid, niceness)
            for name, alerts in scan_each(cursor, self.settings, self.lane):
                now = time.monotonic()
                detectors[name], mark = round(now - mark, 3), now
                if self.explained_by is not None:
                    explain_leads([*self.explained_by.latest, *alerts])
                self.found.put(store_alerts(cursor, alerts))
                scanned.extend(alerts)
                now = time.monotonic()
                store_s, mark = store_s + now - mark, now
            self.latest = scanned
        except duckdb.InterruptException:
            log.info("integrity scan interrupted: the process is stopping")
        except Exception:  # a detector's bug: logged, and the next scan runs as planned
            log.exception("integrity scan failed")
        finally:
            cursor.close()
            ended, used = time.monotonic(), time.thread_time() - cpu
            with self._lock:
                self.scans += 1
                self.last = {
                    "scan_s": round(ended - started, 3),
                    "cpu_s": round(used, 3),
                    "detectors_s": detectors,
                    "store_s": round(store_s, 3),
                    "started_at": started_at,
                }
            self.next_start = max(started + self.interval_s, ended + used)

    def summary(self) -> dict[str, Any]:
        """Scans finished so far and the last one's cost (`started_s_ago` instead of when)."""
        with self._lock:
            last = dict(self.last)
        started_at = last.pop("started_at", None)
        if started_at is not None:
            last["started_s_ago"] = round(time.time() - started_at, 3)
        return {"scans": self.scans, "last_scan": last}

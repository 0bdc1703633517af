"""The analytics process a running node starts beside itself.

It follows the journal into the DuckDB file (the only process writing it) and answers the node's
requests on an ipc socket in the home, typed by node/analytics/link.py: `sql` (read-only
queries), `lag` (how far behind the journal it is, in commands and seconds), `export`, `ack`
(an alert's label), `metrics` (the node's minute rollups) and `history` (the rollups of earlier
runs, for scaling). Every few seconds it copies the relayer's progress with each trade from the
relayer's own state file (settlement_progress.py). At its start it records the
`[liquidity.NAME]` instances' owners as known market makers (makers.py), whose quoting the wash
detectors leave alone. Being a process of its own, it never takes the matching thread's
interpreter lock. Integrity scans run in threads of their own, one per lane of detectors, each
on its own DuckDB cursor (scanner.py): a scan takes seconds on a busy machine, and requests are
answered meanwhile.

It runs at the node's own priority, not niced: beside a busy core, at nice 5 (a third of the
node's weight) it got too little CPU to follow 10,000 orders/s, the store fell up to 14 s behind
the journal and a wash trade's alert came 43 s after its commit (p95), against 6 s at nice 0
with the load's acknowledgements no slower in the same pair of runs (bench/detection_latency.py,
docs/performance.md). Its scans are cheap (0.3-0.5 s of CPU each at that load) and space
themselves out when slow.

The node starts it through its supervisor (node/server/supervisor.py: it dies with the node)
and writes the link's token on its stdin; a message without that token is dropped unanswered,
and the socket file is the user's alone (0600). User SQL runs with DuckDB's external access
off: no file outside the ingest scratch folder and the export folder can be read or written
(read_text, read_csv, COPY, ATTACH, INSTALL refused). Exports go below the home's `exports/`
only. A request it cannot serve is an error answer, never the end of the process.

    python -m marketnode.node.server.supervisor PARENT SIGNAL marketnode.node.analytics.service HOME
"""

from __future__ import annotations

import hmac
import logging
import os
import queue
import signal
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import zmq

from ..home.layout import ANALYTICS_SOCKET, Home
from ..home.permissions import keep_new_files_private
from ..store.lmdb_store import Store, StoreError
from .batch import process_scratch_folder
from .duckdb_store import AnalyticsStore
from .export import EXPORTS_FOLDER, ExportError, export_parquet, export_target
from .follower import JournalFollower
from .integrity import LANES, acknowledge, alert_record, detector_settings
from .link import (
    AckRequest,
    AlertsPush,
    Answer,
    ExportRequest,
    Hello,
    LagRequest,
    MetricsRollup,
    TokenRequest,
    link_encoder,
    request_decoder,
)
from .makers import record_configured_makers
from .scanner import BACKGROUND_NICE, LaneScanner
from .settlement_progress import RelayerProgress

log = logging.getLogger(__name__)
MAX_ROWS = 100_000
"""Rows a query may return over the socket; more is an error asking for a LIMIT."""

READ_ONLY_STATEMENTS = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


def plain(value: Any) -> Any:
    """A DuckDB value as msgpack and JSON carry it: decimals and times as text, lists as lists."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return str(value)


class AnalyticsService:
    def __init__(self, home: Home, token: bytes) -> None:
        config = home.config()
        self.home = home
        self.token = token
        """What every message of the node carries."""
        self.refused = 0
        """Messages dropped for want of the token."""
        self.export_dirs = [(home.path / EXPORTS_FOLDER).resolve()]
        """Where exports may go."""
        self.store = Store(home.store_path(config), readonly=True)
        self.analytics = AnalyticsStore(home.path / config.analytics.file)
        # one DuckDB thread: with the node's matching thread and a load on two cores, more
        # threads here cost the node's latency far more than they gain (bench/analytics_keepup)
        self.analytics.connection.execute("SET threads TO 1")
        record_configured_makers(self.analytics.connection, config.liquidity.instances)
        self._close_external_access()
        self.follower = JournalFollower(self.store, self.analytics)
        self.relayer_progress = RelayerProgress(home.path, self.analytics.connection)
        self.interval_ms = config.analytics.interval_ms
        self.detector_settings = detector_settings(config.integrity, str(home.config_path))
        self.found: queue.SimpleQueue[list] = queue.SimpleQueue()
        """New alerts of finished scans, for the main thread to push (sockets stay in it)."""
        self.scanners: dict[str, LaneScanner] = {}
        for lane in LANES:  # the findings lane first: it explains the scoring lane's leads
            self.scanners[lane] = LaneScanner(
                lane,
                self.analytics.connection,
                self.detector_settings,
                config.integrity.scan_interval_s,
                self.found,
                waits_for_follower=lane == "scores",
                explained_by=self.scanners.get("findings") if lane == "scores" else None,
                nice=BACKGROUND_NICE if lane == "scores" else 0,
            )
        self.node_identity: bytes | None = None
        """Who to push new alerts to: the node, once it has said hello."""
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.linger = 0
        self.socket.bind(home.analytics_endpoint)
        os.chmod(home.path / ANALYTICS_SOCKET, 0o600)
        self.stopping = False
        self.scan_left_running = False

    def _close_external_access(self) -> None:
        """From here on DuckDB touches no file but its own, the ingest scratch folder and the
        export folders (it cannot be opened again while the process runs)."""
        scratch = process_scratch_folder().resolve()
        allowed = [f"{folder}/" for folder in (scratch, *self.export_dirs)]
        connection = self.analytics.connection
        connection.execute("SET allowed_directories = ?", [allowed])
        connection.execute("SET enable_external_access = false")

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        try:
            while not self.stopping:
                # a bounded step: requests are answered between steps even far behind
                self.follower.sync(SYNC_STEP_COMMANDS)
                self.relayer_progress.copy_when_due()
                for scanner in self.scanners.values():
                    scanner.start_when_due(self.follower.caught_up)
                self._push_found()
                if self.socket.poll(self.interval_ms):
                    self._answer_all()
            self.relayer_progress.copy()  # as the relayer left it, for SQL after the stop
        finally:
            self.close()

    def close(self) -> None:
        """Stop the scans, then close the socket and the files. A scan still in its own Python
        after SCAN_STOP_S keeps the DuckDB connection open (`scan_left_running`): closing it
        under the thread is not safe, and `main` ends the process without waiting for it."""
        ended = [scanner.stop(SCAN_STOP_S) for scanner in self.scanners.values()]
        self.scan_left_running = not all(ended)
        self.context.destroy(linger=0)
        if not self.scan_left_running:
            self.analytics.close()
        self.store.close()
        (self.home.path / ANALYTICS_SOCKET).unlink(missing_ok=True)

    def _stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _answer_all(self) -> None:
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 3 or not hmac.compare_digest(frames[1], self.token):
                self._refuse()
                continue
            identity, _token, body = frames
            try:
                request = request_decoder.decode(body)
            except (msgspec.DecodeError, ValueError) as error:
                log.error("unreadable request from the node: %s", error)
                continue
            self.node_identity = identity  # the node, whatever it sends: alerts go there
            if type(request) is Hello:
                continue
            answer = Answer(request.token, **self._served(request))
            self.socket.send_multipart([identity, link_encoder.encode(answer)])

    def _refuse(self) -> None:
        """Drop a message without the token, unanswered (logged at the first and every
        thousandth)."""
        self.refused += 1
        if self.refused % 1000 == 1:
            log.warning("dropped %d messages without the link's token", self.refused)

    def _served(self, request: TokenRequest) -> dict:
        """`_answer`, with a failure of this process's own code answered as an error: a
        request it cannot serve never ends it."""
        try:
            return self._answer(request)
        except Exception as error:
            log.exception("could not serve a %s request", type(request).__name__)
            return {"ok": False, "error": f"analytics failed: {type(error).__name__}: {error}"}

    def _push_found(self) -> None:
        """Hand the new alerts of finished scans to the node, which publishes them. Before the
        node's hello they stay queued: a first scan of a journal that was already full can end
        before the node's connection is made, and its alerts would go nowhere."""
        while self.node_identity is not None:
            try:
                fresh = self.found.get_nowait()
            except queue.Empty:
                return
            if fresh:
                push = AlertsPush([alert_record(alert) for alert in fresh])
                self.socket.send_multipart([self.node_identity, link_encoder.encode(push)])

    def _answer(self, request: TokenRequest) -> dict:
        """The outcome of one request: `ok` and its `result`, or `ok` false and an `error`."""
        kind = type(request)
        if kind is LagRequest:
            return {"ok": True, "result": self.lag()}
        if kind is ExportRequest:
            return self.export(request.path)
        if kind is AckRequest:
            return acknowledge(self.analytics.connection, request.alert, request.label)
        if kind is MetricsRollup:
            return self.store_metrics(request.rows)
        return self.sql(request.query, request.params)  # SqlRequest, HistoryRequest

    def export(self, path: str) -> dict:
        """The tables as Parquet files under `path` (below an export folder, or relative to
        the first)."""
        try:
            target = export_target(path, self.export_dirs)
        except ExportError as error:
            return {"ok": False, "error": f"export: {error}"}
        cursor = self.analytics.connection.cursor()
        try:
            tables = export_parquet(cursor, target)
        except ExportError as error:
            return {"ok": False, "error": f"export: {error}"}
        except duckdb.Error as error:
            return {"ok": False, "error": f"export: {str(error).splitlines()[0]}"}
        finally:
            cursor.close()
        return {"ok": True, "result": {"path": str(target), "tables": tables}}

    def store_metrics(self, rows: list) -> dict:
        """A minute rollup of the node's metrics, from the node (rollup.MinuteRollup)."""
        try:
            self.analytics.connection.executemany(
                "INSERT INTO metrics VALUES (to_timestamp(?), ?, ?, ?, ?, ?)", rows
            )
        except (duckdb.Error, TypeError, ValueError) as error:
            return {"ok": False, "error": f"metrics: {str(error).splitlines()[0]}"}
        return {"ok": True, "result": len(rows)}

    def sql(self, query: str, params: list | None = None) -> dict:
        """Run one read-only query (this process holds the file for writing, so the statement
        kind is checked: a single SELECT or EXPLAIN)."""
        cursor = self.analytics.connection.cursor()
        try:
            statements = cursor.extract_statements(query)
            if len(statements) != 1 or statements[0].type not in READ_ONLY_STATEMENTS:
                return {"ok": False, "error": "sql: send one SELECT (or EXPLAIN) statement"}
            cursor.execute(query, params)
            columns = [column[0] for column in cursor.description or []]
            rows = cursor.fetchmany(MAX_ROWS + 1)
        except duckdb.Error as error:
            return {"ok": False, "error": f"sql: {str(error).splitlines()[0]}"}
        finally:
            cursor.close()
        if len(rows) > MAX_ROWS:
            return {"ok": False, "error": f"sql: more than {MAX_ROWS} rows; add a LIMIT"}
        return {
            "ok": True,
            "result": {"columns": columns, "rows": [[plain(v) for v in row] for row in rows]},
        }

    def lag(self) -> dict:
        """How far the analytics store is behind the journal's last commit."""
        state = self.store.state()
        position = self.analytics.position()
        behind = state.journal_length - position
        seconds = 0.0
        if behind:
            pending = self.store.commits(start=position)
            if pending:
                seconds = max(0.0, (time.time_ns() - pending[0][3]) / 1e9)
        return {
            "journal_length": state.journal_length,
            "position": position,
            "lag_commands": behind,
            "lag_s": round(seconds, 3),
            "scans": {lane: scanner.summary() for lane, scanner in self.scanners.items()},
        }


SCAN_STOP_S = 1.0
"""How long a stopping process waits for its interrupted scans to end."""
SYNC_STEP_COMMANDS = 100_000
"""Most journal commands ingested before the process looks at its socket again (about half a
second of work)."""
EXIT_NO_TOKEN = 2
EXIT_STORE = 3
"""Exit codes the supervisor shows in status: no token on stdin; the journal or the DuckDB file
cannot be opened (say, DuckDB's lock held by a live process, named in the log line; that lock
is the OS's, gone with the process that held it, so a dead holder never blocks a restart)."""


def main() -> None:
    token = sys.stdin.buffer.readline().strip()
    if not token:
        print("analytics: no link token on stdin (the node starts this process)", file=sys.stderr)
        sys.exit(EXIT_NO_TOKEN)
    keep_new_files_private()  # the DuckDB file and its WAL: 0600, however it was started
    try:
        service = AnalyticsService(Home(Path(sys.argv[1])), token)
    except (StoreError, duckdb.Error) as error:  # no journal yet, a locked or damaged file
        print(f"analytics: {str(error).splitlines()[0]}", file=sys.stderr)
        sys.exit(EXIT_STORE)
    service.serve()
    if service.scan_left_running:
        # every write of the store was committed, so in DuckDB's write-ahead log, replayed at
        # the next open; what the running scan had not stored is found again by the next one
        log.info("analytics stopped with a scoring scan still running (not interruptible)")
        logging.shutdown()
        os._exit(0)


if __name__ == "__main__":
    main()

"""The analytics process against local mistakes and local attackers: its ipc socket answers only
the node (the link's token), user SQL reaches no file (DuckDB's external access is off), exports
go below the home's exports/ only, a request it cannot serve is an error answer and never its
death, and the node's sends to it never fail the loop. Real node, real child, real sockets."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq

from marketnode.node.analytics.batch import SCRATCH
from marketnode.node.analytics.link import Hello, SqlRequest, link_encoder
from marketnode.node.client import ClientError
from marketnode.node.home.layout import ANALYTICS_SOCKET, Home
from marketnode.node.server.analytics_link import LINK_HWM, AnalyticsLink

WAIT_S = 120.0
"""Generous: the analytics process imports DuckDB and the detectors on a possibly busy core."""


@pytest.fixture
def analytics_node(node_factory):
    running = node_factory("[analytics]\nenabled = true\ninterval_ms = 50\n")
    admin = running.admin()
    deadline = time.monotonic() + WAIT_S
    while not isinstance(admin.call("status")["analytics"], dict):
        assert time.monotonic() < deadline, "the analytics process did not answer"
        time.sleep(0.05)
    return running


def mnode(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "marketnode.cli", *args],
        capture_output=True, text=True, timeout=WAIT_S,
    )  # fmt: skip


def test_a_local_client_without_the_token_gets_nothing(analytics_node):
    home = analytics_node.home
    socket_file = home.path / ANALYTICS_SOCKET
    assert stat.S_IMODE(socket_file.stat().st_mode) == 0o600
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.linger = 0
    raw.connect(home.analytics_endpoint)
    try:
        query = link_encoder.encode(SqlRequest(1, "SELECT 42"))
        raw.send(link_encoder.encode(Hello()))
        raw.send(query)  # no token
        raw.send_multipart([b"0" * 64, query])  # a wrong one
        raw.send_multipart([b"", b"", query])  # frames of another shape
        # the node's own requests, sent after these, are answered: the ones above were read
        admin = analytics_node.admin()
        for _ in range(3):
            assert admin.call("sql", query="SELECT 42")["rows"] == [[42]]
        assert not raw.poll(1000), "an unauthenticated client got an answer"
    finally:
        raw.close()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('{home}/keys/server.key_secret')",
        "SELECT * FROM glob('{home}/*')",
        "SELECT * FROM read_text('{home}/exports/../config.toml')",
        # the scratch area (/dev/shm) is shared: only this process's own folder is readable
        "SELECT * FROM read_text('{scratch}/mnode-secret-beside-the-ingest-folders')",
    ],
)
def test_user_sql_reads_no_file(analytics_node, query):
    admin = analytics_node.admin()
    home = analytics_node.home.path
    beside = Path(SCRATCH or tempfile.gettempdir()) / "mnode-secret-beside-the-ingest-folders"
    beside.write_text("not for SQL")
    query = query.replace("{scratch}", str(beside.parent))
    try:
        _assert_refused(admin, query.format(home=home), home)
    finally:
        beside.unlink(missing_ok=True)


def _assert_refused(admin, query: str, home) -> None:
    with pytest.raises(ClientError) as refused:
        admin.call("sql", query=query)
    message = str(refused.value)
    assert message.startswith("sql: Permission Error") and "\n" not in message, message
    cli = mnode("sql", query, "--home", str(home))
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1, cli.stderr
    assert cli.stderr.startswith("mnode: sql: Permission Error")
    assert admin.call("sql", query="SELECT 1")["rows"] == [[1]]  # the process serves on


def test_exports_go_below_the_homes_exports_folder_and_mistakes_are_answers(
    analytics_node, tmp_path
):
    home = analytics_node.home.path
    admin = analytics_node.admin()
    pid = analytics_node.node.analytics.pid

    done = admin.call("export", path="today")
    assert done["path"] == str((home / "exports" / "today").resolve())
    assert (home / "exports" / "today" / "trades").is_dir()

    outside = tmp_path / "elsewhere"
    for path, error in [
        (str(outside), "exports go below"),
        ("../keys", "exports go below"),
        ("/etc", "exports go below"),
    ]:
        with pytest.raises(ClientError, match=f"^export: .*{error}"):
            admin.call("export", path=path)
    assert not outside.exists()

    (home / "exports" / "a_file").write_text("not a folder")
    with pytest.raises(ClientError, match=r"^export: .*a_file: exists and is not a folder$"):
        admin.call("export", path="a_file")
    locked = home / "exports" / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(ClientError, match=r"^export: .*Permission"):
            admin.call("export", path="locked/inside")

    cli = mnode("export", "parquet", str(outside), "--home", str(home))
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1, cli.stderr
    assert "exports go below" in cli.stderr

    # the process that answered all this is the one that started, and status says it runs
    assert analytics_node.node.analytics.pid == pid
    assert admin.call("status")["analytics"]["state"].endswith(f"(pid {pid})")


def test_sends_to_a_full_or_absent_process_are_dropped_and_counted(tmp_path, caplog):
    """The link with no process behind it (never started): requests past the queue's bound
    are dropped, counted, logged once, and answered at once as not taken."""
    home = Home.create(tmp_path / "home")
    context = zmq.Context()
    replies = []
    link = AnalyticsLink(home, True, context, lambda topic, payload: None,
                         lambda identity, reply: replies.append(reply))  # fmt: skip
    try:
        with caplog.at_level(logging.WARNING, "marketnode.node"):
            for _ in range(LINK_HWM * 2):
                link.store_rollup([[0, "m", "", 0.0, 0.0, 1]])
        assert link.dropped >= LINK_HWM
        assert len(link.waiting) == LINK_HWM * 2 - link.dropped
        assert [record.getMessage()[:33] for record in caplog.records] == [
            "analytics link: cannot send (Reso"
        ]  # once for the episode, not once per message
    finally:
        link.socket.close()
        context.term()


def test_the_process_refuses_to_start_without_a_token(tmp_path):
    home = Home.create(tmp_path / "home")
    started = subprocess.run(
        [sys.executable, "-m", "marketnode.node.analytics.service", str(home.path)],
        input=b"", capture_output=True, timeout=WAIT_S,
    )  # fmt: skip
    assert started.returncode == 2
    assert started.stderr.decode().strip() == (
        "analytics: no link token on stdin (the node starts this process)"
    )
    assert not (home.path / ANALYTICS_SOCKET).exists()

"""The link to the analytics process: a forwarded admin request that gets no answer in time is
answered `analytics did not answer within N s` and forgotten, and the node goes on serving; a
process that answers again is relayed again. The process is real and stopped with SIGSTOP."""

from __future__ import annotations

import os
import signal
import time

import pytest

from marketnode.node.client.address import ClientError
from marketnode.node.server.analytics_link import ANSWER_WITHIN_S

START_WAIT_S = 120.0
"""Generous: the analytics process imports DuckDB and the detectors on a possibly busy core."""


def wait_for_analytics(admin) -> dict:
    deadline = time.monotonic() + START_WAIT_S
    while True:
        try:
            return admin.call("analytics")
        except ClientError as error:
            assert time.monotonic() < deadline, f"the analytics process did not answer: {error}"


@pytest.mark.slow
def test_an_unanswered_analytics_request_expires_with_a_clear_error(node_factory):
    running = node_factory("[analytics]\nenabled = true\n", {"alice": ("0xa11ce",)})
    admin = running.admin()
    assert "lag_commands" in wait_for_analytics(admin)
    link = running.node.analytics
    assert ANSWER_WITHIN_S >= 5  # the bound in use; shortened here to keep the test short
    link.answer_within_s = 1.0
    process = link.process
    os.kill(process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ClientError, match=r"^analytics did not answer within 1 s$"):
            admin.call("sql", query="SELECT count(*) FROM trades")
        assert time.monotonic() - started < 9  # the node's bound, not the client's 10 s
        # forgotten (the node's own periodic lag request may be waiting meanwhile)
        tokens = set(link.waiting)
        assert all(waiting.expired is None for waiting in link.waiting.values()), tokens
        # the node goes on serving peers and the operator
        assert running.client("alice").ping().ref == 1
        assert admin.call("status")["name"]
    finally:
        os.kill(process.pid, signal.SIGCONT)
    # the late answer is dropped; the next request is answered as usual
    counted = admin.call("sql", query="SELECT 42")
    assert counted["rows"] == [[42]]

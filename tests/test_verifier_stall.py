"""A verifier pool never waits on a worker for good: a worker that stops answering, one that
never says it is ready and workers that cannot start at all each end in answered batches.

The node holds a connection's messages until the pool answers their signatures, so any of
these would stall that connection with nothing in the log. Real worker processes, stopped
with SIGSTOP; the pool's bounds are set to a second so that each test takes a few.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from test_signing import DOMAIN, NOW, WAIT_S, _alive, _batches, _until_ready, a_mixed_batch

from marketnode.node.chain.verifier import VerifierPool

BOUND_S = 1.0
"""The pool's `ready_within_s` and `answer_within_s` here."""


def test_a_stopped_worker_holding_a_batch_is_replaced_and_the_batch_answered(caplog):
    items, reasons = a_mixed_batch()
    caplog.set_level(logging.WARNING, logger="marketnode.node")
    with VerifierPool(1, answer_within_s=BOUND_S) as pool:
        _until_ready(pool, 1)
        (victim,) = pool.worker_pids()
        os.kill(victim, signal.SIGSTOP)  # alive, connected, and never answering
        pool.submit("held", DOMAIN, NOW, items)
        done = _batches(pool, 1)
        assert [verdict.reason for verdict in done["held"].verdicts] == reasons
        assert pool.restarts == 1 and victim not in pool.worker_pids()
        assert not _alive(victim)
    assert "unanswered: killed and replaced" in caplog.text


def test_a_worker_stopped_before_it_is_ready_is_replaced(caplog):
    items, reasons = a_mixed_batch()
    caplog.set_level(logging.WARNING, logger="marketnode.node")
    with VerifierPool(1, ready_within_s=BOUND_S, answer_within_s=BOUND_S) as pool:
        (victim,) = pool.worker_pids()
        os.kill(victim, signal.SIGSTOP)  # still importing: it never says it is ready
        pool.submit("first", DOMAIN, NOW, items)
        done = _batches(pool, 1)
        assert [verdict.reason for verdict in done["first"].verdicts] == reasons
        assert pool.restarts >= 1 and not _alive(victim)
    assert "killed and replaced" in caplog.text


def test_batches_are_given_back_failed_while_no_worker_can_start(monkeypatch):
    """Workers that exit at once (here: an interpreter without its standard library) are
    retried with a growing delay; meanwhile the batches are answered failed, not held."""
    items, _ = a_mixed_batch()
    monkeypatch.setenv("PYTHONHOME", "/nonexistent")
    with VerifierPool(1, ready_within_s=BOUND_S) as pool:
        pool.submit("waiting", DOMAIN, NOW, items)
        done = _batches(pool, 1)
        assert done["waiting"].failed and pool.ready_workers == 0
        monkeypatch.delenv("PYTHONHOME")
        deadline = time.monotonic() + WAIT_S
        while pool.ready_workers == 0:  # the next start (within the growing delay) works
            assert time.monotonic() < deadline, f"no worker ready in {WAIT_S} s"
            pool.wait(0.1)
        pool.submit("after", DOMAIN, NOW, items)
        assert not _batches(pool, 1)["after"].failed

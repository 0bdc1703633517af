"""A pool of worker processes that check batches of signed orders off the caller's thread.

The node's loop hands a batch over with `submit` (it never waits) and picks up finished
batches with `collect` when `socket` is readable in its own zmq poller; it must also call
`collect` on its periodic tick, which is when a dead worker is noticed: its batches go to the
other workers (or to its replacement) and it is started again.

Why these choices:
- Plain `python -m marketnode.node.chain.verifier_worker` children rather than
  multiprocessing: spawn and forkserver re-import the parent's `__main__` (the CLI's whole
  import tree) in every worker, and fork is unsafe in the node (threads, LMDB).
- ZeroMQ ROUTER (here) and DEALER (each worker) over ipc rather than multiprocessing queues:
  one socket the node's poller already knows how to wait on, and the pool addresses each batch
  to one worker, so it knows which batches a dead worker held and sends exactly those again
  (PUSH/PULL would lose them). Each worker holds at most `in_flight` batches; the rest wait
  here and go to whichever worker frees up first.
- A batch that `MAX_ATTEMPTS` workers died on is given back as failed rather than tried
  for ever (one that would kill every worker must not stop the others).
- No wait on a worker is unbounded: one not ready `ready_within_s` after its start, one
  holding batches `answer_within_s` without answering (stopped, hung, or its answer lost),
  and one a batch could not be sent to are killed and replaced, their batches sent again;
  while every worker has failed to start `MAX_ATTEMPTS` times running, batches are given
  back failed. The node holds a connection's messages behind its signature checks, so a
  worker that never answers would otherwise stall that connection for good, silently.

One thread uses a pool (zmq sockets are not thread-safe).
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import zmq

from .eip712 import Domain
from .signatures import SignedCancel, SignedOrder, Verdict
from .verifier_worker import BATCH, READY, VERDICTS

MAX_ATTEMPTS = 3
"""Workers that may die while working on a batch before it is given back failed; also the
failed starts in a row of every worker after which waiting batches are."""
STOP_WITHIN_S = 5.0
"""How long `close` waits for workers to exit before killing them."""
FIRST_RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 30.0
"""A worker that dies before it is ready is restarted after a delay doubling up to this."""
READY_WITHIN_S = 60.0
"""A worker's start (a Python process importing zmq and coincurve, ~0.3 s on an idle
machine, 10 s seen on a loaded one) takes at most this before it is killed and retried."""
ANSWER_WITHIN_S = 30.0
"""A worker answers a batch within this (a batch of 100 takes ~7 ms, and whole-machine
stalls of a few seconds were seen) or it is taken as hung: killed, its batches sent again."""

log = logging.getLogger("marketnode.node")


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    """A finished batch: one verdict per item, in the order submitted; or `failed` (no
    verdicts) when workers died on it `MAX_ATTEMPTS` times."""

    batch_id: Hashable
    verdicts: list[Verdict]
    failed: bool = False


@dataclass(slots=True)
class _Batch:
    batch_id: Hashable
    payload: bytes
    attempts: int = 0


@dataclass(slots=True)
class _Worker:
    slot: int
    generation: int
    process: subprocess.Popen
    routing_id: bytes
    started_at: float
    ready: bool = False
    held: dict[Hashable, _Batch] = field(default_factory=dict)
    answered_at: float = 0.0
    """When it last answered, or was handed a batch while holding none (monotonic s)."""
    lost_why: str | None = None
    """Why it is to be killed and replaced though it runs (None: it is not)."""


class VerifierPool:
    """`workers` verifier processes (default: one fewer than the cores, at least one, so the
    matching thread keeps a core) behind one ROUTER socket."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        in_flight: int = 2,
        context: zmq.Context | None = None,
        ready_within_s: float = READY_WITHIN_S,
        answer_within_s: float = ANSWER_WITHIN_S,
    ) -> None:
        self.size = max(1, (os.cpu_count() or 2) - 1) if workers is None else workers
        if self.size < 1:
            raise ValueError("a verifier pool needs at least one worker")
        self.in_flight = in_flight
        self.ready_within_s = ready_within_s
        self.answer_within_s = answer_within_s
        self.restarts = 0
        self._own_context = context is None
        self._context = context or zmq.Context(io_threads=1)
        self._folder = tempfile.mkdtemp(prefix="mnode-verify-")  # mode 0700: ours alone
        self._endpoint = f"ipc://{self._folder}/verify"
        self.socket = self._context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(self._endpoint)
        self._waiting: deque[_Batch] = deque()
        self._ids: set[Hashable] = set()
        self._done: list[VerifiedBatch] = []
        self._failed_starts = [0] * self.size
        self._restart_at = [0.0] * self.size
        self._generations = [0] * self.size
        self._workers: list[_Worker | None] = [None] * self.size
        self._by_id: dict[bytes, _Worker] = {}
        for slot in range(self.size):
            self._start(slot, generation=0)

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Batches submitted and not yet collected."""
        return len(self._ids)

    @property
    def ready_workers(self) -> int:
        """Workers that said they are ready and have not died since (as last collected)."""
        return sum(1 for worker in self._workers if worker is not None and worker.ready)

    def worker_pids(self) -> list[int]:
        """The pids of the workers running now (for supervision and tests)."""
        return [worker.process.pid for worker in self._workers if worker is not None]

    def submit(
        self,
        batch_id: Hashable,
        domain: Domain,
        now: int,
        items: Sequence[SignedOrder | SignedCancel],
    ) -> None:
        """Queue a batch for checking at time `now` (unix seconds, the caller's clock) and
        send it to a free worker if there is one. Never blocks."""
        if batch_id in self._ids:
            raise ValueError(f"batch {batch_id!r} is already pending")
        payload = pickle.dumps((batch_id, domain, now, list(items)), protocol=5)
        self._ids.add(batch_id)
        self._waiting.append(_Batch(batch_id, payload))
        self._dispatch()

    def collect(self) -> list[VerifiedBatch]:
        """The batches finished since the last call (never waits); also restarts dead
        workers and hands their batches on."""
        while self.socket.poll(0):
            self._receive(self.socket.recv_multipart())
        self._tend()
        self._dispatch()
        done, self._done = self._done, []
        for batch in done:
            self._ids.discard(batch.batch_id)
        return done

    def wait(self, timeout_s: float) -> list[VerifiedBatch]:
        """`collect`, waiting up to `timeout_s` for at least one batch (for callers without
        a poller of their own: the benchmark, tests, tools)."""
        deadline = time.monotonic() + timeout_s
        while True:
            done = self.collect()
            left = deadline - time.monotonic()
            if done or left <= 0 or not self._ids:
                return done
            self.socket.poll(min(left, 0.1) * 1000)

    def close(self) -> None:
        """Stop the workers (pending batches are dropped) and remove the socket's folder."""
        for worker in self._workers:
            if worker is not None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WITHIN_S
        for worker in self._workers:
            if worker is None:
                continue
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        self._workers = [None] * self.size
        self.socket.close()
        if self._own_context:
            self._context.term()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _start(self, slot: int, generation: int) -> None:
        routing_id = f"{slot}.{generation}".encode()
        command = [sys.executable, "-m", "marketnode.node.chain.verifier_worker",
                   self._endpoint, routing_id.decode(), str(os.getpid())]  # fmt: skip
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        worker = _Worker(slot, generation, process, routing_id, time.monotonic())
        self._workers[slot] = worker
        self._by_id[routing_id] = worker

    def _receive(self, frames: list[bytes]) -> None:
        worker = self._by_id.get(frames[0])
        if worker is None:
            return  # a worker already given up as dead
        if frames[1] == READY:
            worker.ready = True
            self._failed_starts[worker.slot] = 0
        elif frames[1] == VERDICTS:
            batch_id, verdicts = pickle.loads(frames[2])
            worker.answered_at = time.monotonic()
            if worker.held.pop(batch_id, None) is not None:
                self._done.append(VerifiedBatch(batch_id, verdicts))

    def _tend(self) -> None:
        """Replace each dead or lost worker (after a delay if it was never ready); its
        batches go back to the front of the queue. While every worker has failed to start
        `MAX_ATTEMPTS` times running, the waiting batches are given back failed."""
        now = time.monotonic()
        for slot, worker in enumerate(self._workers):
            if worker is not None and worker.process.poll() is None:
                self._kill_if_lost(worker, now)
            if worker is not None and worker.process.poll() is not None:
                self._bury(worker)
                self._workers[slot] = None
                self._generations[slot] = worker.generation + 1
                if not worker.ready:
                    self._failed_starts[slot] += 1
                failures = self._failed_starts[slot]
                delay = FIRST_RESTART_DELAY_S * 2 ** (failures - 1) if failures else 0.0
                self._restart_at[slot] = now + min(MAX_RESTART_DELAY_S, delay)
            if self._workers[slot] is None and now >= self._restart_at[slot]:
                self._start(slot, self._generations[slot])
                self.restarts += 1
        if min(self._failed_starts) >= MAX_ATTEMPTS:
            while self._waiting:
                self._done.append(VerifiedBatch(self._waiting.popleft().batch_id, [], True))

    def _kill_if_lost(self, worker: _Worker, now: float) -> None:
        """Kill a running worker that cannot be counted on any more (`_tend` replaces it):
        one a send failed to, one not ready in time, one holding batches unanswered."""
        why = worker.lost_why
        if why is None and not worker.ready and now - worker.started_at > self.ready_within_s:
            why = f"not ready {self.ready_within_s:g} s after its start"
        if why is None and worker.held and now - worker.answered_at > self.answer_within_s:
            why = f"held {len(worker.held)} batches {self.answer_within_s:g} s unanswered"
        if why is None:
            return
        log.warning("verifier worker %s (pid %d) %s: killed and replaced",
                    worker.routing_id.decode(), worker.process.pid, why)  # fmt: skip
        worker.process.kill()
        worker.process.wait()

    def _bury(self, worker: _Worker) -> None:
        """Take back a dead worker's batches. Only the oldest, the one it was working on
        (a worker answers in order), counts an attempt: the others never reached it."""
        del self._by_id[worker.routing_id]
        held = list(worker.held.values())
        worker.held.clear()
        if held:
            held[0].attempts += 1
            if held[0].attempts >= MAX_ATTEMPTS:
                self._done.append(VerifiedBatch(held.pop(0).batch_id, [], failed=True))
        self._waiting.extendleft(reversed(held))

    def _dispatch(self) -> None:
        """Send waiting batches to the ready workers holding the fewest."""
        while self._waiting:
            free = [
                worker
                for worker in self._workers
                if worker is not None and worker.ready and len(worker.held) < self.in_flight
            ]
            if not free:
                return
            worker = min(free, key=lambda candidate: len(candidate.held))
            batch = self._waiting[0]
            try:
                self.socket.send_multipart([worker.routing_id, BATCH, batch.payload], zmq.NOBLOCK)
            except zmq.ZMQError as error:
                # unreachable or full: it would never be sent another batch (nor tell it is
                # ready again), so it is replaced
                worker.ready = False
                worker.lost_why = f"could not be sent a batch ({error})"
                continue
            self._waiting.popleft()
            if not worker.held:
                worker.answered_at = time.monotonic()
            worker.held[batch.batch_id] = batch

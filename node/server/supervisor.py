"""Child processes the node runs beside itself (the analytics process; settlement and liquidity
next), each kept by a `Supervisor`: started, watched, restarted with a bounded backoff, and
described truthfully ("running since T (pid P)", "died at T (signal SIGKILL), restarting in
2.0 s (attempt 2)", "off").

A child dies with the node, whatever the timing. A pipe or an ipc socket it polls only tells
it once its own slow start (DuckDB, plugins) is over, and a parent pid read then may already be
1: so the child is started through this module, which, as the child's first act, asks Linux to
send it `death_signal` when its parent dies (`prctl(PR_SET_PDEATHSIG)` through ctypes, with no
`preexec_fn`, which is unsafe beside threads) and then checks that the parent pid given on its
command line is still its parent (a parent that died before the `prctl` is caught there). Only
then does it run the child's module:

    python -m marketnode.node.server.supervisor PARENT_PID SIGNAL [--nice N] MODULE [ARGS...]

With `--nice N` the guard lowers its priority by N before the module runs, so every thread the
child makes has it (Linux keeps a niceness per thread, and a new thread takes its creator's).

Linux counts the parent as the *thread* that started the child: a supervisor is started and
tended from a thread that lives as long as its owner (the node's loop, or the thread that
started the node). A secret the child needs (its link's token) goes on its stdin, never its
command line or environment (both readable by the user's other processes in /proc).

This module's top level imports nothing heavy: it is the first thing every child runs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1
"""linux/prctl.h: the signal a process gets when its parent dies."""
EXIT_ORPHANED = 70
"""A child's exit code when its parent was already gone as it started."""
STOP_WITHIN_S = 10.0
"""How long `stop` waits for a child to finish after SIGTERM before killing it."""

log = logging.getLogger("marketnode.node")


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Restart after `first_delay_s`, doubling up to `max_delay_s` for each death that follows
    too soon; a run of `stable_after_s` starts the count again."""

    first_delay_s: float = 1.0
    max_delay_s: float = 60.0
    stable_after_s: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds before restart number `attempt` (1, 2, ...)."""
        return min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class Death:
    """How a child ended: when (wall clock) and why."""

    at: float
    cause: str


class Supervisor:
    """One child process: `start` it, `tend` it from the owner's loop, `stop` it at the end."""

    def __init__(
        self,
        name: str,
        module: str,
        args: Sequence[str] = (),
        *,
        policy: RestartPolicy = RestartPolicy(),
        death_signal: signal.Signals = signal.SIGKILL,
        secret: bytes | None = None,
        nice: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.module = module
        self.args = list(args)
        self.policy = policy
        self.death_signal = death_signal
        self.secret = secret
        """Written on the child's stdin (then closed) at each start."""
        self.nice = nice
        """Added to the child's niceness before its module runs."""
        self.clock = clock
        """Schedules restarts (monotonic; a test may drive it)."""
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        """Wall-clock start of the running child."""
        self._started_on = 0.0
        self.death: Death | None = None
        """The last death not yet followed by a restart."""
        self.attempt = 0
        """Restarts since the last stable run."""
        self.deaths = 0
        """Deaths noticed so far (for whoever talks to the child to notice them too)."""
        self._restart_on = 0.0
        self._stopped = True

    @property
    def command(self) -> list[str]:
        return guarded_command(self.module, self.args, self.death_signal, self.nice)

    @property
    def pid(self) -> int | None:
        """The running child's pid (None when it is not running)."""
        return self.process.pid if self.running else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self._stopped = False
        self._spawn()

    def tend(self) -> bool:
        """Notice a death (logged once) and restart when its delay is over. True when a new
        child was started (whoever talks to it introduces itself again)."""
        if self._stopped:
            return False
        self.notice()
        if self.death is None:
            if self.clock() - self._started_on >= self.policy.stable_after_s:
                self.attempt = 0
            return False
        if self.clock() < self._restart_on:
            return False
        self._spawn()
        return self.running

    def notice(self) -> None:
        """Record the child's death if it has ended (its restart is scheduled)."""
        if not self._stopped and self.death is None and not self.running:
            self._died(_cause(self.process.returncode))  # type: ignore[union-attr]

    def status(self) -> str:
        """What is really running, in words."""
        if self._stopped:
            return "off"
        self.notice()
        if self.death is not None:
            wait = max(0.0, self._restart_on - self.clock())
            return (
                f"died at {_iso(self.death.at)} ({self.death.cause}), restarting in "
                f"{wait:.1f} s (attempt {self.attempt})"
            )
        return f"running since {_iso(self.started_at)} (pid {self.process.pid})"  # type: ignore[union-attr]

    def terminate(self) -> None:
        """SIGTERM without waiting for the child; no restart follows."""
        self._stopped = True
        if self.running:
            self.process.terminate()  # type: ignore[union-attr]

    def stop(self, within_s: float = STOP_WITHIN_S) -> None:
        """SIGTERM, then SIGKILL after `within_s`; no restart follows."""
        self.terminate()
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            process.wait(timeout=within_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _spawn(self) -> None:
        try:
            process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE if self.secret is not None else None
            )
        except OSError as error:
            self._died(f"could not start: {error.strerror}")
            return
        if self.secret is not None:
            try:
                process.stdin.write(self.secret + b"\n")  # type: ignore[union-attr]
                process.stdin.close()  # type: ignore[union-attr]
            except OSError:  # died at once: noticed by the next `tend`
                pass
        self.process = process
        self.started_at = time.time()
        self._started_on = self.clock()
        self.death = None
        log.info("%s process started (pid %d)", self.name, process.pid)

    def _died(self, cause: str) -> None:
        self.deaths += 1
        self.attempt += 1
        delay = self.policy.delay(self.attempt)
        self.death = Death(time.time(), cause)
        self._restart_on = self.clock() + delay
        log.error(
            "%s process died (%s): restarting in %.1f s (attempt %d)",
            self.name, cause, delay, self.attempt,
        )  # fmt: skip


class SupervisedLink:
    """The node's side of a child it runs only when `enabled` (the relayer, the liquidity
    process): started with the node, tended from the loop's housekeeping, stopped with it."""

    enabled: bool
    supervisor: Supervisor
    _closing_until: float | None = None

    def start(self) -> None:
        if self.enabled:
            self.supervisor.start()

    def supervise(self) -> None:
        """Notice the child's death and restart it when due (from the loop's housekeeping)."""
        if self.enabled:
            self.supervisor.tend()

    def stop(self) -> None:
        """SIGTERM, then wait for the child (it ends what it was doing first)."""
        self.supervisor.stop()

    def closes_within(self, within_s: float) -> bool:
        """For the owner's loop once it is stopping: the first call sends SIGTERM; True while
        the child still runs, for at most `within_s` after that call (the loop serves what the
        child does last, then `stop` ends what is left)."""
        if self._closing_until is None:
            self._closing_until = time.monotonic() + within_s
            if self.enabled:
                self.supervisor.terminate()
        return self.enabled and self.supervisor.running and time.monotonic() < self._closing_until


def _cause(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


# -- in the child ------------------------------------------------------------------------------


def guarded_command(
    module: str, args: Sequence[str], death_signal: int, nice: int = 0
) -> list[str]:
    """The command running `module` (with `args`) as a child that is sent `death_signal` when
    the thread starting it dies (the module's docstring says why through this module), `nice`
    lower in priority."""
    guard = [sys.executable, "-m", __name__, str(os.getpid()), str(int(death_signal))]
    if nice:
        guard += ["--nice", str(nice)]
    return [*guard, module, *args]


def die_with_parent(parent: int, death_signal: int) -> bool:
    """Have Linux send `death_signal` when the parent dies; False when `parent` is gone
    already (this process was orphaned before it could ask)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    return os.getppid() == parent


def main() -> None:
    parent, death_signal, *rest = sys.argv[1:]
    if not die_with_parent(int(parent), int(death_signal)):
        sys.exit(EXIT_ORPHANED)
    if rest[0] == "--nice":
        os.nice(int(rest[1]))
        rest = rest[2:]
    module, *args = rest
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

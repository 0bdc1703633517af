"""Crash test: kill a loaded node with SIGKILL at random moments; lose nothing acknowledged.

    python bench/crash.py --rounds N [--seed S] [--home DIR]

Each round starts `mnode start` on the same home, offers a flow from one connection (random
batch sizes, many messages in flight), kills the node with SIGKILL at a random moment, and then
checks, on the store the dead node left:

- `verify`: replaying the journal from the start reproduces the stored books and every
  per-commit state hash;
- nothing lost, nothing applied twice: the commands this round journaled are exactly the
  first k commands it sent, in order, and every command it got an answer for is among them;
- every event it was sent (answers, trades, rests, cancels) is the event the replay produces
  at the same seq.

Ends with one summary line; exits 0 only when every round passed.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from marketnode.node.client import Client, address_of_home
from marketnode.node.core.commands import ConfigureMarkets, NewOrder
from marketnode.node.core.engine import Engine
from marketnode.node.home.keys import KeyPair
from marketnode.node.home.layout import Home
from marketnode.node.protocol.messages import Reply
from marketnode.node.protocol.wire_events import wire_event
from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.verify import verify_store
from marketnode.node.tools.e2e import prepare_home, start_node_process
from marketnode.node.tools.flow import generate_flow
from marketnode.node.tools.load import encode_messages

COMMANDS_PER_ROUND = 200_000
SILENCE_S = 0.5
"""After the kill, the round ends once the socket has been quiet this long."""


def run_round(home: Home, key: KeyPair, rng: random.Random, first_id: int) -> tuple[list[str], int]:
    """One kill; returns (problems, commands acknowledged)."""
    journal_start = _journal_length(home)

    sent = list(generate_flow(COMMANDS_PER_ROUND, seed=rng.randrange(1 << 30), first_id=first_id))
    process = start_node_process(home)
    client = Client(address_of_home(home), key)
    acknowledged = 0
    received_events: list = []
    try:
        position = 0
        in_flight = 0
        kill_at = time.monotonic() + rng.uniform(0.2, 1.5)
        killed = False
        last_heard = time.monotonic()
        while True:
            now = time.monotonic()
            if not killed and now >= kill_at:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                killed = True
            while not killed and in_flight < 32 and position < len(sent):
                size = rng.choice((1, 1, 1, 5, 20, 50))
                chunk = sent[position : position + size]
                ((_, _, payload),) = encode_messages(chunk, len(chunk))
                client.socket.send(payload)
                position += len(chunk)
                in_flight += 1
            message = client.receive(timeout_ms=50)
            if message is None:
                if killed and time.monotonic() - last_heard > SILENCE_S:
                    break
                continue
            last_heard = time.monotonic()
            if type(message) is Reply:
                in_flight -= 1
                acknowledged += sum(
                    1 for e in message.events if e.__struct_config__.tag in ("accepted", "rejected")
                )
            received_events.extend(message.events)
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    return check_store(home, journal_start, sent, acknowledged, received_events), acknowledged


def _as_sent(command: object) -> object:
    """A journaled command without what the node added (the placing peer's name)."""
    if type(command) is NewOrder:
        return msgspec.structs.replace(command, peer=None)
    return command


def _journal_length(home: Home) -> int:
    path = home.store_path(home.config())
    if not (path / "data.mdb").exists():
        return 0
    store = Store(path, readonly=True)
    try:
        return store.state().journal_length
    finally:
        store.close()


def check_store(
    home: Home, journal_start: int, sent: list, acknowledged: int, received_events: list
) -> list[str]:
    problems: list[str] = []
    store = Store(home.store_path(home.config()), readonly=True)
    try:
        report = verify_store(store)
        problems += [f"verify: {problem}" for problem in report.problems]
        journaled = [
            _as_sent(command)
            for _, command in store.journal(start=journal_start)
            if type(command) is not ConfigureMarkets
        ]
        encode = msgspec.msgpack.encode
        if [encode(c) for c in journaled] != [encode(c) for c in sent[: len(journaled)]]:
            problems.append(
                "the journal is not the commands sent, in order (lost, repeated or reordered)"
            )
        if len(journaled) < acknowledged:
            problems.append(f"{acknowledged} commands answered but only {len(journaled)} journaled")
        replayed = _replay_events(store)
    finally:
        store.close()
    for event in received_events:
        if event.seq is None:
            continue
        expected = replayed.get(event.seq)
        if expected != msgspec.to_builtins(event):
            problems.append(
                f"event seq {event.seq} was sent as {msgspec.to_builtins(event)}, "
                f"replay gives {expected}"
            )
            break
    return problems


def _replay_events(store: Store) -> dict[int, dict]:
    engine = Engine()
    events: dict[int, dict] = {}
    out: list = []
    for _, command in store.journal():
        engine.process(command, out)
        for event in out:
            if getattr(event, "seq", None) is not None:
                events[event.seq] = msgspec.to_builtins(wire_event(event, engine.books))
        out.clear()
    return events


def main() -> int:
    parser = argparse.ArgumentParser(description="SIGKILL a loaded node at random moments.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--home", type=Path, help="Run in this (new) folder instead of a temporary one."
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="mnode-crash-") as folder:
        home, key = prepare_home((args.home or Path(folder)) / "home")
        total_acknowledged = 0
        failures = 0
        for round_number in range(1, args.rounds + 1):
            problems, acknowledged = run_round(home, key, rng, first_id=round_number * 10_000_000)
            total_acknowledged += acknowledged
            status = "ok" if not problems else "FAILED"
            print(
                f"round {round_number}: {acknowledged} commands acknowledged before the "
                f"kill: {status}",
                file=sys.stderr,
            )
            for problem in problems[:10]:
                print(f"  {problem}", file=sys.stderr)
            failures += bool(problems)
    verdict = (
        "nothing lost, nothing applied twice, verify ok"
        if not failures
        else f"{failures} rounds FAILED"
    )
    print(
        f"crash test: {args.rounds} rounds, {total_acknowledged} commands acknowledged, {verdict}"
    )
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())

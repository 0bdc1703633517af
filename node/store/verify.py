"""Verification: replay the journal from the start into a fresh engine and compare.

Three checks, each naming where it fails: the stored books against the stored state hash (a
tampered record), the replay's state hash against the one stored with every commit (the first
commit where live and replay part), and the replayed books against the stored ones, order by order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from ..core.engine import Engine
from .lmdb_store import Store
from .statehash import (
    BookHash,
    format_hash,
    hash_records,
    order_from_record,
    order_key,
    order_value,
)

MAX_ORDER_DIFFERENCES = 20
"""Order-level differences listed before the rest are only counted."""


@dataclass
class VerifyReport:
    journal_entries: int = 0
    commits: int = 0
    resting_orders: int = 0
    seq: int = 0
    state_hash: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(store: Store) -> VerifyReport:
    state, records = store.snapshot()
    # commits read after the snapshot may include newer ones a running writer made
    commits = [commit for commit in store.commits() if commit[0] <= state.journal_length]
    report = VerifyReport(
        journal_entries=state.journal_length,
        commits=len(commits),
        resting_orders=len(records),
        seq=state.seq,
        state_hash=format_hash(state.state_hash),
    )
    stored_books_hash = hash_records(records)
    if stored_books_hash != state.state_hash:
        report.problems.append(
            f"stored books hash to {format_hash(stored_books_hash)}, but the last commit recorded "
            f"{format_hash(state.state_hash)}: the order records were changed outside the engine"
        )
    engine, replay_problems = _replay(store, state.journal_length, commits)
    report.problems.extend(replay_problems)
    if engine.seq != state.seq:
        report.problems.append(f"replay ends at seq {engine.seq}, the store at seq {state.seq}")
    report.problems.extend(_compare_books(engine, records))
    return report


def _replay(
    store: Store, journal_length: int, commits: list[tuple[int, int, int, int]]
) -> tuple[Engine, list[str]]:
    engine = Engine()
    book_hash = BookHash()
    problems: list[str] = []
    boundaries = iter(commits)
    boundary = next(boundaries, None)
    scratch: list = []
    hash_diverged = False
    try:
        for index, command in store.journal(stop=journal_length):
            engine.process(command, scratch)
            scratch.clear()
            if boundary is not None and index + 1 == boundary[0]:
                plan = book_hash.plan(engine.take_changes())
                book_hash.apply(plan)
                _, seq, stored_hash, _ = boundary
                if not hash_diverged and (plan.state_hash != stored_hash or seq != engine.seq):
                    hash_diverged = True
                    problems.append(
                        f"first divergence at the commit ending with journal entry {index} "
                        f"(seq {seq}): stored state hash {format_hash(stored_hash)}, replay gives "
                        f"{format_hash(plan.state_hash)} at seq {engine.seq}"
                    )
                boundary = next(boundaries, None)
    except msgspec.DecodeError as error:
        problems.append(f"journal entry cannot be read: {error}")
    return engine, problems


def _compare_books(engine: Engine, records: list[tuple[bytes, bytes]]) -> list[str]:
    stored = dict(records)
    replayed = {order_key(order): order_value(order) for order in engine.resting_orders()}
    problems: list[str] = []
    keys = sorted(stored.keys() | replayed.keys())
    differing = [key for key in keys if stored.get(key) != replayed.get(key)]
    for key in differing[:MAX_ORDER_DIFFERENCES]:
        problems.append(_describe(key, stored.get(key), replayed.get(key)))
    if len(differing) > MAX_ORDER_DIFFERENCES:
        problems.append(f"... and {len(differing) - MAX_ORDER_DIFFERENCES} more order differences")
    return problems


def _describe(key: bytes, stored: bytes | None, replayed: bytes | None) -> str:
    order = order_from_record(key, stored or replayed)  # type: ignore[arg-type]
    name = f"market {order.market} order (owner {order.owner!r}, id {order.id!r})"
    if stored is None:
        return f"{name}: rests after replay but is missing from the store"
    if replayed is None:
        return f"{name}: is in the store but does not rest after replay"
    before = order_from_record(key, stored)
    after = order_from_record(key, replayed)
    fields = [
        f"{attr} stored {getattr(before, attr)!r}, replay {getattr(after, attr)!r}"
        for attr in ("is_buy", "price", "remaining", "priority", "stp", "peer")
        if getattr(before, attr) != getattr(after, attr)
    ]
    return f"{name}: " + "; ".join(fields)

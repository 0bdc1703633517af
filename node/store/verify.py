"""Verification: replay the journal from the start into a fresh engine and compare.

The checks, each naming where it fails: the last commit record, the sequence and the journal's
end against the store's meta (a lost or damaged entry); the stored books against the stored state
hash (a tampered record); the replay's state hash against the one stored with every commit (the
first commit where live and replay part); and the replayed books against the stored ones, order by
order.

A start checks less, in bounded time (`check_for_start`): the whole of this when the journal holds
at most START_REPLAY_COMMANDS commands, else everything but the replay (the meta, the last commit,
the newest START_TAIL_ENTRIES journal entries, every order record against the state hash).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from ..core.engine import Engine
from .lmdb_store import Store, StoredState, StoreError
from .statehash import (
    NONCED_RECORD,
    BookHash,
    format_hash,
    hash_records,
    hashed_value,
    nonce_writes,
    order_from_record,
    order_key,
    order_value,
)

MAX_ORDER_DIFFERENCES = 20
"""Order-level differences listed before the rest are only counted."""
START_REPLAY_COMMANDS = 100_000
"""A start replays the whole journal up to this many commands (about a second); beyond, it
checks everything but the replay, which `mnode verify` does."""
START_TAIL_ENTRIES = 64
"""Journal entries (batches) a start reads back from the end when it does not replay."""


@dataclass
class VerifyReport:
    journal_entries: int = 0
    commits: int = 0
    resting_orders: int = 0
    seq: int = 0
    state_hash: str = ""
    problems: list[str] = field(default_factory=list)
    seq_at: dict[int, int] = field(default_factory=dict)
    """The replay's seq after each journal position asked for (what the analytics store
    should have ingested by then)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(store: Store, seq_at: tuple[int, ...] = ()) -> VerifyReport:
    """Every check; `seq_at`: journal positions whose replayed seq the report gives."""
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
    report.problems.extend(_meta_problems(state, commits[-1] if commits else None))
    report.problems.extend(_books_hash_problems(state, records))
    engine, replay_problems = _replay(store, state.journal_length, commits, seq_at, report.seq_at)
    report.problems.extend(replay_problems)
    if engine.seq != state.seq:
        report.problems.append(f"replay ends at seq {engine.seq}, the store at seq {state.seq}")
    report.problems.extend(_compare_books(engine, records))
    report.problems.extend(_compare_nonces(engine, state.nonce_records))
    return report


def check_for_start(store: Store) -> list[str]:
    """What a start checks before the node writes to the store: its problems (none: go)."""
    state = store.state()
    if state.journal_length <= START_REPLAY_COMMANDS:
        return verify_store(store).problems
    state, records = store.snapshot()
    problems = _meta_problems(state, store.last_commit())
    problems.extend(_books_hash_problems(state, records))
    problems.extend(_record_problems(records, {spec.symbol for spec in state.markets}))
    problems.extend(_tail_problems(store.journal_tail(START_TAIL_ENTRIES), state.journal_length))
    return problems


def checked_snapshot(store: Store) -> tuple[StoredState, list[tuple[bytes, bytes]]]:
    """The last commit's state and order records, refused (StoreError) unless the records
    hash to the state hash and each rests in a stored market: a reader shows no damaged book."""
    state, records = store.snapshot()
    problems = _books_hash_problems(state, records)
    problems += _record_problems(records, {spec.symbol for spec in state.markets})
    if problems:
        raise StoreError(f"{store.path}: {problems[0]}; run `mnode verify`")
    return state, records


def _meta_problems(state: StoredState, last: tuple[int, int, int, int] | None) -> list[str]:
    """The meta (seq, journal length, state hash) is written with the last commit record."""
    if last is None:
        if state.journal_length or state.seq:
            return [f"the meta says journal length {state.journal_length}, but no commit is stored"]
        return []
    length, seq, state_hash, _ = last
    if (length, seq, state_hash) != (state.journal_length, state.seq, state.state_hash):
        return [
            f"the last commit record (journal length {length}, seq {seq}, state hash "
            f"{format_hash(state_hash)}) disagrees with the meta (journal length "
            f"{state.journal_length}, seq {state.seq}, state hash {format_hash(state.state_hash)})"
        ]
    return []


def _books_hash_problems(state: StoredState, records: list[tuple[bytes, bytes]]) -> list[str]:
    stored_books_hash = hash_records([*records, *state.nonce_records])
    if stored_books_hash == state.state_hash:
        return []
    return [
        f"stored books hash to {format_hash(stored_books_hash)}, but the last commit recorded "
        f"{format_hash(state.state_hash)}: the order records were changed outside the engine"
    ]


def _record_problems(records: list[tuple[bytes, bytes]], markets: set[str]) -> list[str]:
    """Order records that do not decode, or rest in a market the store does not list."""
    problems = []
    for key, value in records:
        try:
            market = order_from_record(key, value).market
        except msgspec.DecodeError:
            problems.append(f"an order record cannot be read (key {key.hex()})")
            continue
        if market not in markets:
            problems.append(f"an order record rests in market {market!r}, which is not stored")
        if len(problems) >= MAX_ORDER_DIFFERENCES:
            break
    return problems


def _tail_problems(entries: list[tuple[int, list]], journal_length: int) -> list[str]:
    """The newest journal entries follow each other and end where the meta says."""
    expected = entries[0][0] if entries else 0
    for first, commands in entries:
        if first != expected:
            return [f"journal entry {first} follows entries ending at {expected}: one is missing"]
        expected = first + len(commands)
    if expected != journal_length:
        return [f"the journal ends at {expected} commands, the meta says {journal_length}"]
    return []


def _replay(
    store: Store,
    journal_length: int,
    commits: list[tuple[int, int, int, int]],
    seq_at: tuple[int, ...] = (),
    seqs: dict[int, int] | None = None,
) -> tuple[Engine, list[str]]:
    engine = Engine()
    wanted = set(seq_at)
    if seqs is not None and 0 in wanted:
        seqs[0] = 0
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
            if seqs is not None and index + 1 in wanted:
                seqs[index + 1] = engine.seq
            if boundary is not None and index + 1 == boundary[0]:
                nonces = nonce_writes(engine.nonces, engine.nonces.take_changes())
                plan = book_hash.plan(engine.take_changes(), nonces)
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
    differing = [key for key in keys if not _same_order(stored.get(key), replayed.get(key))]
    for key in differing[:MAX_ORDER_DIFFERENCES]:
        problems.append(_describe(key, stored.get(key), replayed.get(key)))
    if len(differing) > MAX_ORDER_DIFFERENCES:
        problems.append(f"... and {len(differing) - MAX_ORDER_DIFFERENCES} more order differences")
    return problems


def _same_order(stored: bytes | None, replayed: bytes | None) -> bool:
    """The same record, or a signed order's record written before orders kept their nonce
    (statehash.py) with every field of the replayed one but the nonce."""
    if stored == replayed:
        return True
    return (stored is not None and replayed is not None and stored[0] != NONCED_RECORD
            and replayed[0] == NONCED_RECORD and hashed_value(replayed) == stored)  # fmt: skip


def _compare_nonces(engine: Engine, records: list[tuple[bytes, bytes]]) -> list[str]:
    """The used nonces after the replay against the stored ones, owner by owner."""
    stored = dict(records)
    replayed = nonce_writes(engine.nonces, engine.nonces.owners())
    differing = sorted(key for key in stored.keys() | replayed.keys()
                       if stored.get(key) != replayed.get(key))  # fmt: skip
    problems = [
        f"the used nonces of owner {msgspec.msgpack.decode(key)[0]!r} differ: stored "
        f"{_nonces_text(stored.get(key))}, replay {_nonces_text(replayed.get(key))}"
        for key in differing[:MAX_ORDER_DIFFERENCES]
    ]
    if len(differing) > MAX_ORDER_DIFFERENCES:
        problems.append(f"... and {len(differing) - MAX_ORDER_DIFFERENCES} more nonce differences")
    return problems


def _nonces_text(value: bytes | None) -> str:
    if value is None:
        return "none"
    floor, above = msgspec.msgpack.decode(value)
    return f"all below {floor}" + (f" and {', '.join(above)}" if above else "")


def _describe(key: bytes, stored: bytes | None, replayed: bytes | None) -> str:
    try:
        order = order_from_record(key, stored or replayed)  # type: ignore[arg-type]
        if stored is not None:
            order_from_record(key, stored)
    except msgspec.DecodeError:
        return f"an order record cannot be read (key {key.hex()}): it differs from the replay"
    name = f"market {order.market} order (owner {order.owner!r}, id {order.id!r})"
    if stored is None:
        return f"{name}: rests after replay but is missing from the store"
    if replayed is None:
        return f"{name}: is in the store but does not rest after replay"
    before = order_from_record(key, stored)
    after = order_from_record(key, replayed)
    fields = [
        f"{attr} stored {getattr(before, attr)!r}, replay {getattr(after, attr)!r}"
        for attr in ("is_buy", "price", "remaining", "priority", "stp", "peer", "expiry", "nonce")
        if getattr(before, attr) != getattr(after, attr)
    ]
    return f"{name}: " + "; ".join(fields)

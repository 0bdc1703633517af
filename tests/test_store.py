"""The LMDB store: persistence, restart equivalence, map growth, verify, one writer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import lmdb
import msgspec
import pytest

from marketnode.node.core.commands import CancelOrder, NewOrder
from marketnode.node.core.engine import Engine, MarketChangeRefused
from marketnode.node.core.markets import MarketSpec
from marketnode.node.home.config import default_markets
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store, StoreError
from marketnode.node.store.statehash import hash_records, order_key, order_value
from marketnode.node.store.verify import verify_store
from marketnode.node.tools.flow import generate_flow

MARKETS = default_markets()


def batches(commands, size):
    return [commands[start : start + size] for start in range(0, len(commands), size)]


def open_durable(path, **options) -> tuple[Store, DurableEngine]:
    store = Store(path, **options)
    durable = DurableEngine(store)
    durable.configure(MARKETS)
    return store, durable


def stored_books(path) -> dict[bytes, bytes]:
    store = Store(path, readonly=True)
    try:
        return dict(store.snapshot()[1])
    finally:
        store.close()


def test_reopen_restores_the_same_books_and_hash(tmp_path):
    commands = list(generate_flow(5000, seed=3))
    store, durable = open_durable(tmp_path / "data")
    for batch in batches(commands, 400):
        durable.submit(batch)
    live_orders = {order_key(o): order_value(o) for o in durable.engine.resting_orders()}
    live_hash, live_seq = durable.book_hash.value, durable.engine.seq
    store.close()

    assert stored_books(tmp_path / "data") == live_orders
    store, reopened = open_durable(tmp_path / "data")
    try:
        assert reopened.engine.seq == live_seq
        assert reopened.book_hash.value == live_hash == hash_records(live_orders.items())
        assert {order_key(o): order_value(o) for o in reopened.engine.resting_orders()} == (
            live_orders
        )
    finally:
        store.close()


def test_a_restart_changes_nothing_that_follows(tmp_path):
    """Events after a restart are exactly those of an uninterrupted run (priority survives)."""
    commands = list(generate_flow(6000, seed=11))
    continuous = Engine(MARKETS).process_all(commands)

    events = []
    store, durable = open_durable(tmp_path / "data")
    for batch in batches(commands[:3000], 500):
        events.extend(durable.submit(batch))
    store.close()
    store, durable = open_durable(tmp_path / "data")
    try:
        for batch in batches(commands[3000:], 500):
            events.extend(durable.submit(batch))
    finally:
        store.close()
    assert events == continuous


def test_a_full_map_grows_and_loses_nothing(tmp_path):
    commands = list(generate_flow(20_000, seed=5))
    store, durable = open_durable(tmp_path / "data", map_size=1 << 20)
    try:
        for batch in batches(commands, 1000):
            durable.submit(batch)
        assert store.env.info()["map_size"] > 1 << 20
        assert store.state().journal_length == len(commands) + 1
    finally:
        store.close()
    store = Store(tmp_path / "data", readonly=True)
    try:
        report = verify_store(store)
    finally:
        store.close()
    assert report.ok, report.problems
    assert report.journal_entries == len(commands) + 1


def replayed_report(path):
    store = Store(path, readonly=True)
    try:
        return verify_store(store)
    finally:
        store.close()


@pytest.fixture
def journaled_home(tmp_path):
    store, durable = open_durable(tmp_path / "data")
    for batch in batches(list(generate_flow(3000, seed=9)), 250):
        durable.submit(batch)
    store.close()
    return tmp_path / "data"


def test_verify_passes_on_an_untouched_store(journaled_home):
    report = replayed_report(journaled_home)
    assert report.ok, report.problems
    assert report.commits == 13
    assert report.resting_orders > 0


def test_verify_names_a_tampered_order(journaled_home):
    env = lmdb.open(str(journaled_home), max_dbs=4)
    orders = env.open_db(b"orders")
    with env.begin(write=True, db=orders) as txn:
        key, value = next(iter(txn.cursor()))
        fields = msgspec.msgpack.decode(value)
        fields[2] += 7
        txn.put(key, msgspec.msgpack.encode(fields))
    env.close()
    report = replayed_report(journaled_home)
    assert not report.ok
    assert any("changed outside the engine" in problem for problem in report.problems)
    market, owner, order_id = msgspec.msgpack.decode(key)
    named = [
        problem
        for problem in report.problems
        if problem.startswith(
            f"market {market} order (owner {owner!r}, id {order_id!r}): remaining"
        )
    ]
    assert named, report.problems


def test_verify_names_an_order_whose_peer_was_changed(journaled_home):
    """The placing peer is part of an order's record: a changed one is named like any field."""
    env = lmdb.open(str(journaled_home), max_dbs=4)
    orders = env.open_db(b"orders")
    with env.begin(write=True, db=orders) as txn:
        key, value = next(iter(txn.cursor()))
        fields = msgspec.msgpack.decode(value)
        fields[5] = "someone-else"
        txn.put(key, msgspec.msgpack.encode(fields))
    env.close()
    report = replayed_report(journaled_home)
    market, owner, order_id = msgspec.msgpack.decode(key)
    name = f"market {market} order (owner {owner!r}, id {order_id!r})"
    assert f"{name}: peer stored 'someone-else', replay None" in report.problems, report.problems


def test_verify_finds_the_first_commit_a_tampered_journal_changes(journaled_home):
    env = lmdb.open(str(journaled_home), max_dbs=4)
    journal = env.open_db(b"journal")
    with env.begin(write=True, db=journal) as txn:
        # one entry per commit, keyed by its first command's number: command 0 configures the
        # markets, commands 1..250 are the next commit, 501..750 the fourth
        key = (501).to_bytes(8, "big")
        batch = msgspec.msgpack.decode(txn.get(key))
        # command 601 becomes an order nobody sent: an ask far above the market, left resting
        batch[100] = {
            "op": "new", "id": "forged", "owner": "0xforged", "market": "PUNK-ETH",
            "side": "sell", "price": "9999", "qty": "1",
        }  # fmt: skip
        txn.put(key, msgspec.msgpack.encode(batch))
    env.close()
    report = replayed_report(journaled_home)
    assert not report.ok
    first = report.problems[0]
    assert first.startswith("first divergence at the commit ending with journal entry 750 ")


def test_a_second_writer_is_refused(tmp_path):
    store = Store(tmp_path / "data")
    try:
        with pytest.raises(
            StoreError, match=r"another process \(pid \d+\) is writing to this store"
        ):
            Store(tmp_path / "data")
    finally:
        store.close()
    Store(tmp_path / "data").close()


def test_reading_a_home_with_no_store_is_one_line(tmp_path):
    with pytest.raises(StoreError, match="no store here yet"):
        Store(tmp_path / "data", readonly=True)


def test_market_units_cannot_change_under_resting_orders(tmp_path):
    store, durable = open_durable(tmp_path / "data")
    try:
        durable.submit([NewOrder("a1", "alice", "PUNK-ETH", "buy", "limit", "10", "1")])
        changed = [
            MarketSpec(**{**msgspec.structs.asdict(spec), "tick_size": "0.1"})
            if spec.symbol == "PUNK-ETH"
            else spec
            for spec in MARKETS
        ]
        with pytest.raises(MarketChangeRefused, match="tick_size cannot change"):
            durable.configure(changed)
        with pytest.raises(MarketChangeRefused, match="missing from the configuration"):
            durable.configure(MARKETS[1:])
        widened = [
            MarketSpec(**{**msgspec.structs.asdict(spec), "max_qty": "900"})
            if spec.symbol == "PUNK-ETH"
            else spec
            for spec in MARKETS
        ]
        assert durable.configure(widened)
        durable.submit([CancelOrder("a1", "alice", "PUNK-ETH")])
        assert durable.configure(changed)
    finally:
        store.close()
    assert replayed_report(tmp_path / "data").ok


def test_the_journal_reads_from_any_command_number(journaled_home):
    store = Store(journaled_home, readonly=True)
    try:
        everything = list(store.journal())
        assert [index for index, _ in everything] == list(range(3001))
        for start, stop in ((0, 1), (1, 251), (250, 252), (777, 1500), (2999, None), (3001, None)):
            expected = everything[start:stop]
            assert list(store.journal(start=start, stop=stop)) == expected
    finally:
        store.close()


def test_a_reader_follows_a_map_the_writer_grew(tmp_path):
    """The analytics follower reads while the node (another process) writes: when the node
    grows the map past the reader's, the reader adopts the new size instead of failing
    (MDB_MAP_RESIZED)."""
    writer = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_store import batches, open_durable
        from marketnode.node.tools.flow import generate_flow
        store, durable = open_durable(Path({str(tmp_path / "data")!r}), map_size=1 << 20)
        commands = list(generate_flow(20_000, seed=5))
        for batch in batches(commands[:100] if sys.argv[1] == "first" else commands[100:], 1000):
            durable.submit(batch)
        print(store.env.info()["map_size"])
        store.close()
        """
    )

    def write(part: str) -> int:
        done = subprocess.run([sys.executable, "-c", writer, part], capture_output=True,
                              text=True, check=True)  # fmt: skip
        return int(done.stdout)

    write("first")
    reader = Store(tmp_path / "data", map_size=1 << 20, readonly=True)
    try:
        assert reader.state().journal_length == 101
        assert write("rest") > 1 << 20
        assert reader.state().journal_length == 20_001
        assert sum(1 for _ in reader.journal()) == 20_001
        assert reader.commits()[-1][0] == 20_001
    finally:
        reader.close()


def test_each_commit_is_stamped_by_the_stores_clock(tmp_path):
    """A replay of a generated market stamps commits with the market's own times."""
    times = iter(range(10**18, 10**18 + 10 * 3_600 * 10**9, 3_600 * 10**9))
    store, durable = open_durable(tmp_path / "data", clock=lambda: next(times))
    try:
        for batch in batches(list(generate_flow(300, seed=4)), 100):
            durable.submit(batch)
        stamped = [commit_time for _, _, _, commit_time in store.commits()]
    finally:
        store.close()
    assert stamped == [10**18 + hour * 3_600 * 10**9 for hour in range(4)]

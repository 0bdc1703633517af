"""A market's book moving between engines: `ExportMarket` on the source, `ImportMarket` on the
destination, on both cores (the same events, books and state hashes), through the store (a
replay of either journal verifies, the analytics follower reads both), with time priority kept
across the move."""

from __future__ import annotations

import pytest
from engine_cores import CORES, assert_same_events, engine_of, state_of

from marketnode.node.analytics.duckdb_store import AnalyticsStore
from marketnode.node.analytics.follower import JournalFollower
from marketnode.node.core.commands import (
    ExportMarket,
    ImportMarket,
    NewOrder,
    journal_decoder,
    journal_encoder,
)
from marketnode.node.core.events import Cancelled, Rested, Trade
from marketnode.node.core.moving import MarketMoveRefused, check_import, moved_orders
from marketnode.node.home.config import default_markets
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.verify import verify_store
from marketnode.node.tools.flow import generate_flow

MARKETS = default_markets()
MOVED = MARKETS[0].symbol


def flow() -> list:
    return list(generate_flow(3000, seed=7, markets=MARKETS, owners=20))


def move(source, destination) -> tuple[list, list, ImportMarket]:
    """Export MOVED from `source`, import it into `destination`: both commands' events."""
    orders = moved_orders(source, MOVED)
    exported: list = []
    source.process(ExportMarket(MOVED, "b"), exported)
    command = ImportMarket(MOVED, "a", orders)
    check_import(destination, command, source.books[MOVED].market.spec)
    imported: list = []
    destination.process(command, imported)
    return exported, imported, command


def test_both_cores_move_a_book_alike():
    results = []
    for core in CORES:
        source, destination = engine_of(core, MARKETS), engine_of(core, MARKETS)
        source.process_all(flow())
        resting = len(source.books[MOVED].orders)
        exported, imported, _ = move(source, destination)
        assert resting > 20 and len(exported) == len(imported) == resting
        assert all(type(e) is Cancelled and e.reason == "moved" and e.remaining == 0
                   for e in exported)  # fmt: skip
        assert all(type(e) is Rested for e in imported)
        assert not source.books[MOVED].orders and len(destination.books[MOVED].orders) == resting
        results.append((exported, imported, state_of(source), state_of(destination)))
    if len(results) == 2:
        (ex_a, im_a, src_a, dst_a), (ex_b, im_b, src_b, dst_b) = results
        assert_same_events(ex_b, ex_a)
        assert_same_events(im_b, im_a)
        assert (src_b, dst_b) == (src_a, dst_a)


def test_time_priority_survives_the_move():
    source, destination, stay = (engine_of("python", MARKETS) for _ in range(3))
    commands = flow()
    source.process_all(commands)
    stay.process_all(commands)
    move(source, destination)
    # sweep the bids in both, 400 lots at a time: the same makers fill in the same order
    sweeps = [NewOrder(f"sweep{n}", "0xtaker", MOVED, "sell", "market", qty="400", tif="IOC")
              for n in range(10)]  # fmt: skip
    want = [(t.maker_owner, t.maker_id, t.price, t.qty) for t in stay.process_all(sweeps)
            if type(t) is Trade]  # fmt: skip
    got = [(t.maker_owner, t.maker_id, t.price, t.qty) for t in destination.process_all(sweeps)
           if type(t) is Trade]  # fmt: skip
    assert want and got == want


def test_an_import_is_refused_on_a_book_with_orders_or_other_rules():
    source, destination = engine_of("python", MARKETS), engine_of("python", MARKETS)
    source.process_all(flow())
    destination.process_all(flow()[:200])
    command = ImportMarket(MOVED, "a", moved_orders(source, MOVED))
    with pytest.raises(MarketMoveRefused, match="already has"):
        check_import(destination, command, source.books[MOVED].market.spec)
    with pytest.raises(MarketMoveRefused, match="other rules"):
        check_import(engine_of("python", MARKETS), command, MARKETS[1])
    with pytest.raises(MarketMoveRefused, match="not configured"):
        check_import(engine_of("python", MARKETS[1:]), command, MARKETS[0])


def test_the_commands_survive_the_journal_and_a_replay_verifies(tmp_path):
    with Store(tmp_path / "a") as store_a, Store(tmp_path / "b") as store_b:
        source, destination = DurableEngine(store_a), DurableEngine(store_b)
        source.configure(MARKETS)
        destination.configure(MARKETS)
        source.submit(flow())
        orders = moved_orders(source.engine, MOVED)
        source.submit([ExportMarket(MOVED, "b")])
        command = ImportMarket(MOVED, "a", orders)
        assert journal_decoder.decode(journal_encoder.encode(command)) == command
        destination.submit([command])
        for store in (store_a, store_b):
            report = verify_store(store)
            assert report.ok, report.problems
        assert len(store_b.snapshot()[1]) == len(orders)
        # the analytics follower reads both commands: the source's book leaves as `moved`
        # cancellations, the destination's arrives as `rested` orders
        kinds = {}
        for name, store in (("a", store_a), ("b", store_b)):
            analytics = AnalyticsStore(tmp_path / f"{name}.duckdb")
            try:
                JournalFollower(store, analytics).sync()
                kinds[name] = dict(analytics.connection.execute(
                    "SELECT coalesce(reason, kind), count(*) FROM events "
                    "WHERE kind IN ('cancelled', 'rested') GROUP BY 1").fetchall())  # fmt: skip
            finally:
                analytics.close()
        assert kinds["a"]["moved"] == len(orders)
        assert kinds["b"] == {"rested": len(orders)}

"""A signed market's move between engines, in process: its resting signed orders arrive with
their order hash, nonce and expiry and still match, expire and cancel there; every owner's used
nonces and raised minimum move with the book, so a used nonce is refused `nonce_used` on the
destination; both cores give the same events, books, nonces and state hashes; the store
journals the import's nonces, a replay verifies, and an import journaled before signed markets
moved replays as it did."""

from __future__ import annotations

from types import SimpleNamespace

import msgspec
import pytest
from engine_cores import CORES, assert_same_events, engine_of, state_hash, state_of

from marketnode.node.core.commands import (
    CancelOrder,
    Clock,
    ExportMarket,
    ImportMarket,
    MovedNonces,
    NewOrder,
    RaiseMinNonce,
    journal_decoder,
    journal_encoder,
)
from marketnode.node.core.events import Rejected, Rested, Trade
from marketnode.node.core.moving import (
    MarketMoveRefused,
    check_import,
    moved_nonces,
    moved_orders,
    nonces_held,
)
from marketnode.node.core.nonces import NonceBook
from marketnode.node.home.config import default_markets
from marketnode.node.server.market_moves import with_their_signed_new
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.verify import verify_store

TOKEN = "0x" + "ab" * 20
SIGNED_SPEC = msgspec.structs.replace(
    default_markets()[0], signatures="optional", base_token=TOKEN, quote_token=TOKEN,
    lot_units="1", tick_units="1",
)  # fmt: skip
MARKETS = [SIGNED_SPEC, *default_markets()[1:]]
MOVED, OTHER = MARKETS[0].symbol, MARKETS[1].symbol
SIG = {"sig": "0x" + "11" * 65, "chain_id": 31337, "max_fee_bps": 30}
ALICE, BOB, CAROL = (f"0x{n:040x}" for n in (1, 2, 3))
NOW = 1_000


def signed(
    order_id: str,
    owner: str,
    side: str,
    price: str,
    nonce: int | str,
    *,
    market: str = MOVED,
    qty: str = "2",
    expiry: int = NOW + 500,
) -> NewOrder:
    number = int.from_bytes(order_id.encode(), "big") % (1 << 255)
    return NewOrder(order_id, owner, market, side, price=price, qty=qty, nonce=nonce,
                    expiry=expiry, order_hash=f"0x{number:064x}", **SIG)  # fmt: skip


def history() -> list:
    """The source's past: Alice's orders resting (one expiring soon, one with a nonce given as
    text), one filled, one cancelled; Bob's minimum nonce raised to 10; Carol trading only in
    the other market (her nonces are the source's too)."""
    return [
        Clock(NOW),
        signed("a1", ALICE, "sell", "105", 1),
        signed("a2", ALICE, "sell", "106", 2, expiry=NOW + 10),
        signed("a3", ALICE, "sell", "107", str(2**62)),
        signed("a4", ALICE, "sell", "101", 3, qty="1"),
        signed("b1", BOB, "buy", "101", 1, qty="1"),  # fills a4: both used
        signed("a5", ALICE, "buy", "90", 4),
        CancelOrder("a5", ALICE, MOVED),
        signed("b2", BOB, "buy", "95", 4),
        RaiseMinNonce(BOB, 10),  # cancels b2
        signed("c1", CAROL, "buy", "10", 7, market=OTHER),
    ]


def placed_orders(source, commands: list) -> list:
    """The moved market's orders, each signed one with the `new` of `commands` placing it (as
    the node finds it in its journal: tests/test_move_signed_nodes.py)."""
    news = {(c.owner, c.id): c for c in commands if type(c) is NewOrder}
    orders = moved_orders(source, MOVED)
    for order in orders:
        order.placed = news[order.owner, order.id] if order.nonce is not None else None
    return orders


def move(source, destination) -> tuple[list, list, ImportMarket]:
    orders = placed_orders(source, history())
    command = ImportMarket(MOVED, "a", orders, moved_nonces(source, MOVED))
    check_import(destination, command, SIGNED_SPEC)
    exported: list = []
    source.process(ExportMarket(MOVED, "b"), exported)
    imported: list = []
    destination.process_batch([Clock(NOW), command], imported)
    return exported, imported, command


AFTER = [
    signed("b3", BOB, "buy", "105", 11, qty="1"),  # fills the moved a1
    signed("a1-again", ALICE, "sell", "105", 1),  # resting and moved: nonce_used
    signed("a4-again", ALICE, "sell", "101", 3),  # filled on the source
    signed("a5-again", ALICE, "buy", "90", 4),  # cancelled on the source
    signed("b4", BOB, "buy", "96", 9),  # below Bob's raised minimum
    signed("c2", CAROL, "buy", "96", 7),  # used in another market of the source
    signed("c3", CAROL, "buy", "96", 8),  # fresh
    CancelOrder("a3", ALICE, MOVED),  # the moved order cancelled by its owner
    Clock(NOW + 20),
]


def signature_facts(engine) -> dict:
    """Each resting order of the moved market by id: its order hash, nonce and expiry."""
    book = engine.books[MOVED].orders.values()
    return {order.id: (order.order_hash, order.nonce, order.expiry) for order in book}


def rejected(events: list) -> dict:
    return {event.id: event.reason for event in events if type(event) is Rejected}


def test_a_moved_signed_book_keeps_its_facts_and_its_owners_nonces_on_both_cores():
    results = []
    for core in CORES:
        source, destination = engine_of(core, MARKETS), engine_of(core, MARKETS)
        source.process_all(history())
        before = signature_facts(source)
        exported, imported, command = move(source, destination)
        assert sorted(before) == ["a1", "a2", "a3"] and len(exported) == 3
        assert [type(e) for e in imported] == [Rested] * 3
        assert signature_facts(destination) == before
        assert state_of(source)[4] == state_of(destination)[4]  # every owner's nonces
        assert nonces_held(destination, command.nonces)
        after = destination.process_all(AFTER)
        trades = [(t.maker_id, t.taker_id) for t in after if type(t) is Trade]
        assert trades == [("a1", "b3")]
        assert rejected(after) == {"a1-again": "nonce_used", "a4-again": "nonce_used",
                                   "a5-again": "nonce_used", "b4": "nonce_used",
                                   "c2": "nonce_used"}  # fmt: skip
        assert [o.id for o in destination.expired_orders(NOW + 20)] == ["a2"]
        assert set(destination.books[MOVED].orders) == {(ALICE, "a1"), (ALICE, "a2"),
                                                       (CAROL, "c3")}  # fmt: skip
        results.append((exported, imported, after, state_of(source), state_of(destination)))
    if len(results) == 2:
        (*events_a, src_a, dst_a), (*events_b, src_b, dst_b) = results
        for got, want in zip(events_b, events_a, strict=True):
            assert_same_events(got, want)
        assert (src_b, dst_b) == (src_a, dst_a)


def test_the_merge_keeps_the_destinations_own_nonces_and_only_raises_floors():
    destination = engine_of("python", MARKETS)
    destination.process_all([Clock(NOW), signed("x", ALICE, "buy", "50", 20, market=OTHER),
                             RaiseMinNonce(CAROL, 100)])  # fmt: skip
    nonces = [MovedNonces(ALICE, "2", ["5", str(2**70)]), MovedNonces(CAROL, "8", [])]
    destination.process(ImportMarket(MOVED, "a", [], nonces), [])
    assert destination.nonces.state_of(ALICE) == (2, [5, 20, 2**70])
    assert destination.nonces.state_of(CAROL) == (100, [])
    assert nonces_held(destination, nonces)
    assert not nonces_held(engine_of("python", MARKETS), nonces)


def test_a_nonce_book_holds_only_what_it_has_used():
    book = NonceBook()
    book.merge("o", 3, [5, 6])
    assert book.state_of("o") == (3, [5, 6])
    assert book.holds("o", 3, [6]) and not book.holds("o", 4, []) and not book.holds("o", 0, [4])
    book.merge("o", 0, [3, 4])  # the floor counts up through what it reaches
    assert book.state_of("o") == (7, [])


def test_an_import_without_its_nonces_or_with_a_signed_order_unused_is_refused():
    source = engine_of("python", MARKETS)
    source.process_all(history())
    orders = placed_orders(source, history())
    destination = engine_of("python", MARKETS)
    with pytest.raises(MarketMoveRefused, match="without their owners' used nonces"):
        check_import(destination, ImportMarket(MOVED, "a", orders), SIGNED_SPEC)
    with pytest.raises(MarketMoveRefused, match=r"'a3' of .* without its nonce used"):
        nonces = [MovedNonces(ALICE, "3", [])]
        check_import(destination, ImportMarket(MOVED, "a", orders, nonces), SIGNED_SPEC)
    nonces = moved_nonces(source, MOVED)
    for placed in (None, msgspec.structs.replace(orders[1].placed, order_hash=f"0x{0:064x}")):
        unplaced = [*orders[:1], msgspec.structs.replace(orders[1], placed=placed), *orders[2:]]
        with pytest.raises(MarketMoveRefused, match="without the signed order placing it"):
            check_import(destination, ImportMarket(MOVED, "a", unplaced, nonces), SIGNED_SPEC)
    with pytest.raises(MarketMoveRefused, match="an owner's nonces twice"):
        twice = [*moved_nonces(source, MOVED), MovedNonces(ALICE, "0", [])]
        check_import(destination, ImportMarket(MOVED, "a", orders, twice), SIGNED_SPEC)


def test_a_market_taking_and_holding_no_signed_order_moves_without_nonces_as_before():
    source = engine_of("python", MARKETS)
    source.process_all(history())
    assert moved_nonces(source, OTHER) is not None  # unsigned, but Carol's signed order rests
    unsigned = MARKETS[2].symbol
    source.process(NewOrder("g", CAROL, unsigned, "buy", price="10", qty="1"), [])
    assert moved_nonces(source, unsigned) is None
    command = ImportMarket(unsigned, "a", moved_orders(source, unsigned))
    assert b"nonces" not in journal_encoder.encode(command)  # journaled as before


def test_the_import_is_journaled_with_its_nonces_and_a_replay_verifies(tmp_path):
    with Store(tmp_path / "a") as store_a, Store(tmp_path / "b") as store_b:
        source, destination = DurableEngine(store_a), DurableEngine(store_b)
        source.configure(MARKETS)
        destination.configure(MARKETS)
        source.submit(history())
        orders = moved_orders(source.engine, MOVED)
        assert with_their_signed_new(SimpleNamespace(durable=source), orders) == []
        command = ImportMarket(MOVED, "a", orders, moved_nonces(source.engine, MOVED))
        check_import(destination.engine, command, SIGNED_SPEC)
        source.submit([ExportMarket(MOVED, "b")])
        assert journal_decoder.decode(journal_encoder.encode(command)) == command
        destination.submit([Clock(NOW), command])
        # the destination's journal holds each moved order's signed `new`, its signature too
        (journaled,) = [c for _, c in store_b.journal() if type(c) is ImportMarket]
        signatures = [order.placed.sig for order in journaled.orders]
        assert signatures == [SIG["sig"]] * 3
        destination.submit(AFTER)
        assert destination.book_hash.value == state_hash(destination.engine)
        for store in (store_a, store_b):
            report = verify_store(store)
            assert report.ok, report.problems


def test_an_import_journaled_before_signed_markets_moved_replays_the_same(tmp_path):
    """Its journal entry has no nonces: it rests its orders and changes no nonce."""
    old = msgspec.msgpack.encode({"op": "import_market", "market": OTHER, "source": "a",
                                  "orders": [["0xo", "1", True, 100, 10, 0, None]]})  # fmt: skip
    command = journal_decoder.decode(old)
    assert command.nonces is None
    engine = engine_of("python", MARKETS)
    engine.process(command, [])
    assert not engine.nonces.owners() and len(engine.books[OTHER].orders) == 1

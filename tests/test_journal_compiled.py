"""The compiled core's journal writer (node/core/compiled/_journal.pxi) against msgspec's
encoder, which the store uses with the Python engine: the same bytes for seeded flows, for
commands with every field set, at msgpack's length and integer boundaries, for values it has no
fast path for, and for defaults that are equal but not the default object itself; and a store
written through it replays to the same state."""

from __future__ import annotations

import random
from enum import StrEnum

import msgspec
import pytest
from engine_cores import engine_of

from marketnode.node.core.commands import (
    CancelOrder,
    Clock,
    NewOrder,
    RaiseMinNonce,
    ReplaceOrder,
)
from marketnode.node.core.compiled import CORE_VARIABLE, journal_encoder
from marketnode.node.core.reasons import CancelReason
from marketnode.node.home.config import default_markets
from marketnode.node.protocol.decoding import decode_request
from marketnode.node.protocol.messages import PROTOCOL_VERSION
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store
from marketnode.node.store.verify import verify_store
from marketnode.node.tools.flow import generate_flow

encode = msgspec.msgpack.Encoder().encode

INTEGERS = (0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63,
            2**64 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1,
            -(2**63))  # fmt: skip
TEXT_LENGTHS = (0, 1, 3, 4, 7, 8, 9, 15, 16, 31, 32, 33, 255, 256, 65535, 65536)


@pytest.fixture
def writer():
    write = journal_encoder(engine_of("compiled"))
    assert write is not None, "an engine of the compiled core journals through its writer"
    return write


def test_the_python_engine_journals_through_msgspec():
    assert journal_encoder(engine_of("python")) is None


@pytest.mark.parametrize("seed", [1, 2, 3, 17, 99])
def test_seeded_flows_are_written_as_msgspec_writes_them(writer, seed):
    commands = list(generate_flow(6000, seed=seed, markets=default_markets()))
    rng = random.Random(seed)
    for command in commands:  # as the node stamps them: a new order's peer, its own cancels
        if type(command) is NewOrder and rng.random() < 0.5:
            command.peer = rng.choice(("alice", "bob", "relayer-7"))
        elif type(command) is CancelOrder and rng.random() < 0.2:
            command.reason = rng.choice((CancelReason.EXPIRED, CancelReason.USER))
    for start in range(0, len(commands), 1000):
        batch = commands[start : start + rng.randint(1, 1000)]
        assert writer(batch) == encode(batch)


def test_decoded_commands_are_written_as_msgspec_writes_them(writer):
    """What the node journals: commands decoded from the wire, whose text is new objects
    equal to the defaults ("limit", "GTC") but not them, so msgspec writes those fields."""
    orders = [
        {"op": "new", "id": 7, "owner": "0xab", "market": "PUNK-ETH", "side": "buy",
         "type": "limit", "price": "1.5", "qty": "2", "tif": "GTC"},
        {"op": "new", "id": "c-1", "owner": "0xab", "market": "PUNK-ETH", "side": "sell",
         "type": "market", "qty": "1", "tif": "IOC", "stp": "cancel_both"},
        {"op": "cancel", "id": 7, "owner": "0xab", "market": "PUNK-ETH"},
        {"op": "replace", "id": 7, "owner": "0xab", "market": "PUNK-ETH", "price": "1.6"},
    ]  # fmt: skip
    request = decode_request(encode({"type": "submit", "v": PROTOCOL_VERSION, "cmds": orders}))
    commands = list(request.cmds)
    assert len(commands) == 4 and type(commands[0].type) is str
    assert writer(commands) == encode(commands)


def test_every_field_set_and_every_default_left(writer):
    full = NewOrder(
        id=2**40, owner="0x" + "ab" * 20, market="PUNK-ETH", side="buy", type="market",
        price="12.5", qty="3", tif="FOK", stp="cancel_oldest", peer="relayer",
        sig="0x" + "1f" * 65, chain_id=31337, nonce=str(2**70), expiry=1_900_000_000,
        max_fee_bps=65535, order_hash="0x" + "cd" * 32,
    )  # fmt: skip
    bare = [NewOrder(id=1, owner="a"), CancelOrder(id=1, owner="a"), ReplaceOrder(id=1, owner="a")]
    signed_cancel = CancelOrder(id="x", owner="0xab", market="M", reason=CancelReason.EXPIRED,
                                sig="0x" + "2e" * 65, order_hash="0x" + "00" * 32)  # fmt: skip
    int_nonce = msgspec.structs.replace(full, nonce=2**63 + 5, id="c-9")
    for batch in ([full], [int_nonce], bare, [signed_cancel], [full, *bare, signed_cancel] * 3):
        assert writer(batch) == encode(batch)


def test_equal_but_not_identical_defaults_are_written(writer):
    """msgspec leaves a field out only when it holds its default object itself."""
    limit, gtc = "".join(["li", "mit"]), "".join(["G", "TC"])
    assert limit == "limit" and limit is not NewOrder(id=1, owner="a").type
    commands = [NewOrder(id=1, owner="a", type=limit, tif=gtc), NewOrder(id=2, owner="a")]
    assert writer(commands) == encode(commands)
    assert b"limit" in writer(commands[:1]) and b"limit" not in writer(commands[1:])


@pytest.mark.parametrize("number", INTEGERS)
def test_integers_at_msgpack_s_boundaries(writer, number):
    commands = [NewOrder(id=number, owner="a", qty=number), CancelOrder(id=number, owner="b")]
    assert writer(commands) == encode(commands)


@pytest.mark.parametrize("length", TEXT_LENGTHS)
def test_text_at_msgpack_s_boundaries(writer, length):
    for letter in ("a", "é", "€", "🂡"):
        text = letter * length
        commands = [NewOrder(id=text or 1, owner=text, market=text, price=text)]
        assert writer(commands) == encode(commands)


class Colour(StrEnum):
    RED = "red"


def test_values_without_a_fast_path_are_msgspec_s(writer):
    odd = [1.5, -0.0, True, False, None, [1, "x", [2]], {"a": 1}, b"\x00\xff", Colour.RED,
           2**64 - 1, CancelReason.STP]  # fmt: skip
    commands = [NewOrder(id=index, owner="o", market=value, side=value, stp=value)
                for index, value in enumerate(odd)]  # fmt: skip
    commands += [CancelOrder(id=1, owner="o", market=value) for value in odd]
    assert writer(commands) == encode(commands)


def test_other_commands_and_array_lengths(writer):
    others = [Clock(now=5), RaiseMinNonce(owner="0xab", min_nonce=3)]
    assert writer(others) == encode(others)
    for count in (0, 15, 16, 65535, 65536):
        batch = [CancelOrder(id=index, owner="o", market="M") for index in range(count)]
        assert writer(batch) == encode(batch)


def test_what_msgspec_cannot_encode_fails_the_same_way(writer):
    class Text(str):
        pass

    for value, error in ((object(), TypeError), (Text("limit"), TypeError),
                         (2**64, OverflowError), (-(2**63) - 1, OverflowError)):  # fmt: skip
        commands = [NewOrder(id=1, owner="o", type=value)]
        with pytest.raises(error):
            encode(commands)
        with pytest.raises(error):
            writer(commands)


def test_a_store_journaled_by_the_writer_replays_to_the_same_state(tmp_path, monkeypatch):
    """The node's own path: a durable engine of the compiled core journals through the
    writer, the journal reads back as the commands given, and `mnode verify`'s replay of it
    reproduces the stored books, seq and state hash."""
    engine_of("compiled")  # skips where the compiled core is not built
    monkeypatch.setenv(CORE_VARIABLE, "compiled")
    markets = default_markets()
    commands = list(generate_flow(3000, seed=5, markets=markets))
    store = Store(tmp_path / "store", map_size=64 << 20)
    try:
        durable = DurableEngine(store)
        assert durable._encode_journal is not None and durable.engine.core == "compiled"
        durable.configure(markets)
        for start in range(0, len(commands), 500):
            durable.submit(commands[start : start + 500])
        journal = [command for _, command in store.journal() if type(command) in PEER_KINDS]
        assert [encode(command) for command in journal] == [encode(c) for c in commands]
        report = verify_store(store)
        assert report.ok, report.problems
        assert report.seq == durable.engine.seq and report.journal_entries > len(commands) - 1
    finally:
        store.close()


PEER_KINDS = (NewOrder, CancelOrder, ReplaceOrder)

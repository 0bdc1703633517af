"""The compiled core's intake (node/core/compiled/_intake.pxi) against node/server/taking.py's
`MessageTaker.apply` with the gateway's checks: two takers on the compiled engine, each with its
own store, one through the compiled intake and one through the reference path, take the same
messages; their events, stamped commands, journals, counters, books and state hashes must be
the same. The messages mix every rule the gateway applies to a command: owners a peer may not
act for, a halted market, the open-order limit, the peer's rate, a market requiring signatures,
replaces and cancels of resting signed orders, owners that are addresses in mixed case,
malformed and unknown commands."""

from __future__ import annotations

import copy
import random

import msgspec
import pytest
from engine_cores import assert_same_events, engine_of, state_of

from marketnode.node.core.commands import CancelOrder, NewOrder, ReplaceOrder
from marketnode.node.core.compiled import core_forced, intake_function
from marketnode.node.home.config import LimitsConfig, default_markets
from marketnode.node.home.peers import Peer
from marketnode.node.ops.metrics import LoopMetrics
from marketnode.node.server.answers import Pending
from marketnode.node.server.gateway import Gateway
from marketnode.node.server.taking import MessageTaker
from marketnode.node.store.durable import DurableEngine
from marketnode.node.store.lmdb_store import Store
from marketnode.node.tools.flow import generate_flow

REQUIRED = "GOLD-USDC"
OPTIONAL = "PUNK-ETH"
HALTED = "LAND-ETH"
OWNERS = [
    "0xAbCdEf0000000000000000000000000000000001",
    "0xabcdef0000000000000000000000000000000002",
    "0X00000000000000000000000000000000000000AA",
    "alice",
    "bob",
    "carol",
]
PEERS = [
    None,  # CURVE off: anyone, no rate
    Peer("relay", "k1", relayer=True),
    Peer("alice", "k2", owners=("alice", OWNERS[0].lower(), OWNERS[2].lower())),
    Peer("bob", "k3", owners=("bob", "carol")),
]
SIGNED = {"sig": "0x" + "11" * 65, "chain_id": 31337, "max_fee_bps": 30}


def markets() -> list:
    """The default markets, one of them requiring signatures and one taking them."""
    modes = {REQUIRED: "required", OPTIONAL: "optional"}
    return [
        msgspec.structs.replace(spec, signatures=modes[spec.symbol], base_token="0x" + "11" * 20,
                                quote_token="0x" + "22" * 20, lot_units="1", tick_units="1")
        if spec.symbol in modes else spec
        for spec in default_markets()
    ]  # fmt: skip


class Side:
    """One taker on its own store: the compiled intake, or the reference path."""

    def __init__(self, folder, compiled: bool) -> None:
        self.store = Store(folder, map_size=64 << 20)
        with core_forced("compiled"):
            self.durable = DurableEngine(self.store)
        self.durable.configure(markets())
        limits = LimitsConfig(max_open_orders_per_owner=12, peer_rate_per_s=0, peer_burst=600)
        self.gateway = Gateway(self.durable.engine, limits, {HALTED})
        self.metrics = LoopMetrics()
        self.taker = MessageTaker(None, self.gateway, self.durable, None, self.metrics, None)  # type: ignore[arg-type]
        if not compiled:
            self.taker._admit_and_apply = None

    def rest_signed(self, orders: list) -> None:
        """Signed orders placed as the node places them once their signatures are checked
        (the verified digest given), for the later messages' rules on signed orders."""
        events: list = []
        for order in orders:
            self.durable.process(copy.copy(order), events)
        self.durable.commit()
        assert sum(bool(order.expiry) for order in self.durable.engine.resting_orders()) > 10

    def take(self, peer: Peer | None, commands: list) -> Pending:
        message = Pending(b"id", peer, peer.name if peer else "anon", None)
        out: list = []
        self.taker.apply(message, [copy.copy(command) for command in commands], out)
        assert message.events == out
        return message


@pytest.fixture
def sides(tmp_path):
    engine_of("compiled")  # skipped or failed here where the compiled core is not built
    compiled, reference = Side(tmp_path / "compiled", True), Side(tmp_path / "reference", False)
    assert compiled.taker._admit_and_apply is intake_function(compiled.durable.engine)
    assert compiled.taker._admit_and_apply is not None
    yield compiled, reference
    compiled.store.close()
    reference.store.close()


SIGNED_ORDERS = [
    NewOrder(900_000 + n, OWNERS[n % 3].lower(), REQUIRED if n % 3 == 0 else OPTIONAL,
             "buy" if n % 2 else "sell",
             price=str(5 + n % 4) if n % 2 else str(300 + n % 4), qty="1", nonce=n,
             expiry=4_000_000_000,
             order_hash=f"0x{n:064x}", **SIGNED)
    for n in range(30)
]  # fmt: skip
"""Resting signed orders, priced far from the flow's so that they rest until taken."""


def messages(seed: int) -> list[tuple[Peer | None, list]]:
    """Seeded messages of 1 to 40 commands by each peer in turn, with the odd cases mixed in."""
    rng = random.Random(seed)
    flow = list(generate_flow(3_000, seed=seed, owner_names=OWNERS))
    odd = [
        msgspec.Raw(msgspec.msgpack.encode({"op": "new", "id": 1})),  # malformed
        NewOrder(7, "alice", 5, "buy", price="1", qty="1"),  # a market that is no text
        NewOrder(8, "alice", "NOPE-X", "buy", price="1", qty="1"),
        CancelOrder(900_001, OWNERS[1], OPTIONAL),  # resting signed orders: taken
        ReplaceOrder(900_002, OWNERS[2], OPTIONAL, price="12", qty="2"),  # bad_signature
        CancelOrder(900_003, OWNERS[0], REQUIRED),  # bad_signature: no verified digest
        NewOrder(9, "bob", REQUIRED, "buy", price="1", qty="1"),  # bad_signature: unsigned
        NewOrder(10, "bob", REQUIRED, "buy", price="1", qty="1", **SIGNED),
    ]
    result: list[tuple[Peer | None, list]] = [(None, odd[3:])]  # each once with nobody refused
    while flow:
        size = rng.randint(1, 40)
        batch, flow = flow[:size], flow[size:]
        if rng.random() < 0.3:
            batch.insert(rng.randrange(len(batch) + 1), rng.choice(odd))
        result.append((PEERS[len(result) % len(PEERS)], batch))
    return result


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_compiled_intake_admits_and_applies_as_the_gateway_does(sides, seed):
    compiled, reference = sides
    for side in sides:
        side.rest_signed(SIGNED_ORDERS)
    reasons: set = set()
    bad_signatures: set = set()
    for number, (peer, commands) in enumerate(messages(seed)):
        got, want = compiled.take(peer, commands), reference.take(peer, commands)
        assert_same_events(got.events, want.events)
        assert msgspec.msgpack.encode(got.commands) == msgspec.msgpack.encode(want.commands)
        assert [type(command) for command in got.commands] == [
            type(command) for command in want.commands
        ]
        assert msgspec.msgpack.encode(compiled.durable.uncommitted_commands) == (
            msgspec.msgpack.encode(reference.durable.uncommitted_commands)
        )
        reasons.update(getattr(event, "reason", None) for event in got.events)
        bad_signatures.update(event.op for event in got.events
                              if getattr(event, "reason", None) == "bad_signature")  # fmt: skip
        if number % 7 == 0:
            compiled.durable.commit()
            reference.durable.commit()
            assert compiled.durable.book_hash.value == reference.durable.book_hash.value
    assert state_of(compiled.durable.engine) == state_of(reference.durable.engine)
    for counter in ("commands", "orders"):
        assert getattr(compiled.metrics, counter) == getattr(reference.metrics, counter)
    every_rule = {"not_authorized", "market_halted", "too_many_orders", "throttled",
                  "bad_signature", "malformed", "unknown_market"}  # fmt: skip
    assert every_rule <= reasons, every_rule - reasons
    assert {"new", "cancel", "replace"} <= bad_signatures, bad_signatures

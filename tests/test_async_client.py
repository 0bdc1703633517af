"""The asyncio client against a real node."""

import asyncio

from marketnode.node.client import AsyncClient


def test_async_client_submits_and_reads_a_snapshot(running_node):
    async def session() -> tuple:
        async with AsyncClient(running_node.address, running_node.keys["alice"]) as alice:
            placed = await alice.submit(
                [{"op": "new", "market": "PUNK-ETH", "id": "as1", "owner": "0xa11ce",
                  "side": "buy", "price": "99.5", "qty": "4"}]
            )  # fmt: skip
            snapshot = await alice.snapshot("PUNK-ETH")
        async with AsyncClient(running_node.address, running_node.keys["bob"]) as bob:
            taken = await bob.submit(
                [{"op": "new", "market": "PUNK-ETH", "id": "bs1", "owner": "0xb0b",
                  "side": "sell", "type": "market", "qty": "1"}]
            )  # fmt: skip
        return placed, snapshot, taken

    placed, snapshot, taken = asyncio.run(session())
    assert [event.__struct_config__.tag for event in placed.events] == ["accepted", "rested"]
    assert [(level.price, level.qty) for level in snapshot.bids] == [("99.5", "4")]
    assert [event.__struct_config__.tag for event in taken.events] == ["accepted", "trade"]
    assert taken.events[1].price == "99.5" and taken.events[1].maker_id == "as1"

"""A full disk does not take the node down (issue 12, item 3): the batch whose commit fails is
answered `store_unavailable` (nothing unstored is acknowledged) and rolled back, new commands
are refused meanwhile, reads keep being answered, and the node takes work again by itself once
there is room, with one log line each way. The store lives on a small tmpfs mounted for the
test (root is needed; skipped otherwise)."""

from __future__ import annotations

import logging
import subprocess

import pytest
from conftest import until

from marketnode.node.client import ClientError
from marketnode.node.store.lmdb_store import Store

ALICE = "0xa11ce"
PUNK = "PUNK-ETH"
TMPFS_BYTES = 4 << 20


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder) -> None:
    """Write a file until the filesystem is full."""
    chunk = bytes(64 << 10)
    with open(folder / "filler", "wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError:
            pass


def orders(prefix: str, count: int, price: str = "10") -> list[dict]:
    return [
        {
            "op": "new",
            "market": PUNK,
            "id": f"{prefix}{n:06d}-" + "x" * 40,
            "owner": ALICE,
            "side": "buy",
            "type": "limit",
            "price": price,
            "qty": "1",
        }
        for n in range(count)
    ]


def kind(event) -> str:
    return type(event).__struct_config__.tag


def test_a_full_disk_refuses_work_keeps_reads_and_resumes(node_factory, small_disk, caplog):
    caplog.set_level(logging.INFO, logger="marketnode.node")
    running = node_factory(
        f'[store]\npath = "{small_disk / "data"}"\nretry_commit_s = 1\n', {"alice": (ALICE,)}
    )
    alice = running.client("alice", timeout_s=30)
    before = alice.submit(orders("ok", 3)).events
    assert [kind(event) for event in before] == ["accepted", "rested"] * 3
    fill(small_disk)
    # a batch too large for LMDB's free pages: its commit needs the disk, which is full
    failed = alice.submit(orders("full", 1000, price="11")).events
    assert {(kind(event), event.reason, event.seq) for event in failed} == {
        ("rejected", "store_unavailable", None)
    }
    assert len(failed) == 1000
    # new work is refused, reads are answered from the last commit
    assert [(kind(e), e.reason) for e in alice.submit(orders("later", 1)).events] == [
        ("rejected", "store_unavailable")
    ]
    assert alice.ping().ref is not None
    assert len(alice.open_orders().orders) == 3
    snapshot = alice.snapshot(PUNK)
    assert [(level.price, level.qty) for level in snapshot.bids] == [("10", "3")]
    assert alice.markets().markets and alice.whoami().name == "alice"
    status = running.admin().call("status")
    assert (status["seq"], status["resting_orders"]) == (6, 3)
    # an operator's write (a halt) is answered, done or refused store_unavailable: never the
    # end of the loop (a small write may still fit LMDB's free pages)
    try:
        running.admin().call("halt", market=PUNK)
        halted = True
    except ClientError as refused:
        assert str(refused).startswith("store_unavailable"), refused
        halted = False
    assert alice.ping().ref is not None
    # space comes back: the node takes work again by itself
    (small_disk / "filler").unlink()
    if halted:
        running.admin().call("resume", market=PUNK)

    def accepted() -> bool:
        return kind(alice.submit(orders("back", 1)).events[0]) == "accepted"

    until(accepted, "the node to take work again")
    assert len(alice.open_orders().orders) == 4
    lines = [r.getMessage() for r in caplog.records if r.name == "marketnode.node"]
    assert len([line for line in lines if line.startswith("store unavailable")]) == 1
    assert len([line for line in lines if line.startswith("store available again")]) == 1
    running.stop()
    # nothing of the failed batch was stored; what was acknowledged was
    with Store(small_disk / "data", readonly=True) as store:
        ids = [command.id for _, command in store.journal() if hasattr(command, "id")]
    assert [i[:8] for i in ids] == ["ok000000", "ok000001", "ok000002", "back0000"]

"""The relayer's progress copied into the analytics store (node/analytics/settlement_progress.py):
a real state file written by the relayer's own store code, read into a real DuckDB file as the
trades move from pending to submitted, confirmed or failed; the file absent, not yet a
database, and replaced by a fresh one; `settlement_states` giving every chain trade its state."""

from __future__ import annotations

import os
import time

import pytest

from marketnode.node.analytics.duckdb_store import AnalyticsStore
from marketnode.node.analytics.settlement_progress import (
    COPIED,
    ROWS_PER_COPY,
    STATE_FILE,
    RelayerProgress,
    Round,
)
from marketnode.node.chain.settlement_store import (
    PendingTrade,
    Sent,
    SettlementStore,
    state_path,
)

MARKET = "DEED-USDC"


def pending(seq: int) -> PendingTrade:
    return PendingTrade(seq, MARKET, "0xb0", "0x5e", 100, 1, [seq], time.time(),
                        time.time() + 60)  # fmt: skip


def sent(nonce: int) -> Sent:
    return Sent(f"0x{nonce:064x}", "0x00", 2 * 10**9, 10**8, time.time())


@pytest.fixture
def analytics(tmp_path):
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    yield store
    store.close()


@pytest.fixture
def relayer_state(tmp_path):
    state = SettlementStore(state_path(tmp_path))
    yield state
    state.close()


def progress(analytics: AnalyticsStore) -> dict[int, tuple]:
    rows = analytics.connection.execute(
        "SELECT seq, state, tx_hash, block, reason FROM settlement_progress ORDER BY seq"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def source(analytics: AnalyticsStore) -> tuple:
    return analytics.connection.execute(
        "SELECT path, outcome, checked_at IS NOT NULL, copied_at IS NOT NULL"
        " FROM settlement_progress_source"
    ).fetchone()


def test_the_copy_follows_each_trade_from_pending_to_final(tmp_path, analytics):
    copier = RelayerProgress(tmp_path, analytics.connection)
    assert copier.copy() == "absent"  # the relayer has not run: nothing, and it says why
    assert progress(analytics) == {}
    assert source(analytics) == (str(tmp_path.joinpath(*STATE_FILE)), "absent", True, False)

    relayer_state = SettlementStore(state_path(tmp_path))
    relayer_state.add_trades([pending(1), pending(2), pending(3)], position=10)
    assert copier.copy() == COPIED
    assert progress(analytics) == {seq: ("pending", None, None, None) for seq in (1, 2, 3)}

    batch = relayer_state.add_batch([1, 2, 3], nonce=0, sent=sent(0))
    relayer_state.add_trades([pending(4)], position=12)
    copier.copy()
    hash_0 = sent(0).tx_hash
    assert progress(analytics) == {1: ("submitted", hash_0, None, None),
                                   2: ("submitted", hash_0, None, None),
                                   3: ("submitted", hash_0, None, None),
                                   4: ("pending", None, None, None)}  # fmt: skip

    relayer_state.mark_mined(batch, hash_0, 7, "0xb7", 300_000, 2 * 10**9, 10**9)
    relayer_state.finish(batch, settled=[1, 2], skipped={3: "buyer_transfer_failed"})
    relayer_state.fail_pending([4], "wrong_chain")
    copier.copy()
    assert progress(analytics) == {1: ("confirmed", hash_0, 7, None),
                                   2: ("confirmed", hash_0, 7, None),
                                   3: ("failed", hash_0, 7, "buyer_transfer_failed"),
                                   4: ("failed", None, None, "wrong_chain")}  # fmt: skip
    assert source(analytics)[1:] == (COPIED, True, True)

    state_file = tmp_path.joinpath(*STATE_FILE)
    for companion in state_file.parent.glob("state.sqlite*"):  # the file and its WAL gone
        companion.rename(companion.with_name("moved-" + companion.name))
    assert copier.copy() == "absent"
    assert len(progress(analytics)) == 4, "what was copied stays while the file is gone"
    assert source(analytics)[1:] == ("absent", True, True)
    relayer_state.close()


def test_a_file_being_created_is_tried_again_and_a_fresh_one_copied_from_the_start(
    tmp_path, analytics
):
    state_file = tmp_path.joinpath(*STATE_FILE)
    state_file.parent.mkdir(parents=True)
    state_file.write_bytes(b"")  # created, no schema yet (sqlite3.connect then the schema)
    copier = RelayerProgress(tmp_path, analytics.connection)
    outcome = copier.copy()
    assert outcome.startswith("unreadable: ") and "trades" in outcome
    state_file.write_bytes(b"SQLite format 3\x00 but cut short")
    assert copier.copy().startswith("unreadable: ")
    state_file.unlink()

    first = SettlementStore(state_path(tmp_path))
    first.add_trades([pending(seq) for seq in range(1, 6)], position=20)
    first.close()
    assert copier.copy() == COPIED and sorted(progress(analytics)) == [1, 2, 3, 4, 5]

    for companion in state_file.parent.glob("state.sqlite*"):  # a relayer started afresh
        companion.unlink()
    fresh = SettlementStore(state_path(tmp_path))
    fresh.add_trades([pending(1), pending(2)], position=4)
    fresh.close()
    assert copier.copy() == COPIED
    assert sorted(progress(analytics)) == [1, 2]

    again = RelayerProgress(tmp_path, analytics.connection)  # the analytics process restarted
    assert again.file_id == copier.file_id and again.copy() == COPIED
    assert sorted(progress(analytics)) == [1, 2]


def test_a_large_file_is_caught_up_with_over_rounds_and_every_open_trade_read_again(
    tmp_path, analytics, relayer_state
):
    trades = ROWS_PER_COPY + 10
    relayer_state.add_trades([pending(seq) for seq in range(1, trades + 1)], position=trades)
    copier = RelayerProgress(tmp_path, analytics.connection)
    copier.copy()
    assert len(progress(analytics)) == ROWS_PER_COPY
    relayer_state.add_batch([trades, 1], nonce=0, sent=sent(0))  # the first and the last open
    copier.copy()
    copied = progress(analytics)
    assert len(copied) == trades and copied[trades][0] == "submitted"
    assert copied[1][0] == "submitted"


def test_settlement_states_gives_every_chain_trade_its_state(tmp_path, analytics, relayer_state):
    connection = analytics.connection
    for seq in (1, 2, 3, 4):
        connection.execute(
            "INSERT INTO trades (seq, time, market, price, qty, notional, buyer, seller)"
            " VALUES (?, now(), ?, 100, 1, 100, '0xb0', '0x5e')", [seq, MARKET],
        )  # fmt: skip
        connection.execute("INSERT INTO chain_trades VALUES (?, ?, '0xbuy', '0xsell')",
                           [seq, MARKET])  # fmt: skip
    relayer_state.add_trades([pending(1), pending(2), pending(3)], position=10)
    batch = relayer_state.add_batch([1, 2], nonce=0, sent=sent(0))
    relayer_state.mark_mined(batch, sent(0).tx_hash, 9, "0xb9", 300_000, 2 * 10**9, 10**9)
    relayer_state.finish(batch, settled=[1], skipped={2: "nonce_used"})
    RelayerProgress(tmp_path, connection).copy()
    states = connection.execute(
        "SELECT seq, state, tx_hash IS NOT NULL, block, reason, journal_state"
        " FROM settlement_states ORDER BY seq"
    ).fetchall()
    assert states == [
        (1, "confirmed", True, 9, None, "to_settle"),
        (2, "failed", True, 9, "nonce_used", "to_settle"),
        (3, "pending", False, None, None, "to_settle"),  # the relayer holds it, unsent
        (4, "pending", False, None, None, "to_settle"),  # journaled, not read by the relayer
    ]
    connection.execute("INSERT INTO settlement_failures VALUES (2)")  # the node acted on it
    assert connection.execute(
        "SELECT state, journal_state FROM settlement_states WHERE seq = 2"
    ).fetchone() == ("failed", "failed")


def test_a_quiet_file_is_not_read_again_until_it_changes(tmp_path, analytics, relayer_state):
    relayer_state.add_trades([pending(1)], position=2)
    state_file = tmp_path.joinpath(*STATE_FILE)
    long_ago = time.time() - 60
    for companion in state_file.parent.glob("state.sqlite*"):
        os.utime(companion, (long_ago, long_ago))
    copier = RelayerProgress(tmp_path, analytics.connection)
    copier.copy()
    assert copier.read_version is not None, "read whole, unwritten for a minute: remembered"
    assert copier.read() == Round(COPIED, complete=True)
    relayer_state.add_batch([1], nonce=0, sent=sent(0))
    copier.copy()
    assert progress(analytics)[1][0] == "submitted"
    assert copier.read_version is None, "written just now: read again at the next round"

"""Settlement in the analytics store: which trades settle on chain, and where each stands.

What the journal records of settlement is the signed orders: each `NewOrder` carries its
owner's EIP-712 signature and the digest the node verified (`order_hash`), and a trade between
two signed orders is the relayer's to settle (node/chain/journal_trades.py; a trade with an
unsigned side is settled by the node's trusted peers themselves). The follower sees them as it
replays the journal (`SignedTrades`) and writes them to `chain_trades` in the transaction of
the trades' own events, so each is there exactly once. The relayer's progress with them
(submitted in a transaction, confirmed at a block, refused with a reason) is not journaled: it
is in the relayer's own state file, which the analytics process copies to
`settlement_progress` every few seconds (settlement_progress.py). What the node keeps of it is
the trades that failed, after it acted on one (cancelled the owner's resting orders in a
journaled batch, reason `settlement_failed`, and told both peers): their seqs, in a list beside
the books of its LMDB store, which the follower copies to `settlement_failures` when it
changes.

View `settlement_states`: every trade to settle on chain, its two order hashes, its
`journal_state`: `failed` (the node acted on its failure) or `to_settle` (nothing the node
recorded says otherwise), and its `state` as the relayer has it: `pending` (journaled, and the
relayer has not sent it yet, or not read it yet), `submitted` (with `tx_hash`), `confirmed`
(at `block`) or `failed` (with `reason`). A failure the node acted on is `failed` even while
the copy is a round behind the relayer.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ..core.commands import NewOrder
from ..core.events import Accepted, Cancelled, Trade
from ..store.lmdb_store import Store
from .settlement_progress import SCHEMA as PROGRESS

SCHEMA = PROGRESS + """
CREATE TABLE IF NOT EXISTS chain_trades (
    seq BIGINT, market VARCHAR, buy_order_hash VARCHAR, sell_order_hash VARCHAR
);
CREATE TABLE IF NOT EXISTS settlement_failures (seq BIGINT);
CREATE OR REPLACE VIEW settlement_states AS
    SELECT c.seq, t.time, c.market, t.buyer, t.seller, t.price, t.qty, t.notional,
           c.buy_order_hash, c.sell_order_hash,
           CASE WHEN f.seq IS NULL THEN 'to_settle' ELSE 'failed' END AS journal_state,
           CASE WHEN f.seq IS NULL THEN coalesce(p.state, 'pending') ELSE 'failed' END AS state,
           p.tx_hash, p.block, p.reason, p.batch, p.settled_at
    FROM chain_trades c
    JOIN trades t USING (seq)
    LEFT JOIN settlement_failures f USING (seq)
    LEFT JOIN settlement_progress p USING (seq)
    ORDER BY c.seq;
"""

CHAIN_TRADE_FIELDS = (
    "{seq: 'BIGINT', market: 'VARCHAR', buy_order_hash: 'VARCHAR', sell_order_hash: 'VARCHAR'}"
)
CHAIN_TRADES_FROM_JSON = """
INSERT INTO chain_trades
SELECT seq, market, buy_order_hash, sell_order_hash
FROM read_json({path}, format = 'newline_delimited', columns = {fields})
"""

NODE_FAILURES_KEY = b"settlement_failures"
"""The list of failed trades' seqs the node keeps in its store once it has acted on each
(node/server/settlement_link.py writes it, as HANDLED_KEY; its last 10,000)."""

OrderKey = tuple[str, str, Any]
"""(market, owner, id): an order while it lives."""


class SignedTrades:
    """The signed orders the replaying engine accepted, while they live, and the trades
    between two of them."""

    def __init__(self) -> None:
        self.live: dict[OrderKey, str] = {}
        """Order hash of each live signed order."""

    def observe(self, commands: list, out: list) -> list[dict]:
        """The rows of `chain_trades` among the events `out` that `commands` made (in one
        `process_batch`); the signed orders accepted, filled and cancelled are followed."""
        signed = {
            (command.market, command.owner, command.id): command.order_hash
            for command in commands
            if type(command) is NewOrder and command.order_hash
        }
        if not signed and not self.live:
            return []  # (the common case: a node without signed orders costs this loop only)
        found = []
        live = self.live
        for event in out:
            kind = type(event)
            if kind is Accepted:
                key = (event.market, event.owner, event.id)
                if event.op == "new" and key in signed:
                    live[key] = signed[key]
            elif kind is Trade:
                maker = (event.market, event.maker_owner, event.maker_id)
                taker = (event.market, event.taker_owner, event.taker_id)
                maker_hash, taker_hash = live.get(maker), live.get(taker)
                if event.maker_remaining == 0:
                    live.pop(maker, None)
                if event.taker_remaining == 0:
                    live.pop(taker, None)
                if maker_hash and taker_hash:
                    buy, sell = (taker_hash, maker_hash) if event.aggressor == "buy" else (
                        maker_hash, taker_hash)  # fmt: skip
                    found.append({"seq": event.seq, "market": event.market,
                                  "buy_order_hash": buy, "sell_order_hash": sell})  # fmt: skip
            elif kind is Cancelled and event.remaining == 0:
                live.pop((event.market, event.owner, event.id), None)
        return found


class NodeFailures:
    """Copies the node's list of failed trades into `settlement_failures` when it changes."""

    def __init__(self) -> None:
        self.copied: list[str] | None = None

    def refresh(self, store: Store, connection: duckdb.DuckDBPyConnection) -> None:
        """Read the node's list (at every sync: the node may record a failure with nothing
        to cancel, so no new commit) and copy it if it changed, in one transaction."""
        failed = store.get_meta_list(NODE_FAILURES_KEY)
        if failed == self.copied:
            return
        seqs = [int(seq) for seq in failed if seq.isdigit()]
        connection.execute("BEGIN TRANSACTION")
        try:
            connection.execute("DELETE FROM settlement_failures")
            if seqs:
                connection.execute(
                    "INSERT INTO settlement_failures SELECT unnest(?::BIGINT[])", [seqs]
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        self.copied = failed

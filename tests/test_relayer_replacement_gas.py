"""A replacement estimated after its batch was mined, then the batch reorganised out: found by
bench/settlement_chaos.py (50 trades of one batch ended `failed`, "the batch's transaction
reverted", after a fee spike, a reorg and a relayer restart).

The relayer replaces a stuck batch with `_sign`, which estimates the gas again against the
latest block. When the original transaction is mined between the relayer's receipt check and
that estimate, the estimate is made against a chain where the batch's own trades are already
settled (each one a cheap `already_settled` skip), so the replacement carries a gas limit far
too small for the real batch. If the original's block is then reorganised out, a restarted
relayer broadcasts the batch's latest transaction (the replacement) once, and it runs out of gas.
The batch reverts and every trade in it is failed for good, though none of them was at fault.

Here the interleaving is made deterministic through the relayer's own clock: the check that
finds the batch stuck mines the block holding the original, as a block time would at that
moment."""

from __future__ import annotations

import time

from chain_fixtures import anvil_web3_fixture  # noqa: F401 - a fixture, found by its name
from test_relayer import (  # noqa: F401 - fixtures, found by pytest under their names
    anvil_call,
    anvil_market,
    balances,
    implied_change,
    in_process_relayer,
    journal_trades,
    settled,
    signed_node,
    trade_through_node,
    use_relayer_key,
    wait_for,
)

from marketnode.node.chain import relayer as relayer_module
from marketnode.node.chain.settlement_store import CONFIRMED


class MiningClock:
    """The wall clock, `ahead_s` ahead once asked; armed, its next reading first mines a
    block (what a block time does at whatever moment it falls)."""

    def __init__(self, w3) -> None:
        self.w3 = w3
        self.ahead_s = 0.0
        self.armed = False

    def __call__(self) -> float:
        if self.armed:
            self.armed = False
            anvil_call(self.w3, "evm_mine")
        return time.time() + self.ahead_s


def test_replacement_signed_after_its_batch_was_mined_still_settles_after_a_reorg(
    anvil_market,  # noqa: F811 - the fixture imported above
    signed_node,  # noqa: F811
):
    market = anvil_market
    use_relayer_key(market)
    running = signed_node(market)
    before = balances(market)
    trade_through_node(running, market, rounds=1, tag="q")
    running.stop()
    clock = MiningClock(market.w3)
    relayer, store = in_process_relayer(running.home, market, stuck_after_s=1.0, clock=clock)
    state = relayer.state
    anvil_call(market.w3, "evm_setAutomine", False)
    wait_for(lambda: bool(state.open_batches()), market.w3, relayer.step, mining=False)
    batch = state.open_batches()[0]
    clock.ahead_s, clock.armed = 5.0, True  # stuck now; its check mines the original
    relayer.step()
    original, replacement = state.sent(batch["id"])[-1], state.sent(batch["id"])[0]
    assert replacement.tx_hash != original.tx_hash  # replaced after the original was mined
    assert market.w3.eth.get_transaction_receipt(original.tx_hash)["status"] == 1
    anvil_call(market.w3, "anvil_reorg", 1, [])  # the original's block leaves the chain
    store.close()
    state.close()

    # the relayer restarts (as after a SIGKILL) and broadcasts the batch once again
    anvil_call(market.w3, "evm_setAutomine", True)
    relayer, store = in_process_relayer(running.home, market, stuck_after_s=1.0)
    try:
        wait_for(settled(relayer.state), market.w3, relayer.step)
        final = relayer.state.batches()[0]
        receipt = market.w3.eth.get_transaction_receipt(final["tx_hash"])
        sent = market.w3.eth.get_transaction(final["tx_hash"])
        why = (f"batch {final['state']} ({final['reason']}): its transaction used "
               f"{receipt['gasUsed']} of the {sent['gas']} gas it was given")  # fmt: skip
        assert relayer.state.counts() == {"pending": 0, "submitted": 0, CONFIRMED: 3,
                                          "failed": 0}, why  # fmt: skip
        change = implied_change(journal_trades(store), market)
        assert balances(market) == {key: before[key] + change[key] for key in before}
    finally:
        store.close()


def test_a_batch_that_reverts_as_a_whole_goes_again_and_fails_no_trade(
    anvil_market,  # noqa: F811 - the fixture imported above
    signed_node,  # noqa: F811
    monkeypatch,
):
    """A transaction given too little gas reverts as a whole: no owner is at fault, so its
    trades are not failed (no notice, no cancel) but sent again in a new batch."""
    market = anvil_market
    use_relayer_key(market)
    running = signed_node(market)
    before = balances(market)
    trade_through_node(running, market, rounds=1, tag="v")
    running.stop()
    relayer, store = in_process_relayer(running.home, market)
    state = relayer.state
    try:
        monkeypatch.setattr(relayer_module, "GAS_MARGIN", 0.5)  # half the gas it needs
        monkeypatch.setattr(relayer_module, "GAS_EXTRA", 0)
        wait_for(lambda: bool(state.open_batches()), market.w3, relayer.step)
        first = state.open_batches()[0]["id"]
        monkeypatch.undo()
        wait_for(settled(state), market.w3, relayer.step)
        batches = {batch["id"]: batch for batch in state.batches()}
        assert batches[first]["state"] == "failed"
        assert batches[first]["reason"] == relayer_module.REVERTED
        assert state.counts() == {"pending": 0, "submitted": 0, CONFIRMED: 3, "failed": 0}
        assert state.unacknowledged(10) == []
        change = implied_change(journal_trades(store), market)
        assert balances(market) == {key: before[key] + change[key] for key in before}
    finally:
        store.close()
        state.close()

"""The settlement contract on real chains (the embedded eth-tester and anvil): its order digest is
eth-account's EIP-712 digest, a batch moves exactly what its fills say, every invalid trade is
skipped with its reason while the rest of the batch settles, a replay moves nothing, and only
the relayer settles. The checked-in artifacts are the sources compiled."""

from __future__ import annotations

import re
from dataclasses import astuple, replace

import pytest
import vyper
from chain_fixtures import (
    BUY,
    SELL,
    Market,
    anvil_web3_fixture,  # noqa: F401 (fixtures, taken by name)
    chain_fixture,  # noqa: F401
    market_fixture,  # noqa: F401
    order_digest,
    sign_cancel,
    start_anvil,
)
from eth_account import Account

from marketnode.node.chain import contracts, eip712, rpc
from marketnode.node.chain.contracts import SkipReason

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
NO_ORDER = bytes(32)

REFUSING_TOKEN = """
# pragma version 0.4.3
# A token whose transferFrom neither moves anything nor reverts: it returns false.
@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    return False
"""


@pytest.mark.parametrize("name", contracts.CONTRACT_NAMES)
def test_the_checked_in_artifacts_are_the_sources_compiled(name):
    compiled = contracts.compile_contract(name)
    checked_in = contracts.load(name)
    assert compiled.abi == checked_in.abi, f"rebuild: python -m {contracts.__name__}"
    assert compiled.bytecode == checked_in.bytecode, f"rebuild: python -m {contracts.__name__}"


def test_the_contract_digest_is_eth_accounts_and_the_nodes(market: Market):
    order = market.order(market.buyer, BUY, price=123, quantity=7, baseTokenId=5, nonce=2**200)
    digest = market.settlement.functions.order_hash(astuple(order)).call()
    assert digest == order_digest(order, market.chain_id, market.deployment.settlement)
    fields = [bytes.fromhex(v[2:]) if isinstance(v, str) else v for v in astuple(order)]
    domain = eip712.Domain(market.chain_id, bytes.fromhex(market.deployment.settlement[2:]))
    assert digest == eip712.order_digest(domain, eip712.Order(*fields))


def balances(market: Market) -> dict[str, tuple[int, int]]:
    """(base, quote) of the buyer, the seller and the fee recipient."""
    holders = {"buyer": market.buyer.address, "seller": market.seller.address,
               "fees": market.fee_recipient}  # fmt: skip
    return {
        name: (market.base.functions.balanceOf(address).call(),
               market.quote.functions.balanceOf(address).call())
        for name, address in holders.items()
    }  # fmt: skip


def test_a_batch_settles_and_the_balances_move_as_the_fills_say(market: Market):
    buy = market.order(market.buyer, BUY, price=110, quantity=10)
    sell = market.order(market.seller, SELL, price=100, quantity=6)
    other_sell = market.order(market.seller, SELL, price=104, quantity=9)
    item_buy = market.order(market.buyer, BUY, price=5000, quantity=1, baseTokenId=2,
                            base=market.deployment.collection, lotUnits=1)  # fmt: skip
    item_sell = replace(item_buy, owner=market.seller.address, side=SELL, price=4000, nonce=99)
    before = balances(market)

    outcome = market.settle([
        market.trade(1, buy, sell, quantity=4, price=105, buy_fee=420, sell_fee=210),
        market.trade(2, buy, sell, quantity=2, price=100),
        market.trade(3, buy, other_sell, quantity=4, price=110, sell_fee=4400),
        market.trade(4, item_buy, item_sell, quantity=1, price=4500, buy_fee=45),
    ])  # fmt: skip

    assert outcome.settled == [1, 2, 3, 4] and outcome.skipped == []
    lots, tick = market.lot_units, market.tick_units
    quote_paid = (4 * 105 + 2 * 100 + 4 * 110) * tick + 4500 * tick  # one lot of one item
    fees = 420 + 210 + 4400 + 45
    after = balances(market)
    assert after["buyer"] == (before["buyer"][0] + 10 * lots,
                              before["buyer"][1] - quote_paid - 420 - 45)  # fmt: skip
    assert after["seller"] == (before["seller"][0] - 10 * lots,
                               before["seller"][1] + quote_paid - 210 - 4400)  # fmt: skip
    assert after["fees"] == (0, before["fees"][1] + fees)
    assert market.collection.functions.ownerOf(2).call() == market.buyer.address
    filled = market.settlement.functions.filled
    hash_of = market.settlement.functions.order_hash
    assert filled(hash_of(astuple(buy)).call()).call() == 10
    assert filled(hash_of(astuple(sell)).call()).call() == 6
    assert filled(hash_of(astuple(other_sell)).call()).call() == 4
    assert all(market.settlement.functions.is_settled(i).call() for i in (1, 2, 3, 4))


def _high_s(signature: bytes) -> bytes:
    """The same signature with s mirrored to the upper half (ecrecover still accepts it)."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64]), signature[64]
    return r + (SECP256K1_ORDER - s).to_bytes(32) + bytes([55 - v])


def _refusing_token(market: Market) -> str:
    output = vyper.compile_code(REFUSING_TOKEN, output_formats=["abi", "bytecode"])
    factory = market.w3.eth.contract(abi=output["abi"], bytecode=output["bytecode"])
    return rpc.send(market.w3, factory.constructor(), market.admin)["contractAddress"]


@pytest.mark.slow
def test_each_invalid_trade_is_skipped_with_its_reason_and_the_rest_settle(market: Market):
    buyer, seller, settlement = market.buyer, market.seller, market.settlement
    hash_of = settlement.functions.order_hash
    market.as_owner(seller, settlement.functions.set_min_nonce(1000))
    cancelled = market.order(buyer, BUY, 100, 5)
    market.as_owner(buyer, settlement.functions.cancel(astuple(cancelled)))
    poor = market.wallet("poor", quote=1000 * market.tick_units)  # pays 10 lots at 100, no fee
    unapproved = market.wallet("unapproved", quote=10**30, approve=False)
    refusing, no_code = _refusing_token(market), Account.create().address

    def pair(price: int = 100, quantity: int = 10, **changes) -> tuple:
        buy = market.order(changes.pop("buyer", buyer), BUY, price, quantity, **changes)
        sell = market.order(seller, SELL, price, quantity, nonce=market.next_nonce + 1000,
                            **changes)  # fmt: skip
        return buy, sell

    good_buy, good_sell = pair()
    tampered = market.trade(3, *pair(), quantity=1, price=100)
    expired = pair(expiry=market.now() - 1)
    below_minimum = (good_buy, market.order(seller, SELL, 100, 10, nonce=999))
    overfill, price_limits, fee_limit = pair(quantity=3), pair(), pair()
    mismatched = market.order(buyer, SELL, 100, 10), good_sell  # two sells
    poor_pair, unapproved_pair = pair(buyer=poor), pair(buyer=unapproved)
    refused, codeless = pair(quote=refusing), pair(base=no_code)
    wrong_signer = market.trade(2, *pair(), quantity=1, price=100)
    signed_by_buyer = market.sign(replace(wrong_signer.sell, owner=buyer.address))
    cases = [
        (market.trade(1, good_buy, good_sell, quantity=2, price=100), None),
        (replace(wrong_signer, sell_signature=signed_by_buyer),
         (SkipReason.BAD_SIGNATURE, wrong_signer.sell)),
        (replace(tampered, buy=replace(tampered.buy, price=101), price=101),
         (SkipReason.BAD_SIGNATURE, replace(tampered.buy, price=101))),
        (replace(tampered, trade_id=4, buy_signature=_high_s(tampered.buy_signature)),
         (SkipReason.BAD_SIGNATURE, tampered.buy)),
        (market.trade(5, *expired, quantity=1, price=100), (SkipReason.EXPIRED, expired[0])),
        (market.trade(6, *below_minimum, quantity=1, price=100),
         (SkipReason.NONCE_BELOW_MINIMUM, below_minimum[1])),
        (market.trade(7, cancelled, good_sell, quantity=1, price=100),
         (SkipReason.CANCELLED, cancelled)),
        (market.trade(8, *overfill, quantity=2, price=100), None),
        (market.trade(9, *overfill, quantity=2, price=100), (SkipReason.OVERFILL, overfill[0])),
        (market.trade(10, *price_limits, quantity=1, price=101),
         (SkipReason.PRICE_OUTSIDE_LIMIT, price_limits[0])),
        (market.trade(11, *price_limits, quantity=1, price=99),
         (SkipReason.PRICE_OUTSIDE_LIMIT, price_limits[1])),
        (market.trade(12, *fee_limit, quantity=1, price=100, sell_fee=1001),  # 1% is 1000
         (SkipReason.FEE_OVER_MAX, fee_limit[1])),
        (market.trade(13, *fee_limit, quantity=1, price=100, buy_fee=1000), None),
        (market.trade(14, *poor_pair, quantity=10, price=100, buy_fee=1),  # the fee is too much
         (SkipReason.BUYER_TRANSFER_FAILED, poor_pair[0])),
        (market.trade(15, *unapproved_pair, quantity=1, price=100),
         (SkipReason.BUYER_TRANSFER_FAILED, unapproved_pair[0])),
        (market.trade(16, *refused, quantity=1, price=100),
         (SkipReason.BUYER_TRANSFER_FAILED, refused[0])),
        (market.trade(17, *codeless, quantity=1, price=100),
         (SkipReason.SELLER_TRANSFER_FAILED, codeless[1])),
        (market.trade(18, *mismatched, quantity=1, price=100),
         (SkipReason.ORDERS_MISMATCHED, None)),
        (market.trade(19, good_buy, good_sell, quantity=3, price=100), None),
    ]  # fmt: skip
    before = balances(market)

    outcome = market.settle([trade for trade, _ in cases])

    assert outcome.settled == [trade.trade_id for trade, skip in cases if skip is None]
    expected_skips = [
        (trade.trade_id, reason, NO_ORDER if order is None else hash_of(astuple(order)).call())
        for trade, (reason, order) in ((t, s) for t, s in cases if s is not None)
    ]
    assert outcome.skipped == expected_skips
    lots_settled, quote_settled = 2 + 2 + 1 + 3, (2 + 2 + 1 + 3) * 100 * market.tick_units
    after = balances(market)
    assert after["buyer"] == (before["buyer"][0] + lots_settled * market.lot_units,
                              before["buyer"][1] - quote_settled - 1000)  # fmt: skip
    assert after["seller"] == (before["seller"][0] - lots_settled * market.lot_units,
                               before["seller"][1] + quote_settled)  # fmt: skip
    assert after["fees"][1] == before["fees"][1] + 1000
    assert market.quote.functions.balanceOf(poor.address).call() == 1000 * market.tick_units
    assert market.base.functions.balanceOf(poor.address).call() == 0
    assert not settlement.functions.is_settled(14).call()


def test_a_replayed_trade_moves_nothing_twice(market: Market):
    buy = market.order(market.buyer, BUY, price=100, quantity=10)
    sell = market.order(market.seller, SELL, price=100, quantity=10)
    batch = [market.trade(1, buy, sell, quantity=3, price=100),
             market.trade(2, buy, sell, quantity=3, price=100)]  # fmt: skip
    assert market.settle(batch).settled == [1, 2]
    before = balances(market)

    replayed = market.settle([*batch, market.trade(3, buy, sell, quantity=5, price=100)])

    assert replayed.settled == []
    assert [(trade_id, reason) for trade_id, reason, _ in replayed.skipped] == [
        (1, SkipReason.ALREADY_SETTLED), (2, SkipReason.ALREADY_SETTLED),
        (3, SkipReason.OVERFILL),
    ]  # fmt: skip
    assert balances(market) == before


def test_only_the_relayer_settles_and_only_the_admin_changes_it(market: Market):
    settlement, buy = market.settlement, market.order(market.buyer, BUY, 100, 1)
    trade = market.trade(1, buy, market.order(market.seller, SELL, 100, 1), 1, 100)
    settle = settlement.functions.settle([trade.as_tuple()])
    with pytest.raises(rpc.TransactionReverted, match="only the relayer settles"):
        rpc.send(market.w3, settle, market.admin)
    with pytest.raises(rpc.TransactionReverted, match="only the admin"):
        rpc.send(market.w3, settlement.functions.set_relayer(market.relayer), market.relayer)
    new_relayer = market.w3.eth.accounts[3]
    rpc.send(market.w3, settlement.functions.set_relayer(new_relayer), market.admin)
    with pytest.raises(rpc.TransactionReverted, match="only the relayer settles"):
        rpc.send(market.w3, settle, market.relayer)
    rpc.send(market.w3, settle, new_relayer)
    assert settlement.functions.is_settled(1).call()
    with pytest.raises(rpc.TransactionReverted, match="only settle executes trades"):
        rpc.send(market.w3, settlement.functions.execute_trade(
            2, NO_ORDER, NO_ORDER, 1, market.buyer.address, market.seller.address,
            market.deployment.base_token, 0, market.deployment.quote_token, 1, 1, 0,
        ), new_relayer)  # fmt: skip


def test_cancels_are_the_owners_and_the_minimum_nonce_only_rises(market: Market):
    settlement, buyer = market.settlement, market.buyer
    order = market.order(buyer, BUY, 100, 1)
    with pytest.raises(rpc.TransactionReverted, match="only the order's owner"):
        market.as_owner(market.seller, settlement.functions.cancel(astuple(order)))
    market.as_owner(buyer, settlement.functions.cancel(astuple(order)))
    order_hash = settlement.functions.order_hash(astuple(order)).call()
    assert settlement.functions.cancelled(buyer.address, order_hash).call()
    market.as_owner(buyer, settlement.functions.increment_min_nonce())
    market.as_owner(buyer, settlement.functions.set_min_nonce(10))
    with pytest.raises(rpc.TransactionReverted, match="the minimum nonce only goes up"):
        market.as_owner(buyer, settlement.functions.set_min_nonce(10))
    assert settlement.functions.min_nonce(buyer.address).call() == 10


def test_a_signed_cancel_brought_by_the_relayer_cancels_only_its_owners_order(market: Market):
    buyer, seller, settlement = market.buyer, market.seller, market.settlement
    chain_id, address = market.chain_id, market.deployment.settlement
    buy, sell = market.order(buyer, BUY, 100, 2), market.order(seller, SELL, 100, 2)
    sell_hash = settlement.functions.order_hash(astuple(sell)).call()
    cancel_signed = settlement.functions.cancel_signed
    by_buyer = sign_cancel(buyer, sell_hash, chain_id, address)
    with pytest.raises(rpc.TransactionReverted, match="bad signature"):
        rpc.send(market.w3, cancel_signed(seller.address, sell_hash, by_buyer), market.relayer)
    rpc.send(market.w3, cancel_signed(buyer.address, sell_hash, by_buyer), market.relayer)
    assert market.settle([market.trade(1, buy, sell, 1, 100)]).settled == [1]  # not the buyer's

    by_seller = sign_cancel(seller, sell_hash, chain_id, address)
    rpc.send(market.w3, cancel_signed(seller.address, sell_hash, by_seller), market.relayer)

    outcome = market.settle([market.trade(2, buy, sell, 1, 100)])
    assert outcome.skipped == [(2, SkipReason.CANCELLED, sell_hash)]

def test_a_missing_anvil_fails_naming_the_install_command(monkeypatch, tmp_path):
    monkeypatch.delenv(rpc.ANVIL_ENVIRONMENT, raising=False)
    monkeypatch.setattr(rpc, "ANVIL_FOLDER", tmp_path)  # an install step never run
    with pytest.raises(pytest.fail.Exception, match=re.escape(rpc.ANVIL_INSTALL)):
        start_anvil()


def test_anvil_answers_on_loopback_and_stops_by_its_pid():
    anvil, w3 = start_anvil()
    process = anvil.process
    try:
        assert anvil.url.startswith("http://127.0.0.1:") and w3.eth.chain_id == 31337
    finally:
        anvil.stop()
    assert process is not None and process.returncode is not None
    assert not w3.is_connected()

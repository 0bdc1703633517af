"""Orders signed by the independent signer are accepted by `marketnode.node.chain`; tampered,
expired, high-s, wrong-chain and replayed ones are refused with the reasons docs/signing.md
gives. The `new` command map of the page is turned into the library's types here, as the node
will do when it takes signed orders."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
from coincurve import PrivateKey

from marketnode.node.chain.eip712 import Domain, Order, address_from_text
from marketnode.node.chain.signatures import (
    SignedCancel,
    SignedOrder,
    check_cancel,
    check_nonce,
    check_order,
)
from marketnode.node.chain.verifier import VerifierPool

from .signer import Market, N, Wallet, cancel_digest, keccak256, new_command, sign_order

DOC = Path(__file__).resolve().parents[2] / "docs" / "signing.md"
NOW = 1_800_000_000
PUNK = Market(symbol="PUNK-ETH", tick="0.01", lot="1", chain_id=31337,
              contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
              base_token="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", base_token_id=0,
              quote_token="0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
              lot_units=10**18, tick_units=10**16)  # fmt: skip
NODE_DOMAIN = Domain(PUNK.chain_id, address_from_text(PUNK.contract))
ALICE = Wallet(PrivateKey(keccak256(b"alice's independent key")))


def as_node_reads_it(command: dict, market: Market = PUNK) -> SignedOrder:
    """The command as the node's library takes it: the market's settings and the wire's."""
    order = Order(
        owner=address_from_text(command["owner"]),
        base=address_from_text(market.base_token),
        base_token_id=market.base_token_id,
        quote=address_from_text(market.quote_token),
        side={"buy": 0, "sell": 1}[command["side"]],
        price=int(Decimal(command["price"]) / Decimal(market.tick)),
        quantity=int(Decimal(command["qty"]) / Decimal(market.lot)),
        lot_units=market.lot_units,
        tick_units=market.tick_units,
        nonce=int(command["nonce"]),
        expiry=command["expiry"],
        max_fee_bps=command["max_fee_bps"],
    )
    return SignedOrder(order, bytes.fromhex(command["sig"][2:]), command["chain_id"])


def a_command(nonce: int = 1, market: Market = PUNK, expiry: int = NOW + 600, **order) -> dict:
    side, price, qty = order.get("side", "sell"), order.get("price", "100.5"), order.get("qty", "3")
    signed = sign_order(ALICE, market, side, price, qty, nonce, expiry, 30)
    return new_command(market, f"o{nonce}", side, price, qty, signed)


def reason_of(command: dict) -> str | None:
    item = as_node_reads_it(command)
    return check_order(NODE_DOMAIN, item.order, item.signature, item.chain_id, NOW).reason


def test_the_signer_reproduces_the_worked_example():
    text = DOC.read_text()
    example = dict(re.findall(r"^(\w+) += (\S+)$", text[text.index("## 5. Worked"):], re.M))
    wallet = Wallet(PrivateKey(bytes.fromhex(example["private_key"][2:])))
    assert wallet.address == example["owner"]
    signed = sign_order(wallet, PUNK, "sell", "100.5", "3", 1, 1893456000, 30)
    assert "0x" + signed.digest.hex() == example["digest"]
    assert "0x" + signed.signature.hex() == example["signature"]
    cancel = cancel_digest(PUNK, wallet.address, signed.digest)
    assert "0x" + cancel.hex() == example["cancel_digest"]
    assert "0x" + wallet.sign(cancel).hex() == example["cancel_signature"]


@pytest.mark.parametrize("side,price,qty", [("sell", "100.5", "3"), ("buy", "0.01", "1"),
                                            ("buy", "399.99", "500")])  # fmt: skip
def test_signed_orders_are_accepted(side, price, qty):
    command = a_command(side=side, price=price, qty=qty)
    assert reason_of(command) is None


def test_an_nft_market_and_a_huge_nonce_are_accepted():
    nft = Market(**{**PUNK.__dict__, "symbol": "PUNK7804-ETH", "base_token_id": 7804,
                    "lot_units": 1})  # fmt: skip
    command = a_command(nonce=2**200, market=nft)
    assert isinstance(command["nonce"], str)
    item = as_node_reads_it(command, nft)
    assert check_order(NODE_DOMAIN, item.order, item.signature, item.chain_id, NOW).reason is None


@pytest.mark.parametrize("key,value", [("price", "100.51"), ("qty", "4"), ("side", "buy"),
                                       ("expiry", NOW + 601), ("max_fee_bps", 31),
                                       ("nonce", 2)])  # fmt: skip
def test_tampered_orders_are_bad_signature(key, value):
    command = a_command() | {key: value}
    assert reason_of(command) == "bad_signature"


def test_an_expired_order_is_expired():
    assert reason_of(a_command(expiry=NOW)) == "expired"
    assert reason_of(a_command(expiry=NOW - 3600)) == "expired"


def test_a_high_s_signature_is_bad_signature():
    command = a_command()
    signature = bytes.fromhex(command["sig"][2:])
    s = int.from_bytes(signature[32:64], "big")
    high = signature[:32] + (N - s).to_bytes(32, "big") + bytes((signature[64] ^ 1,))
    assert reason_of(command | {"sig": "0x" + high.hex()}) == "bad_signature"


def test_an_order_for_another_chain_is_wrong_chain():
    mainnet = Market(**{**PUNK.__dict__, "chain_id": 1})
    assert reason_of(a_command(market=mainnet)) == "wrong_chain"


def test_a_replayed_order_is_nonce_used():
    command = a_command(nonce=5)
    owner = address_from_text(command["owner"])
    used: dict[bytes, set[int]] = {}
    assert reason_of(command) is None and check_nonce(owner, 5, used, {}) is None
    used.setdefault(owner, set()).add(5)
    assert reason_of(command) is None  # the signature is still good ...
    assert check_nonce(owner, 5, used, {}) == "nonce_used"  # ... and the engine refuses it
    assert check_nonce(owner, 4, {}, {owner: 5}) == "nonce_used"  # below a raised minimum


def test_a_signed_cancel_is_accepted_and_a_forged_one_refused():
    command = a_command()
    item = as_node_reads_it(command)
    order_hash = check_order(NODE_DOMAIN, item.order, item.signature, item.chain_id, NOW).order_hash
    signature = ALICE.sign(cancel_digest(PUNK, ALICE.address, order_hash))
    owner = address_from_text(ALICE.address)
    assert check_cancel(NODE_DOMAIN, owner, order_hash, signature) is None
    mallory = Wallet(PrivateKey(keccak256(b"mallory")))
    forged = mallory.sign(cancel_digest(PUNK, ALICE.address, order_hash))
    assert check_cancel(NODE_DOMAIN, owner, order_hash, forged) == "bad_signature"


def test_the_verifier_pool_agrees():
    good = [a_command(nonce=n) for n in range(1, 21)]
    bad = [a_command(expiry=NOW), a_command() | {"price": "1"},
           a_command(market=Market(**{**PUNK.__dict__, "chain_id": 5}))]  # fmt: skip
    items = [as_node_reads_it(command) for command in good + bad]
    order_hash = check_order(NODE_DOMAIN, items[0].order, items[0].signature, 31337, NOW)[0]
    cancel = SignedCancel(items[0].order.owner, order_hash,
                          ALICE.sign(cancel_digest(PUNK, ALICE.address, order_hash)))  # fmt: skip
    with VerifierPool(1) as pool:
        pool.submit("independent", NODE_DOMAIN, NOW, [*items, cancel])
        deadline = time.monotonic() + 60
        done = []
        while not done:
            assert time.monotonic() < deadline, "the pool gave no answer in 60 s"
            done = pool.wait(0.5)
    reasons = [verdict.reason for verdict in done[0].verdicts]
    assert reasons == [None] * 20 + ["expired", "bad_signature", "wrong_chain", None]

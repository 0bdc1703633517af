"""The independent signer (written from docs/signing.md alone) against the node's verifier.

Digests are reproduced from the worked example of signing.md §5 (values copied here), and
signatures made by the independent signer are checked through the library signing.md §8
names, marketnode.node.chain (`signatures` for the checks, `verifier` for the worker pool).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from marketnode.node.chain import signatures as chk
from marketnode.node.chain import verifier

from . import signer as S

# ---- signing.md §5, copied -------------------------------------------------------------------

EXAMPLE = {
    "private_key": "0xb8f53de44d090978c8201343f3a02bf4c4ba9dfab29a58653a8205e98034d999",
    "public_key": "0x445d91753e771b87af827db81f90bdbe07ae79a3cdbace882979f962f1561c11"
    "03a8fcacdbe2fe514bca56900c6cdac764b92c64b110baf85270b3840fa6a930",
    "owner": "0xf8108dbf62cb75607294f45ade8c3706de72b7e3",
    "chainId": 31337,
    "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "base": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "baseTokenId": 0,
    "quote": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    "side": 1,
    "price": 10050,
    "quantity": 3,
    "lotUnits": 1000000000000000000,
    "tickUnits": 10000000000000000,
    "nonce": 1,
    "expiry": 1893456000,
    "maxFeeBps": 30,
    "domain_typehash": "0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f",
    "name_hash": "0xf417a3c07b6dd89e069a0b88ab01dcc8a4019676a2d4b0c5133505968a43dc8a",
    "version_hash": "0xc89efdaa54c0f20c7adf612882df0950f5a951637e0307cdcb4c672f298b8bc6",
    "domain_separator": "0x57ac003ccc68ed8226e4f0cbe906c7515fab3d5e2e38d06526754531ec8532b3",
    "order_typehash": "0x816e70f5fe0f7c633473ffb16d0a3b9c57c6a660f4055a6b7b8ba25e1b2b8e9d",
    "cancel_typehash": "0x276565549ce6e4def16bce22f99b36ec976305175bf4f82350641605d34d03f1",
    "order_struct_hash": "0x3e0dbc51e5656aaf70c24c494be199bab88dbfc76771b56ca9988d68d6163845",
    "digest": "0xb24819b0fa12ecc77b01d6f7ad6e7299b044accd889ba366ef7069f783850de8",
    "signature": "0x2932824b4b03996045ce16fef00e19a06fe466afa2655fe2660b60cb0e649d4e"
    "28db418101932a1d18ebd1d8a2037647843e15d4c74a25408bd59ba0026d9ee41c",
    "cancel_struct_hash": "0xea14d6ddf14afdb1a3b7361aa181c554a63320ed038efcdd59be652d944354b8",
    "cancel_digest": "0x5dc0e015aeb3e843916ac368678cbbab5cf2e05a619924b32005c1c2fe9bc6c6",
    "cancel_signature": "0xa26f09da9357c9ced331b3f464ede9182e532403b2554e3d9730cec4596c2b19"
    "08cf7523e677bc87b189aed141ac3e5df9f2840508d611db9329201c35c477e41b",
}

EXAMPLE_WORDS = {
    "owner": "0x000000000000000000000000f8108dbf62cb75607294f45ade8c3706de72b7e3",
    "base": "0x000000000000000000000000e7f1725e7734ce288f8367e1bb143e90bb3f0512",
    "baseTokenId": "0x0000000000000000000000000000000000000000000000000000000000000000",
    "quote": "0x0000000000000000000000009fe46736679d2d9a65f0992f2272de9f3c7fa6e0",
    "side": "0x0000000000000000000000000000000000000000000000000000000000000001",
    "price": "0x0000000000000000000000000000000000000000000000000000000000002742",
    "quantity": "0x0000000000000000000000000000000000000000000000000000000000000003",
    "lotUnits": "0x0000000000000000000000000000000000000000000000000de0b6b3a7640000",
    "tickUnits": "0x000000000000000000000000000000000000000000000000002386f26fc10000",
    "nonce": "0x0000000000000000000000000000000000000000000000000000000000000001",
    "expiry": "0x0000000000000000000000000000000000000000000000000000000070dbd880",
    "maxFeeBps": "0x000000000000000000000000000000000000000000000000000000000000001e",
}

EXAMPLE_TYPED_DATA = json.loads(
    """
{
  "types": {
    "EIP712Domain": [
      {"name": "name", "type": "string"},
      {"name": "version", "type": "string"},
      {"name": "chainId", "type": "uint256"},
      {"name": "verifyingContract", "type": "address"}
    ],
    "Order": [
      {"name": "owner", "type": "address"},
      {"name": "base", "type": "address"},
      {"name": "baseTokenId", "type": "uint256"},
      {"name": "quote", "type": "address"},
      {"name": "side", "type": "uint8"},
      {"name": "price", "type": "uint64"},
      {"name": "quantity", "type": "uint64"},
      {"name": "lotUnits", "type": "uint256"},
      {"name": "tickUnits", "type": "uint256"},
      {"name": "nonce", "type": "uint256"},
      {"name": "expiry", "type": "uint64"},
      {"name": "maxFeeBps", "type": "uint16"}
    ]
  },
  "primaryType": "Order",
  "domain": {
    "name": "marketnode",
    "version": "1",
    "chainId": 31337,
    "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3"
  },
  "message": {
    "owner": "0xf8108dbf62cb75607294f45ade8c3706de72b7e3",
    "base": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "baseTokenId": 0,
    "quote": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    "side": 1,
    "price": 10050,
    "quantity": 3,
    "lotUnits": "1000000000000000000",
    "tickUnits": "10000000000000000",
    "nonce": 1,
    "expiry": 1893456000,
    "maxFeeBps": 30
  }
}
"""
)

EXAMPLE_WIRE = {
    "op": "new",
    "market": "PUNK-ETH",
    "id": "s1",
    "owner": "0xf8108dbf62cb75607294f45ade8c3706de72b7e3",
    "side": "sell",
    "price": "100.5",
    "qty": "3",
    "chain_id": 31337,
    "nonce": 1,
    "expiry": 1893456000,
    "max_fee_bps": 30,
    "sig": "0x2932824b4b03996045ce16fef00e19a06fe466afa2655fe2660b60cb0e649d4e"
    "28db418101932a1d18ebd1d8a2037647843e15d4c74a25408bd59ba0026d9ee41c",
}

# The PUNK-ETH market's settings as the `markets` answer would publish them (§6's proposed keys).
PUNK_ETH = {
    "tick": "0.01",
    "lot": "1",
    "chain_id": 31337,
    "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "base_token": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "base_token_id": 0,
    "quote_token": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    "lot_units": 10**18,
    "tick_units": 10**16,
    "fee_bps": 30,
    "signatures": "required",
}

KEY = bytes.fromhex(EXAMPLE["private_key"][2:])
OTHER_KEY = S.keccak256(b"another wallet")
CHAIN = EXAMPLE["chainId"]
CONTRACT = EXAMPLE["verifyingContract"]
OTHER_CONTRACT = "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"
NOW = 1_700_000_000


def h(text: str) -> bytes:
    return bytes.fromhex(text[2:])


def example_order() -> S.Order:
    return S.Order(**{name: EXAMPLE[name] for name, _ in S.ORDER_FIELDS})


# ---- from this signer's values to the verifier's types (the only marketnode-specific glue) -----


def domain(chain_id: int = CHAIN, contract: str = CONTRACT) -> chk.Domain:
    return chk.Domain(chain_id=chain_id, verifying_contract=S.address_bytes(contract))


def to_node(order: S.Order) -> chk.Order:
    values = [
        S.address_bytes(getattr(order, name)) if kind == "address" else getattr(order, name)
        for name, kind in S.ORDER_FIELDS
    ]
    return chk.Order(*values)


def check(order: S.Order, signature: bytes, stated_chain: int = CHAIN, now: int = NOW):
    return chk.check_order(domain(), to_node(order), signature, stated_chain, now)


def signed(order: S.Order, key: bytes = KEY, chain_id: int = CHAIN, contract: str = CONTRACT):
    return S.sign_order(key, chain_id, contract, order)


# ---- §2, §3, §4, §5: the worked example, value for value --------------------------------------


def test_keccak_is_ethereums():
    assert S.keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


def test_worked_example_key_and_owner():
    assert S.keccak256(b"marketnode worked example") == KEY
    assert S.public_key(KEY) == h(EXAMPLE["public_key"])
    assert S.address_of(KEY) == EXAMPLE["owner"]


def test_worked_example_type_hashes():
    assert h(EXAMPLE["domain_typehash"]) == S.DOMAIN_TYPEHASH
    assert h(EXAMPLE["order_typehash"]) == S.ORDER_TYPEHASH
    assert h(EXAMPLE["cancel_typehash"]) == S.CANCEL_TYPEHASH
    assert h(EXAMPLE["name_hash"]) == S.word_string("marketnode")
    assert h(EXAMPLE["version_hash"]) == S.word_string("1")


def test_typed_data_json_matches_type_strings():
    def type_string(name: str) -> str:
        fields = ",".join(f"{f['type']} {f['name']}" for f in EXAMPLE_TYPED_DATA["types"][name])
        return f"{name}({fields})"

    assert type_string("EIP712Domain") == S.DOMAIN_TYPE
    assert type_string("Order") == S.ORDER_TYPE
    message = EXAMPLE_TYPED_DATA["message"]
    assert {k: (int(v) if k in ("lotUnits", "tickUnits") else v) for k, v in message.items()} == {
        name: EXAMPLE[name] for name, _ in S.ORDER_FIELDS
    }
    assert EXAMPLE_TYPED_DATA["domain"] == {
        "name": "marketnode",
        "version": "1",
        "chainId": CHAIN,
        "verifyingContract": CONTRACT,
    }


def test_worked_example_words():
    words = example_order().words()
    assert [w.hex() for w in words] == [EXAMPLE_WORDS[name][2:] for name, _ in S.ORDER_FIELDS]


def test_worked_example_digests():
    order = example_order()
    assert S.domain_separator(CHAIN, CONTRACT) == h(EXAMPLE["domain_separator"])
    assert S.order_struct_hash(order) == h(EXAMPLE["order_struct_hash"])
    assert S.order_digest(CHAIN, CONTRACT, order) == h(EXAMPLE["digest"])
    owner = EXAMPLE["owner"]
    assert S.cancel_struct_hash(owner, h(EXAMPLE["digest"])) == h(EXAMPLE["cancel_struct_hash"])
    assert S.cancel_digest(CHAIN, CONTRACT, owner, h(EXAMPLE["digest"])) == h(
        EXAMPLE["cancel_digest"]
    )


def test_worked_example_signatures_byte_for_byte():
    digest, signature = signed(example_order())
    assert digest == h(EXAMPLE["digest"])
    assert signature == h(EXAMPLE["signature"])
    r, s, v = S.split_signature(signature)
    assert hex(r).startswith("0x2932") and hex(r).endswith("9d4e")
    assert hex(s).startswith("0x28db") and hex(s).endswith("9ee4")
    assert s <= S.HALF_N
    assert v == 28
    cancel_digest, cancel_signature = S.sign_cancel(KEY, CHAIN, CONTRACT, digest)
    assert cancel_digest == h(EXAMPLE["cancel_digest"])
    assert cancel_signature == h(EXAMPLE["cancel_signature"])


def test_addresses_are_case_insensitive():
    order = example_order()
    upper = replace(order, base=order.base.lower(), quote="0x" + order.quote[2:].upper())
    assert S.order_digest(CHAIN, CONTRACT.lower(), upper) == h(EXAMPLE["digest"])


def test_signer_refuses_values_outside_their_types():
    for field, value in [
        ("price", 2**64),
        ("quantity", 2**64),
        ("expiry", 2**64),
        ("maxFeeBps", 70000),
        ("side", 256),
        ("nonce", 2**256),
        ("price", -1),
    ]:
        with pytest.raises(ValueError):
            S.order_struct_hash(replace(example_order(), **{field: value}))


# ---- §6: the wire -----------------------------------------------------------------------------


def test_worked_example_on_the_wire():
    signer = S.Signer(KEY, "PUNK-ETH", PUNK_ETH)
    command, order_hash = signer.new("s1", "sell", "100.5", "3", 1, 1893456000, 30)
    assert command == EXAMPLE_WIRE
    assert order_hash == h(EXAMPLE["digest"])
    assert signer.order("sell", "100.5", "3", 1, 1893456000, 30) == example_order()


def test_wire_off_tick_and_off_lot_cannot_be_signed():
    signer = S.Signer(KEY, "PUNK-ETH", PUNK_ETH)
    with pytest.raises(ValueError):
        signer.order("sell", "100.505", "3", 1, 1893456000, 30)
    with pytest.raises(ValueError):
        signer.order("sell", "100.5", "2.5", 1, 1893456000, 30)


def test_wire_large_nonce_is_a_decimal_string():
    signer = S.Signer(KEY, "PUNK-ETH", PUNK_ETH)
    command, _ = signer.new("s2", "buy", "100", "1", 2**64, 1893456000, 30)
    assert command["nonce"] == str(2**64)
    command, _ = signer.new("s3", "buy", "100", "1", 2**64 - 1, 1893456000, 30)
    assert command["nonce"] == 2**64 - 1


def test_wire_fields_verify():
    signer = S.Signer(KEY, "PUNK-ETH", PUNK_ETH)
    command, order_hash = signer.new("b1", "buy", "99.99", "7", 42, NOW + 60, 10)
    order = signer.order("buy", "99.99", "7", 42, NOW + 60, 10)
    verdict = check(order, h(command["sig"]), command["chain_id"])
    assert verdict.reason is None
    assert verdict.order_hash == order_hash
    cancel = signer.cancel("b1", order_hash)
    assert (
        chk.check_cancel(domain(), S.address_bytes(signer.owner), order_hash, h(cancel["sig"]))
        is None
    )


# ---- §7: accepted and refused through marketnode.node.chain.signatures ------------------------


def test_good_order_is_accepted_and_names_its_digest():
    order = example_order()
    digest, signature = signed(order)
    verdict = check(order, signature)
    assert verdict.reason is None
    assert verdict.order_hash == digest == h(EXAMPLE["digest"])


def test_many_good_orders_from_other_wallets_are_accepted():
    for i in range(20):
        key = S.keccak256(b"wallet %d" % i)
        order = replace(
            example_order(),
            owner=S.address_of(key),
            side=i % 2,
            price=1 + i * 977,
            quantity=1 + i,
            nonce=i * 2**200 + i,
            expiry=NOW + 1 + i,
            maxFeeBps=i * 3000,
            baseTokenId=i * 2**100,
        )
        digest, signature = signed(order, key)
        assert S.split_signature(signature)[2] in (27, 28)
        assert S.split_signature(signature)[1] <= S.HALF_N
        verdict = check(order, signature)
        assert verdict.reason is None, (i, verdict)
        assert verdict.order_hash == digest


TAMPERED = {
    "owner": "0x" + "11" * 20,
    "base": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    "baseTokenId": 1,
    "quote": "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
    "side": 0,
    "price": 10051,
    "quantity": 4,
    "lotUnits": 10**17,
    "tickUnits": 10**15,
    "nonce": 2,
    "expiry": 1893456001,
    "maxFeeBps": 31,
}


@pytest.mark.parametrize("field", [name for name, _ in S.ORDER_FIELDS])
def test_each_tampered_field_is_bad_signature(field):
    order = example_order()
    _, signature = signed(order)
    tampered = replace(order, **{field: TAMPERED[field]})
    assert tampered != order
    assert check(tampered, signature).reason == "bad_signature"


def test_owner_signed_by_another_key_is_bad_signature():
    order = example_order()
    _, signature = signed(order, OTHER_KEY)
    assert check(order, signature).reason == "bad_signature"


@pytest.mark.parametrize("delta", [0, -1, -(10**6)])
def test_expired(delta):
    order = replace(example_order(), expiry=NOW + delta)
    _, signature = signed(order)
    assert check(order, signature).reason == "expired"
    assert (
        check(replace(order, expiry=NOW + 1), signed(replace(order, expiry=NOW + 1))[1]).reason
        is None
    )


def test_expiry_zero_is_refused():
    # §1 "0 is not allowed", §6 "unix seconds, 1 ... 2**64 - 1" (suggests malformed) and §6 Expiry
    # "so 0 is always refused" (expired): the doc does not settle which reason.
    order = replace(example_order(), expiry=0)
    _, signature = signed(order)
    assert check(order, signature).reason in ("expired", "malformed")


def test_high_s_is_bad_signature():
    order = example_order()
    _, signature = signed(order)
    r, s, v = S.split_signature(signature)
    high = S.join_signature(r, S.N - s, 55 - v)  # the same point, the other s: valid but high-s
    assert S.N - s > S.HALF_N
    assert check(order, high).reason == "bad_signature"


@pytest.mark.parametrize("form", ["recid", "eip155", "29", "26"])
def test_wrong_v_is_bad_signature(form):
    order = example_order()
    _, signature = signed(order)
    r, s, v = S.split_signature(signature)
    recid = v - 27
    wrong = {"recid": recid, "eip155": (CHAIN * 2 + 35 + recid) % 256, "29": 29, "26": 26}[form]
    assert check(order, S.join_signature(r, s, wrong)).reason == "bad_signature"
    other_v = S.join_signature(r, s, 55 - v)  # 27 <-> 28: recovers another key
    assert check(order, other_v).reason == "bad_signature"


def test_r_or_s_out_of_range_is_bad_signature():
    order = example_order()
    _, signature = signed(order)
    r, s, v = S.split_signature(signature)
    for bad_r, bad_s in [(0, s), (r, 0), (S.N, s), (r, S.N), (2**256 - 1, s)]:
        assert check(order, S.join_signature(bad_r, bad_s, v)).reason == "bad_signature"


def test_signature_of_the_wrong_length_is_refused():
    # §7 lists "`sig` not 65 bytes of hex" under malformed and "the signature is not 65 bytes"
    # under bad_signature; as bytes through the library it is bad_signature.
    order = example_order()
    _, signature = signed(order)
    for wrong in (signature[:64], signature + b"\0", b""):
        assert check(order, wrong).reason in ("bad_signature", "malformed")


def test_personal_sign_digest_is_bad_signature():
    order = example_order()
    digest = S.order_digest(CHAIN, CONTRACT, order)
    wrapped = S.keccak256(b"\x19Ethereum Signed Message:\n32" + digest)
    assert check(order, S.sign_digest(KEY, wrapped)).reason == "bad_signature"
    assert check(order, S.sign_digest(KEY, S.keccak256(digest))).reason == "bad_signature"


def test_wrong_chain():
    order = example_order()
    _, signature = signed(order)
    # stated chain is not the node's: wrong_chain
    assert check(order, signature, stated_chain=1).reason == "wrong_chain"
    # signed for another chain, stated as the node's: recovers another address
    _, other_chain = signed(order, chain_id=1)
    assert check(order, other_chain, stated_chain=CHAIN).reason == "bad_signature"
    # signed for chain 1 and honestly stated as 1: wrong_chain first
    assert check(order, other_chain, stated_chain=1).reason == "wrong_chain"


def test_wrong_contract_is_bad_signature():
    order = example_order()
    _, signature = signed(order, contract=OTHER_CONTRACT)
    assert check(order, signature).reason == "bad_signature"


@pytest.mark.parametrize(
    "field,value",
    [
        ("price", 2**64),
        ("quantity", 2**64),
        ("expiry", 2**64),
        ("maxFeeBps", 65536),
        ("nonce", 2**256),
        ("side", 256),
        ("baseTokenId", 2**256),
        ("lotUnits", 2**256),
        ("tickUnits", 2**256),
    ],
)
def test_out_of_range_is_malformed(field, value):
    _, signature = signed(example_order())
    position = [name for name, _ in S.ORDER_FIELDS].index(field)
    node_order = to_node(example_order())._replace(**{chk.Order._fields[position]: value})
    verdict = chk.check_order(domain(), node_order, signature, CHAIN, NOW)
    assert verdict.reason == "malformed"
    assert chk.order_field_error(node_order) is not None


def test_owner_not_an_address_is_malformed():
    _, signature = signed(example_order())
    node_order = to_node(example_order())._replace(owner=b"\x01" * 19)
    assert chk.check_order(domain(), node_order, signature, CHAIN, NOW).reason == "malformed"


def test_reasons_are_checked_in_the_documented_order():
    order = replace(example_order(), expiry=NOW - 1)
    _, signature = signed(order, OTHER_KEY)  # bad signature and expired and ...
    assert check(order, signature).reason == "expired"  # expired before bad_signature
    assert check(order, signature, stated_chain=5).reason == "wrong_chain"  # before expired
    node_order = to_node(order)._replace(price=2**64)
    assert chk.check_order(domain(), node_order, signature, 5, NOW).reason == "malformed"


# ---- cancels ----------------------------------------------------------------------------------


def test_signed_cancel_is_accepted():
    order_hash = h(EXAMPLE["digest"])
    _, signature = S.sign_cancel(KEY, CHAIN, CONTRACT, order_hash)
    assert signature == h(EXAMPLE["cancel_signature"])
    owner = S.address_bytes(EXAMPLE["owner"])
    assert chk.check_cancel(domain(), owner, order_hash, signature) is None


def test_tampered_or_foreign_cancels_are_bad_signature():
    order_hash = h(EXAMPLE["digest"])
    owner = S.address_bytes(EXAMPLE["owner"])
    _, signature = S.sign_cancel(KEY, CHAIN, CONTRACT, order_hash)
    other_hash = bytes([order_hash[0] ^ 1]) + order_hash[1:]
    assert chk.check_cancel(domain(), owner, other_hash, signature) == "bad_signature"
    assert chk.check_cancel(domain(), b"\x11" * 20, order_hash, signature) == "bad_signature"
    assert chk.check_cancel(domain(1), owner, order_hash, signature) == "bad_signature"
    assert (
        chk.check_cancel(domain(contract=OTHER_CONTRACT), owner, order_hash, signature)
        == "bad_signature"
    )
    _, by_other = S.sign_cancel(OTHER_KEY, CHAIN, CONTRACT, order_hash)
    assert chk.check_cancel(domain(), owner, order_hash, by_other) == "bad_signature"
    # the order's own signature is not a cancel's
    assert chk.check_cancel(domain(), owner, order_hash, h(EXAMPLE["signature"])) == "bad_signature"
    r, s, v = S.split_signature(signature)
    for wrong in (S.join_signature(r, S.N - s, 55 - v), S.join_signature(r, s, v - 27)):
        assert chk.check_cancel(domain(), owner, order_hash, wrong) == "bad_signature"


# ---- nonces (§6, §7: nonce_used, decided by the engine; the library's check) --------------------


def test_replayed_nonce_is_nonce_used():
    order = example_order()
    _, signature = signed(order)
    owner = S.address_bytes(order.owner)
    used: dict[bytes, set[int]] = {}
    floors: dict[bytes, int] = {}
    assert check(order, signature).reason is None
    assert chk.check_nonce(owner, order.nonce, used, floors) is None
    used.setdefault(owner, set()).add(order.nonce)
    # the same order again, and a different order with the same nonce
    assert chk.check_nonce(owner, order.nonce, used, floors) == "nonce_used"
    again = replace(order, price=10000)
    assert check(again, signed(again)[1]).reason is None  # stateless checks pass...
    assert chk.check_nonce(owner, again.nonce, used, floors) == "nonce_used"  # ...the nonce not
    # another owner's nonce 1 is its own
    assert chk.check_nonce(S.address_bytes(S.address_of(OTHER_KEY)), 1, used, floors) is None
    assert chk.check_nonce(owner, 2, used, floors) is None


def test_raised_minimum_nonce():
    owner = S.address_bytes(EXAMPLE["owner"])
    floors = {owner: 5}
    assert chk.check_nonce(owner, 4, {}, floors) == "nonce_used"
    assert chk.check_nonce(owner, 0, {}, floors) == "nonce_used"
    assert chk.check_nonce(owner, 5, {}, floors) is None  # "a nonce below it" is refused
    assert chk.check_nonce(owner, 6, {}, floors) is None


# ---- through the worker pool (marketnode.node.chain.verifier) ----------------------------------


def test_verifier_pool_gives_the_same_verdicts():
    good = example_order()
    _, good_sig = signed(good)
    r, s, v = S.split_signature(good_sig)
    tampered = replace(good, price=1)
    items = [
        chk.SignedOrder(to_node(good), good_sig, CHAIN),
        chk.SignedOrder(to_node(tampered), good_sig, CHAIN),
        chk.SignedOrder(to_node(good), good_sig, 1),
        chk.SignedOrder(to_node(good), S.join_signature(r, S.N - s, 55 - v), CHAIN),
        chk.SignedOrder(
            to_node(replace(good, expiry=NOW)), signed(replace(good, expiry=NOW))[1], CHAIN
        ),
        chk.SignedCancel(
            S.address_bytes(good.owner),
            h(EXAMPLE["digest"]),
            S.sign_cancel(KEY, CHAIN, CONTRACT, h(EXAMPLE["digest"]))[1],
        ),
        chk.SignedCancel(S.address_bytes(good.owner), h(EXAMPLE["digest"]), good_sig),
    ]
    pool = verifier.VerifierPool(1)
    try:
        pool.submit("batch", domain(), NOW, items)
        done: list = []
        deadline = time.monotonic() + 60
        while not done and time.monotonic() < deadline:
            done = pool.wait(1.0)
    finally:
        pool.close()
    assert len(done) == 1 and done[0].batch_id == "batch" and not done[0].failed
    reasons = [verdict.reason for verdict in done[0].verdicts]
    assert reasons == [
        None,
        "bad_signature",
        "wrong_chain",
        "bad_signature",
        "expired",
        None,
        "bad_signature",
    ]
    assert done[0].verdicts[0].order_hash == h(EXAMPLE["digest"])

"""Signed orders (issue 14): the EIP-712 digests equal eth-account's, the worked example of
docs/signing.md holds (read from the page, so the page cannot go stale), every reject reason
is given where the page says, high-s is refused, and the verifier pool checks batches in its
worker processes and survives their deaths."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from coincurve import PrivateKey
from Crypto.Hash import keccak as public_keccak
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from marketnode.node.chain import eip712
from marketnode.node.chain.eip712 import (
    CANCEL_TYPE,
    ORDER_TYPE,
    Domain,
    Order,
    address_from_text,
    address_text,
    cancel_digest,
    cancel_struct_hash,
    domain_separator,
    keccak256,
    order_digest,
    order_field_error,
    order_struct_hash,
)
from marketnode.node.chain.secp256k1 import recover_point
from marketnode.node.chain.signatures import (
    HALF_N,
    SECP256K1_N,
    SignedCancel,
    SignedOrder,
    Verdict,
    check_cancel,
    check_nonce,
    check_order,
    recover_signer,
)
from marketnode.node.chain.verifier import MAX_ATTEMPTS, VerifierPool
from marketnode.node.core.reasons import Reason

SIGNING_REASONS = (Reason.WRONG_CHAIN, Reason.EXPIRED, Reason.BAD_SIGNATURE, Reason.NONCE_USED)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "signing.md"
NOW = 1_800_000_000
DOMAIN = Domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
WAIT_S = 60.0
"""Generous bound on anything the pool does (workers start in a fresh interpreter)."""


def _fields(type_string: str) -> list[tuple[str, str]]:
    """`Order(address owner,...)` -> [("owner", "address"), ...]."""
    inner = type_string[type_string.index("(") + 1 : -1]
    return [(name, kind) for kind, name in (field.split(" ") for field in inner.split(","))]


EIP712_DOMAIN_FIELDS = [("name", "string"), ("version", "string"), ("chainId", "uint256"),
                        ("verifyingContract", "address")]  # fmt: skip


def eth_account_digest(domain: Domain, primary: str, type_string: str, message: dict) -> bytes:
    """The digest as eth-account computes it from the JSON typed data (the reference)."""
    typed = {
        "types": {
            "EIP712Domain": [{"name": n, "type": t} for n, t in EIP712_DOMAIN_FIELDS],
            primary: [{"name": n, "type": t} for n, t in _fields(type_string)],
        },
        "primaryType": primary,
        "domain": {
            "name": "marketnode",
            "version": "1",
            "chainId": domain.chain_id,
            "verifyingContract": address_text(domain.verifying_contract),
        },
        "message": message,
    }
    return _hash_eip191_message(encode_typed_data(full_message=typed))


def order_message(order: Order) -> dict:
    """The order as eth-account's typed-data message (EIP-712 field names)."""
    values = dict(zip([name for name, _ in _fields(ORDER_TYPE)], order, strict=True))
    for name in ("owner", "base", "quote"):
        values[name] = address_text(values[name])
    return values


def address_of(key: PrivateKey) -> bytes:
    return keccak256(key.public_key.format(compressed=False)[1:])[12:]


def sign(key: PrivateKey, digest: bytes) -> bytes:
    """r || s || v with v 27/28 (libsecp256k1 signs low-s)."""
    compact = key.sign_recoverable(digest, hasher=None)
    return compact[:64] + bytes((compact[64] + 27,))


def high_s(signature: bytes) -> bytes:
    """The other valid encoding of the same signature: (r, n - s), the recovery id flipped."""
    s = int.from_bytes(signature[32:64], "big")
    flipped = 27 + (1 - (signature[64] - 27))
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((flipped,))


KEY = PrivateKey(keccak256(b"tests/test_signing.py"))
OWNER = address_of(KEY)


def an_order(**changes: int | bytes) -> Order:
    order = Order(OWNER, b"\x22" * 20, 0, b"\x33" * 20, 1, 10050, 3, 10**18, 10**16, 7,
                  NOW + 3600, 30)  # fmt: skip
    return order._replace(**changes)


def signed(order: Order, key: PrivateKey = KEY, domain: Domain = DOMAIN) -> SignedOrder:
    return SignedOrder(order, sign(key, order_digest(domain, order)), domain.chain_id)


# ---- keccak and digests against the references


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_keccak_equals_pycryptodome_public_keccak(data):
    assert keccak256(data) == public_keccak.new(data=data, digest_bits=256).digest()


@given(st.binary(min_size=32, max_size=32), st.integers(1, 2**64), st.binary(min_size=65,
       max_size=65))  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_recover_point_equals_coincurves_public_recovery(digest, secret, noise):
    """Signatures made by a key, and 65 random bytes as a signature: the same key, or none,
    as `PublicKey.from_signature_and_message` finds."""
    from coincurve import PublicKey

    signed = PrivateKey(secret.to_bytes(32, "big")).sign_recoverable(digest, hasher=None)
    for compact in (signed, noise[:64] + bytes((noise[64] % 4,))):
        try:
            expected = PublicKey.from_signature_and_message(compact, digest, hasher=None)
            expected_point = expected.format(compressed=False)[1:]
        except ValueError:
            expected_point = None
        assert recover_point(digest, compact[:64], compact[64]) == expected_point
    assert recover_point(digest[:31], signed[:64], signed[64]) is None
    assert recover_point(digest, signed[:63], signed[64]) is None
    assert recover_point(digest, signed[:64], 4) is None


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, 2**bits - 1)


ADDRESSES = st.binary(min_size=20, max_size=20)
ORDERS = st.builds(
    Order, ADDRESSES, ADDRESSES, uint(256), ADDRESSES, st.integers(0, 1), uint(64), uint(64),
    uint(256), uint(256), uint(256), uint(64), uint(16),
)  # fmt: skip
DOMAINS = st.builds(Domain, uint(256), ADDRESSES)


@given(DOMAINS, ORDERS)
@settings(max_examples=200, deadline=None)
def test_order_digest_equals_eth_accounts(domain, order):
    assert order_field_error(order) is None
    expected = eth_account_digest(domain, "Order", ORDER_TYPE, order_message(order))
    assert order_digest(domain, order) == expected


@given(DOMAINS, ADDRESSES, st.binary(min_size=32, max_size=32))
@settings(max_examples=100, deadline=None)
def test_cancel_digest_equals_eth_accounts(domain, owner, order_hash):
    message = {"owner": address_text(owner), "orderHash": order_hash}
    expected = eth_account_digest(domain, "Cancel", CANCEL_TYPE, message)
    assert cancel_digest(domain, owner, order_hash) == expected


def test_eth_account_signature_of_an_order_is_accepted():
    """A wallet's signature (eth-account signing the typed data) passes the node's check."""
    order = an_order(nonce=11)
    typed_digest = eth_account_digest(DOMAIN, "Order", ORDER_TYPE, order_message(order))
    wallet = Account.from_key(KEY.secret)
    signature = bytes(wallet.unsafe_sign_hash(typed_digest).signature)
    verdict = check_order(DOMAIN, order, signature, DOMAIN.chain_id, NOW)
    assert verdict == Verdict(typed_digest, None)


# ---- the worked example of docs/signing.md


def worked_example() -> dict[str, str]:
    """The `name = value` lines of the fenced block in §5 of docs/signing.md."""
    text = DOC.read_text()
    section = text[text.index("## 5. Worked example") : text.index("## 6.")]
    block = re.search(r"```text\n(.*?)```", section, re.S)
    assert block, "docs/signing.md §5 has no ```text block"
    pairs = re.findall(r"^(\w+) += (\S+)$", block.group(1), re.M)
    return dict(pairs)


def test_worked_example_in_the_doc_holds():
    doc = worked_example()
    key = PrivateKey(bytes.fromhex(doc["private_key"][2:]))
    assert "0x" + key.public_key.format(compressed=False)[1:].hex() == doc["public_key"]
    owner = address_of(key)
    assert address_text(owner) == doc["owner"]
    domain = Domain(int(doc["chainId"]), address_from_text(doc["verifyingContract"]))
    names = [name for name, _ in _fields(ORDER_TYPE)]
    order = Order(owner, *(address_from_text(doc[name]) if name in ("base", "quote")
                           else int(doc[name]) for name in names[1:]))  # fmt: skip

    def hex_of(value: bytes) -> str:
        return "0x" + value.hex()

    assert hex_of(eip712.DOMAIN_TYPEHASH) == doc["domain_typehash"]
    assert hex_of(keccak256(b"marketnode")) == doc["name_hash"]
    assert hex_of(keccak256(b"1")) == doc["version_hash"]
    assert hex_of(domain_separator(domain)) == doc["domain_separator"]
    assert hex_of(eip712.ORDER_TYPEHASH) == doc["order_typehash"]
    assert hex_of(eip712.CANCEL_TYPEHASH) == doc["cancel_typehash"]
    words = b"".join(bytes.fromhex(doc[f"word_{name}"][2:]) for name in names)
    assert len(words) == 12 * 32
    assert hex_of(keccak256(eip712.ORDER_TYPEHASH + words)) == doc["order_struct_hash"]
    assert hex_of(order_struct_hash(order)) == doc["order_struct_hash"]
    digest = order_digest(domain, order)
    assert hex_of(digest) == doc["digest"]
    assert eth_account_digest(domain, "Order", ORDER_TYPE, order_message(order)) == digest
    wallet = Account.from_key(key.secret)
    signature = bytes(wallet.unsafe_sign_hash(digest).signature)
    assert hex_of(signature) == doc["signature"] == hex_of(sign(key, digest))
    assert check_order(domain, order, signature, domain.chain_id, NOW) == Verdict(digest, None)
    assert hex_of(cancel_struct_hash(owner, digest)) == doc["cancel_struct_hash"]
    cancel = cancel_digest(domain, owner, digest)
    assert hex_of(cancel) == doc["cancel_digest"]
    assert hex_of(bytes(wallet.unsafe_sign_hash(cancel).signature)) == doc["cancel_signature"]
    assert check_cancel(domain, owner, digest, bytes.fromhex(doc["cancel_signature"][2:])) is None


def test_the_doc_states_the_types_of_the_code():
    text = DOC.read_text()
    for type_string in (eip712.DOMAIN_TYPE, ORDER_TYPE, CANCEL_TYPE):
        assert f"\n{type_string}\n" in text
    for reason in SIGNING_REASONS:
        assert f"| `{reason}` |" in text
    assert f"`0x{SECP256K1_N:064X}`" in text and f"`0x{HALF_N:064X}`" in text


# ---- every reject reason


def test_a_good_order_passes_and_gives_its_hash():
    order = an_order()
    assert check_order(DOMAIN, order, signed(order).signature, DOMAIN.chain_id, NOW) == Verdict(
        order_digest(DOMAIN, order), None
    )


@pytest.mark.parametrize(
    ("change", "detail"),
    [({"price": 2**64}, "price"), ({"side": 2}, "side"), ({"max_fee_bps": 70000}, "max_fee_bps"),
     ({"nonce": 2**256}, "nonce"), ({"expiry": -1}, "expiry"), ({"owner": b"\x01" * 19}, "owner"),
     ({"quantity": "3"}, "quantity")],
)  # fmt: skip
def test_fields_out_of_their_types_range_are_malformed(change, detail):
    order = an_order(**change)
    assert detail in order_field_error(order)
    verdict = check_order(DOMAIN, order, b"\x00" * 65, DOMAIN.chain_id, NOW)
    assert verdict == Verdict(None, Reason.MALFORMED)


def test_another_chain_is_wrong_chain():
    other = DOMAIN._replace(chain_id=1)
    item = signed(an_order(), domain=other)
    assert check_order(DOMAIN, item.order, item.signature, 1, NOW).reason == "wrong_chain"
    # the stated chain is the node's, but the order was signed for another: the signer differs
    assert check_order(DOMAIN, item.order, item.signature, DOMAIN.chain_id, NOW).reason == (
        Reason.BAD_SIGNATURE
    )


def test_another_contract_is_bad_signature():
    other = DOMAIN._replace(verifying_contract=b"\x01" * 20)
    item = signed(an_order(), domain=other)
    verdict = check_order(DOMAIN, item.order, item.signature, DOMAIN.chain_id, NOW)
    assert verdict.reason == Reason.BAD_SIGNATURE


@pytest.mark.parametrize("expiry", [0, NOW - 1, NOW])
def test_an_expiry_at_or_before_now_is_expired(expiry):
    item = signed(an_order(expiry=expiry))
    verdict = check_order(DOMAIN, item.order, item.signature, DOMAIN.chain_id, NOW)
    assert verdict.reason == Reason.EXPIRED
    earlier = check_order(DOMAIN, item.order, item.signature, DOMAIN.chain_id, expiry - 1)
    assert earlier.reason is None


@pytest.mark.parametrize("field", [name for name in Order._fields if name != "owner"])
def test_a_field_changed_after_signing_is_bad_signature(field):
    item = signed(an_order())
    value = getattr(item.order, field)
    tampered = (bytes([value[0] ^ 1]) + value[1:] if isinstance(value, bytes)
                else (1 - value if field == "side" else value + 1))  # fmt: skip
    verdict = check_order(DOMAIN, item.order._replace(**{field: tampered}), item.signature,
                          DOMAIN.chain_id, NOW)  # fmt: skip
    assert verdict.reason == Reason.BAD_SIGNATURE


def test_another_signer_is_bad_signature():
    order = an_order()
    other = PrivateKey(keccak256(b"someone else"))
    signature = sign(other, order_digest(DOMAIN, order))
    assert recover_signer(order_digest(DOMAIN, order), signature) == address_of(other)
    assert check_order(DOMAIN, order, signature, DOMAIN.chain_id, NOW).reason == "bad_signature"


def _malformed_signatures(good: bytes) -> list[bytes]:
    r_zero = bytes(32) + good[32:]
    s_zero = good[:32] + bytes(32) + good[64:]
    r_too_big = SECP256K1_N.to_bytes(32, "big") + good[32:]
    v_raw = good[:64] + bytes((good[64] - 27,))
    v_eip155 = good[:64] + bytes((good[64] - 27 + 35 + 2 * 31337 & 0xFF,))
    return [good[:64], good + b"\x00", b"", r_zero, s_zero, r_too_big, v_raw, v_eip155]


def test_malformed_signatures_are_bad_signature():
    item = signed(an_order())
    for signature in _malformed_signatures(item.signature):
        verdict = check_order(DOMAIN, item.order, signature, DOMAIN.chain_id, NOW)
        assert verdict.reason == Reason.BAD_SIGNATURE, signature.hex()


def test_high_s_is_refused_though_it_recovers_the_owner():
    item = signed(an_order())
    flipped = high_s(item.signature)
    assert int.from_bytes(flipped[32:64], "big") > HALF_N
    # it is a valid signature of the owner (ecrecover would take it) ...
    compact = flipped[:64] + bytes((flipped[64] - 27,))
    digest = order_digest(DOMAIN, item.order)
    from coincurve import PublicKey

    recovered = PublicKey.from_signature_and_message(compact, digest, hasher=None)
    assert keccak256(recovered.format(compressed=False)[1:])[12:] == OWNER
    # ... and it is refused: one order must not have two signatures
    verdict = check_order(DOMAIN, item.order, flipped, DOMAIN.chain_id, NOW)
    assert verdict.reason == Reason.BAD_SIGNATURE


def test_used_nonces_and_nonces_below_the_floor_are_nonce_used():
    used = {OWNER: {5, 9}}
    floors = {OWNER: 3}
    assert check_nonce(OWNER, 5, used, floors) == Reason.NONCE_USED
    assert check_nonce(OWNER, 2, used, floors) == Reason.NONCE_USED
    assert check_nonce(OWNER, 3, used, floors) is None
    assert check_nonce(OWNER, 6, used, floors) is None
    assert check_nonce(b"\x44" * 20, 5, used, floors) is None


def test_signed_cancels():
    order_hash = order_digest(DOMAIN, an_order())
    signature = sign(KEY, cancel_digest(DOMAIN, OWNER, order_hash))
    assert check_cancel(DOMAIN, OWNER, order_hash, signature) is None
    other_hash = order_digest(DOMAIN, an_order(nonce=8))
    assert check_cancel(DOMAIN, OWNER, other_hash, signature) == "bad_signature"
    assert check_cancel(DOMAIN, OWNER, order_hash, high_s(signature)) == "bad_signature"
    assert check_cancel(DOMAIN, OWNER, order_hash[:31], signature) == Reason.MALFORMED
    assert check_cancel(DOMAIN, OWNER[:19], order_hash, signature) == Reason.MALFORMED


# ---- the verifier pool


def a_mixed_batch() -> tuple[list[SignedOrder | SignedCancel], list[str | None]]:
    """Good and bad items, and the reason each must get."""
    good = [signed(an_order(nonce=n)) for n in range(40)]
    expired = signed(an_order(expiry=NOW))
    wrong_chain = good[0]._replace(chain_id=5)
    tampered = good[1]._replace(order=good[1].order._replace(price=1))
    flipped = good[2]._replace(signature=high_s(good[2].signature))
    order_hash = order_digest(DOMAIN, good[3].order)
    cancel = SignedCancel(OWNER, order_hash, sign(KEY, cancel_digest(DOMAIN, OWNER, order_hash)))
    items = [*good, expired, wrong_chain, tampered, flipped, cancel]
    reasons = [None] * 40 + ["expired", "wrong_chain", "bad_signature", "bad_signature", None]
    return items, reasons


def _batches(pool: VerifierPool, count: int) -> dict:
    """Wait for `count` finished batches, by id."""
    done = {}
    deadline = time.monotonic() + WAIT_S
    while len(done) < count:
        assert time.monotonic() < deadline, f"{len(done)} of {count} batches in {WAIT_S} s"
        done.update((batch.batch_id, batch) for batch in pool.wait(0.1))
    return done


def _until_ready(pool: VerifierPool, workers: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while pool.ready_workers < workers:
        assert time.monotonic() < deadline, f"no {workers} ready workers in {WAIT_S} s"
        assert pool.wait(0.05) == []


def test_the_pool_checks_batches_in_order_and_closes_cleanly():
    items, reasons = a_mixed_batch()
    pool = VerifierPool(2)
    pids = pool.worker_pids()
    try:
        for batch_id in range(6):
            pool.submit(batch_id, DOMAIN, NOW, items)
        with pytest.raises(ValueError, match="already pending"):
            pool.submit(0, DOMAIN, NOW, items)
        done = _batches(pool, 6)
        for batch in done.values():
            assert not batch.failed
            assert [verdict.reason for verdict in batch.verdicts] == reasons
        assert batch.verdicts[0].order_hash == order_digest(DOMAIN, items[0].order)
        assert pool.pending == 0
        folder = Path(pool._folder)
    finally:
        pool.close()
    assert not folder.exists()
    for pid in pids:
        assert not _alive(pid)


def test_the_pool_survives_a_killed_worker_and_sends_its_batch_again():
    items, reasons = a_mixed_batch()
    with VerifierPool(1) as pool:
        _until_ready(pool, 1)
        (victim,) = pool.worker_pids()
        os.kill(victim, signal.SIGSTOP)  # it holds the batch and cannot answer it
        pool.submit("held", DOMAIN, NOW, items)
        os.kill(victim, signal.SIGKILL)
        done = _batches(pool, 1)
        assert [verdict.reason for verdict in done["held"].verdicts] == reasons
        assert pool.restarts == 1 and pool.worker_pids() != [victim]


def test_a_batch_that_kills_its_workers_is_given_back_failed():
    items, reasons = a_mixed_batch()
    poison = SignedOrder("not an order", b"", 31337)  # makes the worker raise
    with VerifierPool(1) as pool:
        pool.submit("poison", DOMAIN, NOW, [poison])
        pool.submit("after", DOMAIN, NOW, items)
        done = _batches(pool, 2)
        assert done["poison"].failed and done["poison"].verdicts == []
        assert [verdict.reason for verdict in done["after"].verdicts] == reasons
        assert pool.restarts == MAX_ATTEMPTS


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to reap it has finished)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_exit_when_their_parent_dies():
    script = ("from marketnode.node.chain.verifier import VerifierPool\n"
              "import sys, time\n"
              "pool = VerifierPool(2)\n"
              "while pool.ready_workers < 2: pool.wait(0.05)\n"
              "print(*pool.worker_pids(), flush=True)\n"
              "time.sleep(600)\n")  # fmt: skip
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + WAIT_S
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "orphaned verifier workers kept running"
        time.sleep(0.05)

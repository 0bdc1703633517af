"""Signed orders for the node's tests, made with eth-account from the typed data of
docs/signing.md (not with the node's own encoding), and a home whose markets take them."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from marketnode.node.home.layout import Home

CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
BASE = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512"
QUOTE = "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0"
LOT_UNITS = 10**18
TICK_UNITS = 10**16
WALLETS = [Account.from_key(bytes([index + 1]) * 32) for index in range(4)]
"""Test keys only (never use a published key for anything real)."""

MARKETS = f"""
[settlement]
chain_id = {CHAIN_ID}
contract = "{CONTRACT}"
verifier_workers = 1

[[markets]]
symbol = "PUNK-ETH"
base = "PUNK"
quote = "ETH"
tick_size = "0.01"
lot_size = "1"
signatures = "optional"
base_token = "{BASE}"
quote_token = "{QUOTE}"
lot_units = "{LOT_UNITS}"
tick_units = "{TICK_UNITS}"
fee_bps = "10"

[[markets]]
symbol = "LAND-ETH"
base = "LAND"
quote = "ETH"
tick_size = "0.01"
lot_size = "1"
signatures = "required"
base_token = "{BASE}"
quote_token = "{QUOTE}"
lot_units = "{LOT_UNITS}"
tick_units = "{TICK_UNITS}"

[[markets]]
symbol = "GOLD-USDC"
base = "GOLD"
quote = "USDC"
tick_size = "0.05"
lot_size = "0.1"
"""
"""PUNK-ETH takes signed and unsigned orders, LAND-ETH signed ones only, GOLD-USDC none."""

TICKS = {"PUNK-ETH": 100, "LAND-ETH": 100}
"""Ticks per unit of price (both markets' tick is 0.01, their lot 1)."""

_ids = itertools.count(1)


def signed_home(path: Path, tables: str) -> Home:
    """A new home with the markets above and `tables` (endpoints, analytics...)."""
    home = Home.create(path)
    home.config_path.write_text(tables.strip() + "\n" + MARKETS)
    return home


def typed_order(order: dict, chain_id: int = CHAIN_ID, contract: str = CONTRACT) -> dict:
    """The full EIP-712 message of docs/signing.md §5 for `order` (its fields by name)."""
    fields = [
        ("owner", "address"), ("base", "address"), ("baseTokenId", "uint256"),
        ("quote", "address"), ("side", "uint8"), ("price", "uint64"), ("quantity", "uint64"),
        ("lotUnits", "uint256"), ("tickUnits", "uint256"), ("nonce", "uint256"),
        ("expiry", "uint64"), ("maxFeeBps", "uint16"),
    ]  # fmt: skip
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Order": [{"name": name, "type": kind} for name, kind in fields],
        },
        "primaryType": "Order",
        "domain": {
            "name": "marketnode",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": contract,
        },
        "message": order,
    }


def signed_new(
    wallet,
    side: str,
    price: str,
    qty: str,
    *,
    market: str = "PUNK-ETH",
    nonce: int,
    expiry: int | None = None,
    max_fee_bps: int = 30,
    order_id: str | None = None,
    sign_chain_id: int = CHAIN_ID,
    tamper: dict | None = None,
) -> dict:
    """A signed `new` command as a peer sends it; `tamper` overrides keys after signing."""
    expiry = int(time.time()) + 3600 if expiry is None else expiry
    ticks = round(float(price) * TICKS[market])
    order = {
        "owner": wallet.address, "base": BASE, "baseTokenId": 0, "quote": QUOTE,
        "side": 0 if side == "buy" else 1, "price": ticks, "quantity": int(qty),
        "lotUnits": LOT_UNITS, "tickUnits": TICK_UNITS, "nonce": nonce, "expiry": expiry,
        "maxFeeBps": max_fee_bps,
    }  # fmt: skip
    signature = Account.sign_message(
        encode_typed_data(full_message=typed_order(order, sign_chain_id)), wallet.key
    )
    command = {
        "op": "new", "market": market, "id": order_id or f"s{next(_ids)}",
        "owner": wallet.address, "side": side, "price": price, "qty": qty,
        "chain_id": CHAIN_ID, "nonce": nonce, "expiry": expiry, "max_fee_bps": max_fee_bps,
        "sig": "0x" + bytes(signature.signature).hex(),
    }  # fmt: skip
    return {**command, **(tamper or {})}


def order_digest(command: dict) -> bytes:
    """The digest eth-account computes for a signed `new` (the order hash a cancel names)."""
    market = command["market"]
    order = {
        "owner": command["owner"], "base": BASE, "baseTokenId": 0, "quote": QUOTE,
        "side": 0 if command["side"] == "buy" else 1,
        "price": round(float(command["price"]) * TICKS[market]), "quantity": int(command["qty"]),
        "lotUnits": LOT_UNITS, "tickUnits": TICK_UNITS, "nonce": command["nonce"],
        "expiry": command["expiry"], "maxFeeBps": command["max_fee_bps"],
    }  # fmt: skip
    signable = encode_typed_data(full_message=typed_order(order))
    return _hash_eip191_message(signable)


def signed_cancel(wallet, new: dict, tamper: dict | None = None) -> dict:
    """A signed `cancel` of the signed order `new`: the owner's signature of
    Cancel(owner, orderHash) under the same domain."""
    typed = {
        "types": {
            "EIP712Domain": typed_order({})["types"]["EIP712Domain"],
            "Cancel": [
                {"name": "owner", "type": "address"},
                {"name": "orderHash", "type": "bytes32"},
            ],
        },
        "primaryType": "Cancel",
        "domain": typed_order({})["domain"],
        "message": {"owner": wallet.address, "orderHash": order_digest(new)},
    }
    signature = Account.sign_message(encode_typed_data(full_message=typed), wallet.key)
    command = {
        "op": "cancel", "market": new["market"], "id": new["id"], "owner": wallet.address,
        "sig": "0x" + bytes(signature.signature).hex(),
    }  # fmt: skip
    return {**command, **(tamper or {})}

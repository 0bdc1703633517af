"""Real chains for the tests: the embedded one (eth-tester on py-evm, in process) and anvil (the
pinned npm install, started on a free loopback port and stopped by its own pid), and a market
on each: the settlement contract and tokens freshly deployed, two funded wallets that approved
the contract.

Orders are signed here with eth-account's `encode_typed_data`, the reference both the node's
EIP-712 code and the contract must match. A test needing anvil fails, never skips, when the
install step was not run: a skip would hide a missing chain in CI.

A test module takes the fixtures by importing their functions (`market_fixture`, ...): their
names in a test's parameters are `market`, `chain` and `anvil_web3`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import astuple, dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from marketnode.node.chain import rpc
from marketnode.node.chain.contracts import SkipReason
from marketnode.node.chain.deploy import Deployment, bound, deploy_all

BUY, SELL = 0, 1
MAX_UINT256 = 2**256 - 1
ORDER_FIELDS = [
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
    {"name": "maxFeeBps", "type": "uint16"},
]
CANCEL_FIELDS = [{"name": "owner", "type": "address"}, {"name": "orderHash", "type": "bytes32"}]
TYPES = {"Order": ORDER_FIELDS, "Cancel": CANCEL_FIELDS}


def typed_data(kind: str, message: dict[str, Any], chain_id: int, settlement: str) -> dict:
    """The EIP-712 document of an `Order` or a `Cancel` under the marketnode domain."""
    return {
        "domain": {"name": "marketnode", "version": "1", "chainId": chain_id,
                   "verifyingContract": settlement},
        "types": {kind: TYPES[kind]},
        "primaryType": kind,
        "message": message,
    }  # fmt: skip


@dataclass(frozen=True)
class Order:
    """The EIP-712 `Order`, its fields in the typed data's order (so astuple is the
    contract's struct)."""

    owner: str
    base: str
    baseTokenId: int
    quote: str
    side: int
    price: int
    quantity: int
    lotUnits: int
    tickUnits: int
    nonce: int
    expiry: int
    maxFeeBps: int

    def typed_data(self, chain_id: int, settlement: str) -> dict[str, Any]:
        names = [field["name"] for field in ORDER_FIELDS]
        message = dict(zip(names, astuple(self), strict=True))
        return typed_data("Order", message, chain_id, settlement)


def order_digest(order: Order, chain_id: int, settlement: str) -> bytes:
    """The order's EIP-712 digest, as eth-account computes it."""
    signable = encode_typed_data(full_message=order.typed_data(chain_id, settlement))
    return Web3.keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_order(account: LocalAccount, order: Order, chain_id: int, settlement: str) -> bytes:
    """65 bytes r || s || v (eth-account signs with low s and v in {27, 28})."""
    signable = encode_typed_data(full_message=order.typed_data(chain_id, settlement))
    return bytes(account.sign_message(signable).signature)


def sign_cancel(account: LocalAccount, order_hash: bytes, chain_id: int, settlement: str
                ) -> bytes:  # fmt: skip
    """`account`'s signed `Cancel` of the order whose digest is `order_hash`."""
    message = {"owner": account.address, "orderHash": order_hash}
    document = typed_data("Cancel", message, chain_id, settlement)
    return bytes(account.sign_message(encode_typed_data(full_message=document)).signature)


@dataclass(frozen=True)
class Trade:
    """One entry of `Settlement.settle`'s batch."""

    trade_id: int
    buy: Order
    sell: Order
    buy_signature: bytes
    sell_signature: bytes
    quantity: int
    price: int
    buy_fee: int = 0
    sell_fee: int = 0

    def as_tuple(self) -> tuple:
        return (self.trade_id, astuple(self.buy), astuple(self.sell), self.buy_signature,
                self.sell_signature, self.quantity, self.price, self.buy_fee,
                self.sell_fee)  # fmt: skip


@dataclass
class Market:
    """A fresh deployment on one chain: `buyer` holds quote, `seller` base and items 1-3, both
    approved the settlement contract for everything; `relayer` may settle."""

    w3: Web3
    deployment: Deployment
    admin: str
    relayer: str
    fee_recipient: str
    wallets: dict[str, LocalAccount] = field(default_factory=dict)
    lot_units: int = 10**15
    tick_units: int = 10**3
    next_nonce: int = 0

    @property
    def buyer(self) -> LocalAccount:
        return self.wallets["buyer"]

    @property
    def seller(self) -> LocalAccount:
        return self.wallets["seller"]

    @property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    @property
    def settlement(self) -> Contract:
        return bound(self.w3, "Settlement", self.deployment.settlement)

    @property
    def base(self) -> Contract:
        return bound(self.w3, "ERC20", self.deployment.base_token)

    @property
    def quote(self) -> Contract:
        return bound(self.w3, "ERC20", self.deployment.quote_token)

    @property
    def collection(self) -> Contract:
        return bound(self.w3, "ERC721", self.deployment.collection)

    def wallet(self, label: str, quote: int = 0, base: int = 0, approve: bool = True
               ) -> LocalAccount:  # fmt: skip
        """A new wallet (its key derived from `label`) with gas money, `quote` and `base`
        minted to it, and (if `approve`) unlimited approvals of the settlement contract."""
        account = Account.from_key(Web3.keccak(text=f"marketnode test wallet {label}"))
        self.wallets[label] = account
        rpc.fund(self.w3, self.admin, account.address, 10**19)
        for token, amount in ((self.quote, quote), (self.base, base)):
            if amount:
                rpc.send(self.w3, token.functions.mint(account.address, amount), self.admin)
            if approve:
                self.as_owner(account, token.functions.approve(self.deployment.settlement,
                                                               MAX_UINT256))  # fmt: skip
        return account

    def now(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def order(self, account: LocalAccount, side: int, price: int, quantity: int,
              **changes: Any) -> Order:  # fmt: skip
        """An order of `account` on the base/quote market, valid for an hour, fee up to 1%."""
        self.next_nonce += 1
        fields = {
            "owner": account.address, "base": self.deployment.base_token, "baseTokenId": 0,
            "quote": self.deployment.quote_token, "side": side, "price": price,
            "quantity": quantity, "lotUnits": self.lot_units, "tickUnits": self.tick_units,
            "nonce": self.next_nonce, "expiry": self.now() + 3600, "maxFeeBps": 100,
        }  # fmt: skip
        return Order(**(fields | changes))

    def sign(self, order: Order) -> bytes:
        """`order` signed by its owner's wallet."""
        owner = next(w for w in self.wallets.values() if w.address == order.owner)
        return sign_order(owner, order, self.chain_id, self.deployment.settlement)

    def trade(self, trade_id: int, buy: Order, sell: Order, quantity: int, price: int,
              **changes: Any) -> Trade:  # fmt: skip
        """A trade of `buy` and `sell`, both signed by their owners."""
        signatures = {"buy_signature": self.sign(buy), "sell_signature": self.sign(sell)}
        return Trade(trade_id, buy, sell, quantity=quantity, price=price,
                     **(signatures | changes))  # fmt: skip

    def settle(self, trades: list[Trade]) -> Outcome:
        """Sends one batch from the relayer; what became of each trade."""
        call = self.settlement.functions.settle([trade.as_tuple() for trade in trades])
        receipt = rpc.send(self.w3, call, self.relayer)
        events = self.settlement.events
        return Outcome(
            receipt,
            [log["args"]["trade_id"]
             for log in events.TradeSettled().process_receipt(receipt, errors=DISCARD)],
            [(log["args"]["trade_id"], SkipReason(log["args"]["reason"]),
              bytes(log["args"]["order_hash"]))
             for log in events.TradeSkipped().process_receipt(receipt, errors=DISCARD)],
        )  # fmt: skip

    def as_owner(self, account: LocalAccount, call: Any) -> TxReceipt:
        return rpc.send(self.w3, call, account)


@dataclass(frozen=True)
class Outcome:
    """A settled batch: its receipt, the ids settled, and (id, reason, order at fault) of
    each skipped trade (the order hash empty when the trade itself is at fault)."""

    receipt: TxReceipt
    settled: list[int]
    skipped: list[tuple[int, SkipReason, bytes]]


def open_market(w3: Web3) -> Market:
    """Deploys everything on `w3` and prepares the buyer and the seller."""
    admin, relayer, fee_recipient = w3.eth.accounts[:3]
    market = Market(w3, deploy_all(w3, admin, relayer, fee_recipient), admin, relayer,
                    fee_recipient)  # fmt: skip
    market.wallet("buyer", quote=10**30)
    seller = market.wallet("seller", base=10**30)
    for token_id in (1, 2, 3):
        rpc.send(w3, market.collection.functions.mint(seller.address, token_id), admin)
    market.as_owner(
        seller, market.collection.functions.setApprovalForAll(market.deployment.settlement, True)
    )
    return market


def start_anvil() -> tuple[rpc.Anvil, Web3]:
    """The pinned anvil, started, and a connection to it; pytest.fail (not skip) naming the
    install command when it is missing or another version."""
    try:
        binary = rpc.anvil_binary()
        version = rpc.anvil_version(binary)
    except rpc.ChainError as missing:
        problem = str(missing)
    else:
        problem = None if version == rpc.ANVIL_VERSION else (
            f"{binary} is anvil {version}, the tests pin {rpc.ANVIL_VERSION}: run "
            f"`{rpc.ANVIL_INSTALL}`"
        )  # fmt: skip
    if problem:
        pytest.fail(problem, pytrace=False)
    anvil = rpc.Anvil(binary)
    return anvil, anvil.start()


@pytest.fixture(scope="session", name="anvil_web3")
def anvil_web3_fixture() -> Iterator[Web3]:
    """One anvil for the session (each test deploys its own contracts on it)."""
    anvil, w3 = start_anvil()
    try:
        yield w3
    finally:
        anvil.stop()


@pytest.fixture(params=["embedded", "anvil"], name="chain")
def chain_fixture(request) -> Web3:
    """Each chain in turn: a fresh embedded chain, or the session's anvil."""
    if request.param == "embedded":
        return rpc.embedded_web3()
    return request.getfixturevalue("anvil_web3")


@pytest.fixture(name="market")
def market_fixture(chain) -> Market:
    return open_market(chain)

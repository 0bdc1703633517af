"""Deployment of the settlement contract and the test tokens (two ERC-20s, base and quote, and
an ERC-721 collection) onto a web3 connection, from the checked-in artifacts: what the tests,
`mnode chain deploy` and the demo put on a fresh chain; and the dev wallets' tokens and
approvals (`mnode chain fund-dev-wallets`), on local test chains only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from . import contracts
from .fees import Fees, fee_history
from .orders import Wallet
from .rpc import Sender, TransactionReverted, address_of, send

BASE_TOKEN = ("marketnode base", "BASE", 18)
QUOTE_TOKEN = ("marketnode quote", "QUOTE", 6)
COLLECTION = ("marketnode items", "ITEM")
"""(name, symbol[, decimals]) of the tokens `deploy_all` creates."""


@dataclass(frozen=True)
class Deployment:
    """The addresses of one deployment (checksummed)."""

    settlement: str
    base_token: str
    quote_token: str
    collection: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def bound(w3: Web3, name: str, address: str) -> Contract:
    """Contract `name` (one of contracts.CONTRACT_NAMES) at `address`, to call or transact."""
    return w3.eth.contract(address=Web3.to_checksum_address(address),
                           abi=contracts.load(name).abi)  # fmt: skip


def deploy_contract(w3: Web3, name: str, sender: Sender, *arguments: Any) -> str:
    """Deploys contract `name` with its constructor's `arguments`; returns its address."""
    artifact = contracts.load(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = send(w3, factory.constructor(*arguments), sender)
    return receipt["contractAddress"]


def deploy_settlement(w3: Web3, admin: Sender, relayer: str, fee_recipient: str) -> str:
    """The settlement contract, administered by `admin`, settled through by `relayer`."""
    return deploy_contract(w3, "Settlement", admin, Web3.to_checksum_address(relayer),
                           Web3.to_checksum_address(fee_recipient))  # fmt: skip


def deploy_erc20(w3: Web3, minter: Sender, name: str, symbol: str, decimals: int) -> str:
    return deploy_contract(w3, "ERC20", minter, name, symbol, decimals)


def deploy_erc721(w3: Web3, minter: Sender, name: str, symbol: str) -> str:
    return deploy_contract(w3, "ERC721", minter, name, symbol)


def deploy_all(
    w3: Web3, admin: Sender, relayer: str | None = None, fee_recipient: str | None = None
) -> Deployment:
    """The settlement contract and the three tokens, all by `admin` (the tokens' minter);
    the relayer and the fee recipient default to the admin."""
    admin_address = address_of(admin)
    return Deployment(
        settlement=deploy_settlement(
            w3, admin, relayer or admin_address, fee_recipient or admin_address
        ),
        base_token=deploy_erc20(w3, admin, *BASE_TOKEN),
        quote_token=deploy_erc20(w3, admin, *QUOTE_TOKEN),
        collection=deploy_erc721(w3, admin, *COLLECTION),
    )


DEV_CHAIN_IDS = (31337, 1337)
"""Chains with these ids are local test chains (anvil, hardhat, ganache, the embedded one):
the only ones the dev wallets, whose keys anyone can derive, are funded on."""
DEV_GAS_WEI = 10**18
DEV_TOKEN_UNITS = 10**30
"""What `fund_dev_wallets` gives each wallet by default: gas money for its approvals, and
token units that no load of hours spends."""
MAX_UINT256 = 2**256 - 1


def fund_dev_wallets(w3: Web3, minter: LocalAccount, settlement: str, tokens: list[str],
                     wallets: list[Wallet], units: int = DEV_TOKEN_UNITS,
                     gas_wei: int = DEV_GAS_WEI, timeout_s: float = 120.0) -> None:  # fmt: skip
    """Makes `wallets` ready to trade signed orders settled by `settlement`: each gets
    `gas_wei` of ether and `units` of each of `tokens` from `minter` (the test tokens'
    minter), then approves `settlement` for all of each token. Each of the two rounds sends
    all its transactions before awaiting their receipts, so a chain with a block time takes a
    block or two per round, not one per transaction. ChainError if one is refused."""
    fees = fee_history(w3).fees()
    bound_tokens = [bound(w3, "ERC20", token) for token in tokens]
    nonce = w3.eth.get_transaction_count(minter.address, "pending")
    gifts: list[tuple[LocalAccount, dict[str, Any]]] = []
    for wallet in wallets:
        address = Web3.to_checksum_address(wallet.text)
        gifts.append((minter, {"to": address, "value": gas_wei, "gas": 21_000}))
        gifts += [(minter, token.functions.mint(address, units)) for token in bound_tokens]
    _send_all(w3, gifts, {minter.address: nonce}, fees, timeout_s)
    approvals = []
    accounts = {}
    for wallet in wallets:
        account = accounts[wallet.text] = Account.from_key(wallet.key.secret)
        approvals += [(account, token.functions.approve(Web3.to_checksum_address(settlement),
                                                        MAX_UINT256))
                      for token in bound_tokens]  # fmt: skip
    nonces = {account.address: w3.eth.get_transaction_count(account.address, "pending")
              for account in accounts.values()}  # fmt: skip
    _send_all(w3, approvals, nonces, fees, timeout_s)


def _send_all(w3: Web3, transactions: list[tuple[LocalAccount, Any]], nonces: dict[str, int],
              fees: Fees, timeout_s: float) -> None:  # fmt: skip
    """Signs and sends each (sender, contract call or plain transfer) at the sender's next
    nonce from `nonces`, then awaits every receipt; ChainError names the first refused."""
    chain_id = w3.eth.chain_id
    hashes = []
    for sender, transaction in transactions:
        fields = {"from": sender.address, "nonce": nonces[sender.address], "chainId": chain_id,
                  "maxFeePerGas": fees.max_fee, "maxPriorityFeePerGas": fees.tip}  # fmt: skip
        nonces[sender.address] += 1
        built = fields | transaction if isinstance(transaction, dict) else (
            transaction.build_transaction(fields))  # fmt: skip
        hashes.append(w3.eth.send_raw_transaction(sender.sign_transaction(built).raw_transaction))
    for tx_hash in hashes:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s)
        if receipt["status"] != 1:
            raise TransactionReverted(f"transaction {tx_hash.hex()} reverted")

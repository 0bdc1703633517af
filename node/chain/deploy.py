"""Deployment of the settlement contract and the test tokens (two ERC-20s, base and quote, and
an ERC-721 collection) onto a web3 connection, from the checked-in artifacts: what the tests,
`mnode chain deploy` and the demo put on a fresh chain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract

from . import contracts
from .rpc import Sender, address_of, send

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

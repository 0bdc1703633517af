"""`mnode chain deploy --market` on a market that took no signed orders, then `mnode chain
fund-dev-wallets` against anvil: the market set for signed orders in the config, the dev
wallets holding gas money and test tokens with the settlement contract approved; refused on a
chain that is not a local test chain, and each mistake in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chain_fixtures import anvil_web3_fixture  # noqa: F401 - a fixture, found by its name
from conftest import LOOPBACK_ENDPOINTS, NO_ANALYTICS
from eth_account import Account
from typer.testing import CliRunner
from web3 import Web3

from marketnode.cli.main import app
from marketnode.node.chain import rpc
from marketnode.node.chain.deploy import DEV_TOKEN_UNITS, MAX_UINT256, bound
from marketnode.node.chain.orders import dev_wallets
from marketnode.node.home.layout import Home

runner = CliRunner()
DEPLOYER = Account.from_key(Web3.keccak(text="marketnode test dev-wallet funder"))
MARKET = """
[[markets]]
symbol = "GOLD-USDC"
base = "GOLD"
quote = "USDC"
tick_size = "0.05"
lot_size = "0.1"
"""


def mnode(*arguments: str):
    return runner.invoke(app, list(arguments))


@pytest.fixture
def home(tmp_path) -> Home:
    """A home whose one market takes no signed orders yet."""
    home = Home.create(tmp_path / "home")
    home.config_path.write_text(LOOPBACK_ENDPOINTS + NO_ANALYTICS + MARKET)
    return home


@pytest.fixture
def key_file(tmp_path, anvil_web3) -> Path:
    rpc.fund(anvil_web3, anvil_web3.eth.accounts[0], DEPLOYER.address, 10**20)
    path = tmp_path / "deployer.key"
    path.write_text(DEPLOYER.key.hex())
    return path


def test_deploy_sets_the_market_for_signatures_and_funding_readies_the_wallets(
    home, key_file, anvil_web3
):
    url = anvil_web3.provider.endpoint_uri
    here = ["--rpc", url, "--key-file", str(key_file), "--home", str(home.path)]
    deployed = mnode("chain", "deploy", *here, "--test-tokens", "--market", "GOLD-USDC", "--json")
    assert deployed.exit_code == 0, deployed.output
    written = {"signatures": "required", "lot_units": str(10**17), "tick_units": "5000"}
    assert json.loads(deployed.stdout)["market_settings"] == {"GOLD-USDC": written}
    spec = home.config().markets[0]
    # a lot of 0.1 GOLD in 18 decimals; a tick of 0.05 USDC per GOLD on a lot, in 6 decimals
    assert (spec.signatures, spec.lot_units, spec.tick_units) == ("required", str(10**17), "5000")

    funded = mnode("chain", "fund-dev-wallets", *here, "--wallets", "3", "--json")
    assert funded.exit_code == 0, funded.output
    wallets = [Web3.to_checksum_address(wallet.text) for wallet in dev_wallets(3)]
    assert json.loads(funded.stdout)["wallets"] == [wallet.lower() for wallet in wallets]
    settlement = json.loads(deployed.stdout)["settlement"]
    for name in ("base_token", "quote_token"):
        token = bound(anvil_web3, "ERC20", json.loads(deployed.stdout)[name])
        for wallet in wallets:
            assert token.functions.balanceOf(wallet).call() == DEV_TOKEN_UNITS
            assert token.functions.allowance(wallet, settlement).call() == MAX_UINT256
    assert all(anvil_web3.eth.get_balance(wallet) > 0 for wallet in wallets)
    again = mnode("chain", "fund-dev-wallets", *here, "--wallets", "1")  # more for the first
    assert again.exit_code == 0, again.output
    assert token.functions.balanceOf(wallets[0]).call() == 2 * DEV_TOKEN_UNITS


def test_funding_mistakes_are_one_line(home, key_file, anvil_web3, tmp_path):
    url = anvil_web3.provider.endpoint_uri
    key = ["--key-file", str(key_file)]
    foreign = rpc.Anvil(rpc.anvil_binary(), ("--chain-id", "5"))
    foreign_w3 = foreign.start()
    try:
        rpc.fund(foreign_w3, foreign_w3.eth.accounts[0], DEPLOYER.address, 10**20)
        foreign_url = foreign_w3.provider.endpoint_uri
        deployed = mnode("chain", "deploy", "--rpc", foreign_url, *key, "--home", str(home.path),
                         "--test-tokens", "--market", "GOLD-USDC")  # fmt: skip
        assert deployed.exit_code == 0, deployed.output
        cases = [
            (["--rpc", foreign_url, *key], 2, "chain 5 is not a local test chain"),
            (["--rpc", "ws://127.0.0.1:1", *key], 2, "not a JSON-RPC URL"),
            (["--rpc", "http://127.0.0.1:1", *key], 2, "no JSON-RPC node answers"),
            (["--rpc", url, "--key-file", str(tmp_path / "missing")], 2, "cannot read"),
        ]
        for arguments, code, words in cases:
            result = mnode("chain", "fund-dev-wallets", *arguments, "--home", str(home.path))
            assert result.exit_code == code, (arguments, result.output)
            assert result.stderr.startswith("mnode: ") and result.stderr.count("\n") == 1
            assert words in result.stderr, (arguments, result.stderr)
    finally:
        foreign.stop()
    fresh = Home.create(tmp_path / "fresh")
    nothing = mnode("chain", "fund-dev-wallets", "--rpc", url, *key, "--home", str(fresh.path))
    assert nothing.exit_code == 3 and "no settlement contract" in nothing.stderr

"""`mnode chain deploy` against anvil: the contracts on chain, their addresses in the home's
config (its comments kept), a node that starts with it; and each mistake in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chain_fixtures import anvil_web3_fixture  # noqa: F401 - a fixture, found by its name
from conftest import LOOPBACK_ENDPOINTS, NO_ANALYTICS, start_node
from eth_account import Account
from typer.testing import CliRunner
from web3 import Web3

from marketnode.cli.chain import edited_config
from marketnode.cli.main import app
from marketnode.node.chain import rpc
from marketnode.node.chain.deploy import bound
from marketnode.node.home.layout import Home

runner = CliRunner()
DEPLOYER = Account.from_key(Web3.keccak(text="marketnode test deployer"))
SETTLEMENT = """
[settlement]
# the contract's address: `mnode chain deploy` writes it
contract = ""
verifier_workers = 1
"""
MARKET = """
[[markets]]
symbol = "TOK-USD"
base = "TOK"
quote = "USD"
tick_size = "0.01"
lot_size = "1"
# signed orders: the tokens and the contract come from `mnode chain deploy`
signatures = "required"
lot_units = "1000000000000000"
tick_units = "1000"
"""


def mnode(*arguments: str):
    return runner.invoke(app, list(arguments))


@pytest.fixture
def home(tmp_path) -> Home:
    """A home whose one market takes signed orders, with neither contract nor tokens yet."""
    home = Home.create(tmp_path / "home")
    home.config_path.write_text(LOOPBACK_ENDPOINTS + NO_ANALYTICS + SETTLEMENT + MARKET)
    return home


@pytest.fixture
def key_file(tmp_path, anvil_web3) -> Path:
    rpc.fund(anvil_web3, anvil_web3.eth.accounts[0], DEPLOYER.address, 10**20)
    path = tmp_path / "deployer.key"
    path.write_text(DEPLOYER.key.hex())
    return path


def test_deploy_writes_a_config_the_node_starts_with(home, key_file, anvil_web3):
    url = anvil_web3.provider.endpoint_uri
    result = mnode("chain", "deploy", "--rpc", url, "--key-file", str(key_file), "--home",
                   str(home.path), "--test-tokens", "--market", "TOK-USD", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    deployed = json.loads(result.stdout)
    assert deployed["chain_id"] == anvil_web3.eth.chain_id and deployed["rpc"] == url
    for name in ("settlement", "base_token", "quote_token", "collection"):
        assert anvil_web3.eth.get_code(deployed[name]), f"no {name} contract on chain"
    settlement = bound(anvil_web3, "Settlement", deployed["settlement"])
    assert settlement.functions.relayer().call() == DEPLOYER.address

    text = home.config_path.read_text()
    assert "# signed orders: the tokens and the contract come from `mnode chain deploy`" in text
    config = home.config()
    assert config.settlement.contract == deployed["settlement"]
    assert (config.settlement.chain_id, config.settlement.rpc) == (deployed["chain_id"], url)
    (market,) = config.markets
    assert (market.base_token, market.quote_token) == (
        deployed["base_token"], deployed["quote_token"],
    )  # fmt: skip
    running = start_node(home)
    try:
        running.add_peer("alice", ("0xa11ce",))
        (rules,) = running.client("alice").markets().markets
        assert rules.contract.lower() == deployed["settlement"].lower()
    finally:
        running.stop()

    again = mnode("chain", "deploy", "--rpc", url, "--key-file", str(key_file), "--home",
                  str(home.path))  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "settlement contract 0x" in again.stdout
    assert home.config().settlement.contract != deployed["settlement"]  # the new one replaces it
    assert home.config_path.read_text().count("\ncontract = ") == 1


def test_deploy_mistakes_are_one_line(home, key_file, anvil_web3, tmp_path):
    url = anvil_web3.provider.endpoint_uri
    unfunded = tmp_path / "unfunded.key"
    unfunded.write_text(Account.from_key(Web3.keccak(text="nobody's money")).key.hex())
    not_a_key = tmp_path / "not-a-key"
    not_a_key.write_text("hello")
    before = home.config_path.read_text()
    here = ["--home", str(home.path)]
    tokens = ["--test-tokens", "--market", "TOK-USD"]
    key = ["--key-file", str(key_file)]
    cases = [
        (["--rpc", url, *key, "--home", str(tmp_path / "nowhere")], 3, "not a node home"),
        (["--rpc", url, *key, *here], 3, "base_token: missing (required with signatures)"),
        (["--rpc", "ws://127.0.0.1:1", *key, *here, *tokens], 2, "not a JSON-RPC URL"),
        (["--rpc", "http://127.0.0.1:1", *key, *here, *tokens], 2, "no JSON-RPC node answers"),
        (["--rpc", url, "--key-file", str(tmp_path / "missing"), *here, *tokens], 2,
         "cannot read"),
        (["--rpc", url, "--key-file", str(not_a_key), *here, *tokens], 2, "not a private key"),
        (["--rpc", url, *key, *here, "--market", "TOK-USD"], 2, "give --test-tokens"),
        (["--rpc", url, *key, *here, "--test-tokens", "--market", "NOPE-USD"], 3,
         "no [[markets]] table with symbol 'NOPE-USD'"),
        (["--rpc", url, *key, *here, *tokens, "--relayer", "0x12"], 2, "not an address"),
        (["--rpc", url, "--key-file", str(unfunded), *here, *tokens], 6,
         "refused the deployment"),
    ]  # fmt: skip
    for arguments, code, words in cases:
        result = mnode("chain", "deploy", *arguments)
        assert result.exit_code == code, (arguments, result.output)
        assert result.stderr.startswith("mnode: ") and result.stderr.count("\n") == 1, result.stderr
        assert words in result.stderr, (arguments, result.stderr)
    assert home.config_path.read_text() == before


def test_a_config_without_settlement_table_gets_one():
    text = edited_config('[node]\nname = "n"  # its name\n', {"contract": "0xab", "chain_id": 5},
                         {}, [])  # fmt: skip
    expected = '[node]\nname = "n"  # its name\n\n[settlement]\ncontract = "0xab"\nchain_id = 5\n'
    assert text == expected

"""`mnode chain deploy`: the settlement contract (and, asked, the test tokens) onto a chain, and
their addresses into the home's config.toml.

The config is edited in place, line by line, so its comments and layout stay: `[settlement]`
gets `contract`, `chain_id` (the chain's own, which every signature names) and `rpc`; each
market named with `--market` gets the test tokens as `base_token` and `quote_token`, and, when
it took no signed orders yet, `signatures = "required"` with the `lot_units` and `tick_units`
its sizes make in the test tokens' decimals. The edited file is checked as the node will read
it before anything is deployed (with stand-in addresses) and again before it is written, so a
deployment never leaves a config the node refuses.

`mnode chain fund-dev-wallets` gives the dev wallets (whose keys anyone can derive, so local
test chains only) gas money, test tokens and approvals: the wallets `mnode load --signed`
signs for.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import Web3Exception

from marketnode.node.chain.deploy import (
    BASE_TOKEN,
    DEV_CHAIN_IDS,
    QUOTE_TOKEN,
    Deployment,
    deploy_all,
    deploy_settlement,
    fund_dev_wallets,
)
from marketnode.node.chain.orders import dev_wallets
from marketnode.node.chain.relayer_service import relayer_key
from marketnode.node.chain.rpc import ChainError, connect
from marketnode.node.core.markets import ConfigError
from marketnode.node.home.config import SettlementConfig, parse_config

from .common import (
    EXIT_CONFIG,
    EXIT_REJECTED,
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    print_json,
    require_home,
)

app = typer.Typer(help="The chain the node settles on: deploy its contracts (and, on a local "
                  "test chain, fund the dev wallets).",
                  no_args_is_help=True)  # fmt: skip

STAND_IN = "0x" + "00" * 20
"""An address for checking the edited config before the real ones exist."""
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.]+)\s*\]\]?\s*(#.*)?$")

RpcOption = Annotated[
    str,
    typer.Option("--rpc", metavar="URL", help="The chain's JSON-RPC URL (http:// or https://)."),
]
KeyFileOption = Annotated[
    Path,
    typer.Option(
        "--key-file", metavar="FILE", help="The deployer's private key, hex alone in a file."
    ),
]
TestTokensOption = Annotated[
    bool,
    typer.Option(
        "--test-tokens",
        help="Also deploy the test tokens: two ERC-20s (base, quote) and an ERC-721.",
    ),
]
MarketOption = Annotated[
    list[str] | None,
    typer.Option(
        "--market",
        metavar="SYMBOL",
        help="A market (its symbol) to trade the test ERC-20s: its base_token and quote_token "
        "are written. Repeatable; needs --test-tokens.",
        show_default=False,
    ),
]
RelayerOption = Annotated[
    str | None,
    typer.Option(
        "--relayer",
        metavar="ADDRESS",
        help="The address that may settle (default: the deployer's).",
        show_default=False,
    ),
]


def _table_spans(lines: list[str]) -> list[tuple[str, bool, int, int]]:
    """(name, is an array table, first line, end line) of every table after its header."""
    headers = [(index, match) for index, line in enumerate(lines)
               if (match := _HEADER.match(line))]  # fmt: skip
    ends = [index for index, _ in headers[1:]] + [len(lines)]
    return [(match.group(2), match.group(1) == "[[", index, end)
            for (index, match), end in zip(headers, ends, strict=True)]  # fmt: skip


def _toml_value(value: str | int) -> str:
    return str(value) if isinstance(value, int) else f'"{value}"'


def _set_keys(lines: list[str], start: int, end: int, values: dict[str, str | int]) -> None:
    """Set `values` in the table whose header is `lines[start]`: a key's line is replaced, a
    missing key goes right under the header."""
    missing = dict(values)
    for index in range(start + 1, end):
        key = lines[index].split("=", 1)[0].strip()
        if "=" in lines[index] and key in missing:
            lines[index] = f"{key} = {_toml_value(missing.pop(key))}"
    for offset, (key, value) in enumerate(missing.items(), start=1):
        lines.insert(start + offset, f"{key} = {_toml_value(value)}")


def _market_symbol(lines: list[str], start: int, end: int) -> str | None:
    for line in lines[start + 1 : end]:
        match = re.match(r'^\s*symbol\s*=\s*"([^"]*)"', line)
        if match:
            return match.group(1)
    return None


def edited_config(text: str, settlement: dict[str, str | int], tokens: dict[str, str],
                  markets: list[str], signing: dict[str, dict[str, str]] | None = None
                  ) -> str:  # fmt: skip
    """`text` with `settlement`'s keys set in `[settlement]` (the table added when missing) and
    `tokens` (and the market's own `signing` keys, if any) set in each `[[markets]]` table
    whose symbol is in `markets`. ConfigError names a market that is not in the file."""
    lines = text.splitlines()
    signing = signing or {}
    # later tables first: an insertion moves only the lines after it
    found = set()
    for name, is_array, start, end in reversed(_table_spans(lines)):
        symbol = _market_symbol(lines, start, end) if name == "markets" and is_array else None
        if symbol in markets:
            found.add(symbol)
            _set_keys(lines, start, end, tokens | signing.get(symbol, {}))  # type: ignore[arg-type,operator]
        elif name == "settlement" and not is_array:
            _set_keys(lines, start, end, settlement)
            found.add("[settlement]")
    missing = [symbol for symbol in markets if symbol not in found]
    if missing:
        raise ConfigError(f"no [[markets]] table with symbol {missing[0]!r} in the config")
    if "[settlement]" not in found:
        lines += ["", "[settlement]", *(f"{key} = {_toml_value(value)}"
                                        for key, value in settlement.items())]  # fmt: skip
    return "\n".join(lines) + "\n"


def signing_settings(text: str, source: str, markets: list[str]) -> dict[str, dict[str, str]]:
    """For each of `markets` that takes no signed orders in `text`: `signatures = "required"`
    and the `lot_units` and `tick_units` its lot and tick make in the test tokens' decimals
    (a market already set for signatures keeps its own). ConfigError for a size the tokens
    cannot express in whole units."""
    if not markets:
        return {}
    specs = {spec.symbol: spec for spec in parse_config(text, source).markets}
    settings = {}
    for symbol in markets:
        spec = specs.get(symbol)
        if spec is None or spec.signatures != "off":
            continue
        lot = Decimal(spec.lot_size) * 10 ** BASE_TOKEN[2]
        tick = Decimal(spec.tick_size) * Decimal(spec.lot_size) * 10 ** QUOTE_TOKEN[2]
        if lot != lot.to_integral_value() or tick != tick.to_integral_value():
            raise ConfigError(f"{source}: market {symbol!r}: its lot_size or tick_size is finer "
                              "than the test tokens' decimals")  # fmt: skip
        settings[symbol] = {"signatures": "required", "lot_units": str(int(lot)),
                            "tick_units": str(int(tick))}  # fmt: skip
    return settings


def _checked(text: str, source: str) -> str:
    parse_config(text, source)  # the node's own reading: ConfigError if it would refuse it
    return text


def _deploy(w3: Web3, account: LocalAccount, relayer: str | None,
            test_tokens: bool) -> Deployment:  # fmt: skip
    """The contracts, by `account` (also the relayer unless `relayer` is given, and the fee
    recipient); without test tokens their addresses are empty."""
    if test_tokens:
        return deploy_all(w3, account, relayer or account.address, account.address)
    settlement = deploy_settlement(w3, account, relayer or account.address, account.address)
    return Deployment(settlement, "", "", "")


@app.command("deploy")
def deploy_command(
    rpc: RpcOption,
    key_file: KeyFileOption,
    home: HomeOption = None,
    test_tokens: TestTokensOption = False,
    market: MarketOption = None,
    relayer: RelayerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy the settlement contract (and with --test-tokens the test tokens) and write their
    addresses into the home's config.toml: [settlement] contract, chain_id and rpc, and the
    tokens of each --market. It takes effect when the node starts."""
    node_home = require_home(home)
    markets = market or []
    if markets and not test_tokens:
        fail("--market writes the test tokens: give --test-tokens too", EXIT_USAGE)
    if not rpc.startswith(("http://", "https://")):
        fail(f"--rpc: {rpc!r} is not a JSON-RPC URL (http:// or https://)", EXIT_USAGE)
    if relayer is not None and not Web3.is_address(relayer):
        fail(f"--relayer: {relayer!r} is not an address (0x and 40 hex digits)", EXIT_USAGE)
    source = str(node_home.config_path)
    try:
        text = node_home.config_path.read_text()
        stand_ins = {"base_token": STAND_IN, "quote_token": STAND_IN}
        stand_in_settlement = {"contract": STAND_IN, "rpc": rpc}
        signing = signing_settings(
            edited_config(text, stand_in_settlement, stand_ins, markets), source, markets
        )
        _checked(edited_config(text, stand_in_settlement, stand_ins, markets, signing), source)
    except OSError as error:
        fail(f"{node_home.path}: not a node home ({source}: {error.strerror})", EXIT_CONFIG)
    except ConfigError as error:
        fail(str(error), EXIT_CONFIG)
    try:  # read as the relayer reads its own key
        account = relayer_key(node_home, SettlementConfig(key_file=str(key_file.resolve())))
    except ConfigError as error:
        fail(f"--key-file: {error}", EXIT_USAGE)
    try:
        w3 = connect(rpc)
    except ChainError as error:
        fail(str(error), EXIT_USAGE)
    try:
        deployment = _deploy(w3, account, relayer, test_tokens)
        chain_id = w3.eth.chain_id
    except ChainError as error:
        fail(str(error).splitlines()[0], EXIT_REJECTED)
    except (Web3Exception, ValueError, OSError) as error:  # refused by the chain (gas, funds)
        fail(f"the chain at {rpc} refused the deployment: {str(error).splitlines()[0]}",
             EXIT_REJECTED)  # fmt: skip
    settlement = {"contract": deployment.settlement, "chain_id": chain_id, "rpc": rpc}
    tokens = {"base_token": deployment.base_token, "quote_token": deployment.quote_token}
    try:
        node_home.config_path.write_text(
            _checked(edited_config(text, settlement, tokens, markets, signing), source)
        )
    except (OSError, ConfigError) as error:
        detail = error.strerror if isinstance(error, OSError) else str(error)
        fail(f"deployed {deployment.settlement}, but could not write {source}: {detail}",
             EXIT_CONFIG)  # fmt: skip
    result = {"chain_id": chain_id, "rpc": rpc, "config": source, "markets": markets,
              **{key: value for key, value in deployment.to_dict().items() if value},
              "market_settings": signing}  # fmt: skip
    if as_json:
        print_json(result)
        return
    typer.echo(f"settlement contract {deployment.settlement} on chain {chain_id} ({rpc})")
    if test_tokens:
        typer.echo(f"test tokens: base {deployment.base_token}, quote {deployment.quote_token}, "
                   f"collection {deployment.collection}")  # fmt: skip
    written = (
        "[settlement] contract, chain_id, rpc"
        + (f"; base_token, quote_token of {', '.join(markets)}" if markets else "")
        + "".join(f"; signatures, lot_units, tick_units of {symbol}" for symbol in signing)
    )
    typer.echo(f"wrote {written} to {source}", err=True)


WalletsOption = Annotated[
    int, typer.Option("--wallets", min=1, help="How many dev wallets (the first N).")
]


@app.command("fund-dev-wallets")
def fund_dev_wallets_command(
    rpc: RpcOption,
    key_file: Annotated[
        Path,
        typer.Option(
            "--key-file",
            metavar="FILE",
            help="The test tokens' minter (their deployer): its key, hex in a file.",
        ),
    ],
    home: HomeOption = None,
    wallets: WalletsOption = 50,
    as_json: JsonOption = False,
) -> None:
    """On a local test chain only (chain id 31337 or 1337): give the first N dev wallets gas
    money and test tokens of every market taking signed orders, and approve the settlement
    contract for them. These are the wallets `mnode load --signed --owners N` signs for; their
    keys are derived from a public label, so anyone can spend what they hold."""
    node_home = require_home(home)
    try:
        config = node_home.config()
    except ConfigError as error:
        fail(str(error), EXIT_CONFIG)
    tokens = sorted({token for spec in config.markets if spec.signatures != "off"
                     for token in (spec.base_token, spec.quote_token) if token})  # fmt: skip
    if not config.settlement.contract or not tokens:
        fail("no settlement contract or no market taking signed orders in the config "
             "(`mnode chain deploy --test-tokens --market SYMBOL` sets them)",
             EXIT_CONFIG)  # fmt: skip
    if not rpc.startswith(("http://", "https://")):
        fail(f"--rpc: {rpc!r} is not a JSON-RPC URL (http:// or https://)", EXIT_USAGE)
    try:
        minter = relayer_key(node_home, SettlementConfig(key_file=str(key_file.resolve())))
    except ConfigError as error:
        fail(f"--key-file: {error}", EXIT_USAGE)
    try:
        w3 = connect(rpc)
        chain_id = w3.eth.chain_id
    except (ChainError, Web3Exception, OSError) as error:
        fail(str(error).splitlines()[0], EXIT_USAGE)
    if chain_id not in DEV_CHAIN_IDS:
        fail(f"chain {chain_id} is not a local test chain ({', '.join(map(str, DEV_CHAIN_IDS))})"
             ": the dev wallets' keys are public", EXIT_USAGE)  # fmt: skip
    funded = dev_wallets(wallets)
    try:
        fund_dev_wallets(w3, minter, config.settlement.contract, tokens, funded)
    except (ChainError, Web3Exception, ValueError, OSError) as error:
        fail(f"the chain at {rpc} refused the funding: {str(error).splitlines()[0]}",
             EXIT_REJECTED)  # fmt: skip
    result = {"chain_id": chain_id, "tokens": tokens, "settlement": config.settlement.contract,
              "wallets": [wallet.text for wallet in funded]}  # fmt: skip
    if as_json:
        print_json(result)
        return
    typer.echo(f"funded {len(funded)} dev wallets on chain {chain_id} with {len(tokens)} tokens"
               f" approved for {config.settlement.contract}")  # fmt: skip

"""config.toml: defaults, and one clear line for every mistake."""

from pathlib import Path

import pytest

from marketnode.node.core.markets import ConfigError
from marketnode.node.home.config import default_config_text, load_config, parse_config

MARKET = """
[[markets]]
symbol = "PUNK-ETH"
base = "PUNK"
quote = "ETH"
tick_size = "0.01"
lot_size = "1"
"""


def test_repository_config_is_the_packaged_default():
    root = Path(__file__).resolve().parents[1] / "config.toml"
    assert root.read_text("utf-8") == default_config_text()


def test_default_config_parses_with_every_key():
    config = parse_config(default_config_text(), "config.toml")
    assert [market.symbol for market in config.markets] == ["PUNK-ETH", "LAND-ETH", "GOLD-USDC"]
    assert config.store.sync == "full"
    assert config.store.batch_size == 10_000
    assert config.store.map_size == 256 << 20


def test_markets_alone_are_a_complete_config():
    config = parse_config(MARKET, "only-markets.toml")
    market = config.markets[0]
    assert market.stp == "cancel_newest"
    assert market.min_qty is None and market.max_qty is None and market.max_notional is None
    assert config.store.path == "data"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('tick_size = "0.01"', 'tick_size = "0"'), "market 'PUNK-ETH' (markets[0]): tick_size:"),
        (('tick_size = "0.01"', 'tick_size = "-1"'), "tick_size: must be a decimal > 0"),
        (('tick_size = "0.01"', 'tick_size = "1,5"'), "tick_size: must be a decimal > 0"),
        (('tick_size = "0.01"', "tick_size = 0.01"), 'write decimals as strings, e.g. "0.01"'),
        (('lot_size = "1"', 'lot_size = "1"\ncolour = "red"'), "colour: unknown key"),
        (('symbol = "PUNK-ETH"', 'symbol = "punk-eth"'), "symbol: must match [A-Z0-9]+-[A-Z0-9]+"),
        (('base = "PUNK"\n', ""), "base: missing (required)"),
        (('lot_size = "1"', 'lot_size = "1"\nstp = "sometimes"'), "stp: must be one of none,"),
        (('lot_size = "1"', 'lot_size = "1"\nmax_qty = "0.5"'), "max_qty: admits no quantity"),
    ],
)
def test_a_bad_market_names_file_market_and_key(change, expected):
    text = MARKET.replace(*change)
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "node.toml")
    message = str(raised.value)
    assert message.startswith("node.toml: market ")
    assert expected in message
    assert "\n" not in message


def test_duplicate_symbol_is_refused():
    with pytest.raises(ConfigError, match=r"markets\[1\]\): symbol: duplicate symbol 'PUNK-ETH'"):
        parse_config(MARKET + MARKET, "node.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[store]\nsync = "sometimes"', r"\[store\]: sync: must be one of full, no_metasync, none"),
        ("[store]\nbatch_size = 0", r"\[store\]: batch_size: must be a whole number"),
        ('[store]\nmap_size = "lots"', r"\[store\]: map_size: must be a size"),
        ('[store]\nmapsize = "1GiB"', r"\[store\]: mapsize: unknown key"),
        ("[analytics]\nnice = 20", r"\[analytics\]: nice: must be from 0 to 19"),
        ('[nodes]\nname = "x"', r"nodes: unknown key"),
        ("markets = 3", r"markets: must be an array of tables"),
        ("[[markets]\n", r"not valid TOML"),
    ],
)
def test_other_mistakes_are_one_line(text, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_config(text, "node.toml")


def test_sizes_take_units():
    config = parse_config('[store]\nmap_size = "2GiB"', "node.toml")
    assert config.store.map_size == 2 << 30
    assert parse_config("[store]\nmap_size = 4194304", "n").store.map_size == 4 << 20


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_a_message_limit_too_small_for_a_curve_handshake_is_refused():
    with pytest.raises(ConfigError, match=r"\[limits\]: max_message_bytes: must be at least 1024"):
        parse_config("[limits]\nmax_message_bytes = 256", "node.toml")


def test_the_connection_rate_may_be_zero_but_not_negative():
    assert parse_config("[limits]\naccept_rate_per_s = 0", "n").limits.accept_rate_per_s == 0
    with pytest.raises(ConfigError, match=r"accept_rate_per_s: must be a whole number >= 0"):
        parse_config("[limits]\naccept_rate_per_s = -1", "node.toml")


def test_the_engine_core_and_liquidity_tables_are_read_and_checked():
    config = parse_config(
        MARKET + '\n[engine]\ncore = "python"\n\n[liquidity.pool]\nstrategy = "amm"\n', "n.toml"
    )
    assert config.engine.core == "python"
    assert config.liquidity.instances == {"pool": {"strategy": "amm"}}
    assert parse_config(MARKET, "n.toml").engine.core == "auto"
    with pytest.raises(ConfigError, match=r"\[engine\]: core: must be one of auto, compiled"):
        parse_config(MARKET + '\n[engine]\ncore = "fast"\n', "n.toml")
    with pytest.raises(ConfigError, match=r"rate: unknown key .*or a \[liquidity.NAME\] table"):
        parse_config(MARKET + "\n[liquidity]\nrate = 1\n", "n.toml")

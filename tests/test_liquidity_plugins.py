"""Liquidity strategies are plugins of the `marketnode.liquidity` entry point group: the
built-in ones are found through marketnode's own entry points (nothing registers them in code),
a third-party one the same way, and `mnode plugins` lists them with their defaults."""

from __future__ import annotations

import json
import sys

from test_plugins import fresh_plugins, install_distribution, plugins

from marketnode.node.liquidity.config import parse_instances
from marketnode.plugins.host import LIQUIDITY, PluginHost, plugin_host

GRID = '''
from marketnode.plugins.hookspecs import declare_settings, hookimpl
from marketnode.plugins.quoting import BUY, SELL, Decision, Quote

liquidity_settings = declare_settings("liquidity_settings", "grid", {"width": 2})


@hookimpl
def desired_quotes(strategy, state, settings):
    if strategy != "grid" or state.mid is None:
        return None
    mid, width = int(state.mid), settings["width"]
    return Decision([Quote(BUY, mid - width, 1), Quote(SELL, mid + width, 1)])
'''


def test_the_built_in_strategies_come_from_entry_points():
    host = PluginHost.load(LIQUIDITY)
    described = {info.name: info for info in host.describe()}
    assert set(described) == {"amm", "market_maker"}
    for name, info in described.items():
        assert info.built_in and info.distribution == "marketnode"
        assert info.module == f"marketnode.plugins.{name}"
        assert info.hooks == ["desired_quotes", "liquidity_settings"]


def test_a_third_party_strategy_is_found_the_same_way(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_distribution(site, "gridmaker", "0.4", "[marketnode.liquidity]\ngrid = grid_maker\n",
                         {"grid_maker": GRID})  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    try:
        with fresh_plugins():
            table = {"strategy": "grid", "market": "PUNK-ETH", "peer": "p", "owner": "0x1",
                     "width": 5}  # fmt: skip
            [instance] = parse_instances({"g": table}, "test", plugin_host(LIQUIDITY))
            assert instance.settings == {"width": 5}
            listed = plugins("--json")
            assert listed.exit_code == 0, listed.stderr
            records = {(r["group"], r["name"]): r for r in json.loads(listed.stdout)}
            grid = records["liquidity", "grid"]
            assert (grid["distribution"], grid["version"], grid["built_in"]) == (
                "gridmaker", "0.4", False,
            )  # fmt: skip
            assert grid["settings"] == {"grid": {"width": 2}}
            assert records["liquidity", "amm"]["settings"]["amm"]["fee_bps"] == 30
            text = plugins().stdout.splitlines()
            assert "liquidity  grid               gridmaker 0.4 (grid_maker)" in text
            assert '    strategy = "grid" defaults: width = 2' in text
    finally:
        sys.modules.pop("grid_maker", None)

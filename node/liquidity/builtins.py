"""The liquidity plugins' host, with marketnode's own strategies in it.

The built-in strategies are meant to be listed under the `marketnode.liquidity` entry points of
marketnode's pyproject.toml, as the detectors and policies are; until they are, they are
registered here under the names those entry points give them (a name already loaded from an
entry point is left as it is, so nothing is registered twice).
"""

from __future__ import annotations

from marketnode.plugins import amm, market_maker
from marketnode.plugins.host import LIQUIDITY, PluginHost, plugin_host

BUILT_IN = {"amm": amm, "market_maker": market_maker}
"""Entry point name -> module: `amm = "marketnode.plugins.amm"` and so on."""


def liquidity_host() -> PluginHost:
    """The process's liquidity host, the built-in strategies registered."""
    host = plugin_host(LIQUIDITY)
    for name, module in BUILT_IN.items():
        if not host.has_plugin(name) and not host.is_registered(module):
            host.register(module, name=name)
    return host

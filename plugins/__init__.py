"""Plugins: pluggy hooks, built-in plugins registered through the same entry point group as
third-party ones (`marketnode.plugins`)."""

from __future__ import annotations

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "marketnode.plugins"


def plugin_manager() -> pluggy.PluginManager:
    """Every installed plugin, built-in or not, loaded from the entry point group."""
    manager = pluggy.PluginManager("marketnode")
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager

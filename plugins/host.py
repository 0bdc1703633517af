"""The plugin host: one pluggy manager per entry point group, loaded once per process, and the
one way its hooks are called.

A group's plugins are found through its entry point group alone; marketnode's own detectors,
policies and liquidity strategies are listed in its pyproject.toml exactly as a third-party
package lists its own.
Each process loads only the group it calls: the node the scaling policies, the analytics
process the detectors, the liquidity process the strategies, so that a detector's imports
never reach the matching process.

Hooks are called one implementation at a time (`PluginHost.call_each`) rather than through
pluggy's own call, so that a plugin that raises is logged and left out while the others still
answer: one broken third-party detector must not silence the built-in ones.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from marketnode.node.core.markets import ConfigError

from .hookspecs import IntegrityHooks, LiquidityHooks, ScalingHooks

log = logging.getLogger(__name__)

BUILT_IN_DISTRIBUTION = "marketnode"


@dataclass(frozen=True)
class PluginGroup:
    """One kind of plugin: where it is listed and which hooks it may implement."""

    name: str
    """Also the config.toml section of its plugins' settings tables (`[scaling.reactive]`)."""
    entry_points: str
    hooks: type
    settings_hook: str
    noun: str
    """What one settings table configures, for messages: "detector", "scaling policy"."""


INTEGRITY = PluginGroup(
    "integrity", "marketnode.integrity", IntegrityHooks, "integrity_settings", "detector"
)
SCALING = PluginGroup(
    "scaling", "marketnode.scaling", ScalingHooks, "scaling_settings", "scaling policy"
)
LIQUIDITY = PluginGroup(
    "liquidity", "marketnode.liquidity", LiquidityHooks, "liquidity_settings", "liquidity strategy"
)
"""Read by the liquidity process (node/liquidity), whose `[liquidity.NAME]` tables name
instances of a strategy rather than the strategy itself."""
GROUPS = (INTEGRITY, SCALING, LIQUIDITY)
"""The groups `mnode plugins` lists."""


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin as `mnode plugins` shows it."""

    group: str
    name: str
    module: str
    distribution: str | None
    """None for a plugin registered at run time rather than through an entry point."""
    version: str | None
    built_in: bool
    hooks: list[str]


def one_line(error: BaseException) -> str:
    """An exception as its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


class PluginHost(pluggy.PluginManager):
    """The plugins of one group, with the distribution each came from."""

    def __init__(self, group: PluginGroup) -> None:
        super().__init__("marketnode")
        self.group = group
        self.distributions: dict[str, importlib.metadata.Distribution] = {}
        self.add_hookspecs(group.hooks)

    @classmethod
    def load(cls, group: PluginGroup) -> PluginHost:
        """A new host with every plugin listed under the group's entry points. A plugin that
        cannot be imported or registered is a ConfigError naming it, in one line."""
        host = cls(group)
        for entry_point in importlib.metadata.entry_points(group=group.entry_points):
            if host.has_plugin(entry_point.name):  # its distribution is twice on sys.path
                continue
            try:
                host.register(entry_point.load(), name=entry_point.name)
            except Exception as error:
                source = entry_point.dist.name if entry_point.dist else entry_point.value
                raise ConfigError(
                    f"plugin {entry_point.name} ({source}, entry point group "
                    f"{group.entry_points}) cannot be loaded: {one_line(error)}"
                ) from None
            if entry_point.dist is not None:
                host.distributions[entry_point.name] = entry_point.dist
        return host

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register `plugin`, refusing hook wrappers: `call_each` calls plain functions."""
        for attribute in dir(plugin):
            options = self.parse_hookimpl_opts(plugin, attribute)
            if options and (options.get("hookwrapper") or options.get("wrapper")):
                raise pluggy.PluginValidationError(
                    plugin, f"{attribute}: hook wrappers are not supported"
                )
        return super().register(plugin, name)

    def call_each(
        self, hook: str, let_through: tuple[type[Exception], ...] = (), **arguments: Any
    ) -> Any:
        """Each implementation's answer to `hook`, in pluggy's order, None answers left out: a
        list, or for a `firstresult` hook the first answer (None if none), the later
        implementations not called. A plugin that raises is logged (group, name, hook, the
        error in one line) and left out, unless its error is one of `let_through` (a scan
        interrupted because its process stops)."""
        answers = (answer for _, answer in self.answers(hook, let_through, **arguments))
        if getattr(self.hook, hook).spec.opts.get("firstresult"):
            return next(answers, None)
        return list(answers)

    def answers(
        self, hook: str, let_through: tuple[type[Exception], ...] = (), **arguments: Any
    ) -> Iterator[tuple[str, Any]]:
        """(plugin name, answer) of each implementation of `hook` that answers, lazily: what
        `call_each` is made of."""
        for implementation in reversed(getattr(self.hook, hook).get_hookimpls()):
            wanted = {name: arguments[name] for name in implementation.argnames}
            try:
                answer = implementation.function(**wanted)
            except let_through:
                raise
            except Exception as error:
                log.error(
                    "%s plugin %s failed in %s: %s",
                    self.group.name, implementation.plugin_name, hook, one_line(error),
                )  # fmt: skip
                continue
            if answer is not None:
                yield implementation.plugin_name, answer

    def declared_settings(self) -> dict[str, dict[str, dict[str, Any]]]:
        """What each plugin declares through the group's settings hook: plugin name -> setting
        table name -> defaults."""
        return dict(self.answers(self.group.settings_hook))

    def describe(self) -> list[PluginInfo]:
        """Every registered plugin, by name: where it comes from and the hooks it implements."""
        found = []
        for name, plugin in sorted(self.list_name_plugin()):
            distribution = self.distributions.get(name)
            module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
            found.append(
                PluginInfo(
                    group=self.group.name,
                    name=name,
                    module=module,
                    distribution=distribution.name if distribution else None,
                    version=distribution.version if distribution else None,
                    built_in=distribution is not None
                    and distribution.name == BUILT_IN_DISTRIBUTION,
                    hooks=sorted(caller.name for caller in self.get_hookcallers(plugin) or []),
                )
            )
        return found


_hosts: dict[str, PluginHost] = {}
_hosts_lock = threading.Lock()


def plugin_host(group: PluginGroup) -> PluginHost:
    """The process's host of `group`, loaded at the first call."""
    with _hosts_lock:
        if group.name not in _hosts:
            _hosts[group.name] = PluginHost.load(group)
        return _hosts[group.name]


def forget_plugin_hosts() -> None:
    """Drop the loaded hosts, so that the next `plugin_host` loads its group again: for a test
    that installs a plugin, or registers one it must not leave behind."""
    with _hosts_lock:
        _hosts.clear()

"""A node known by its admin endpoint alone (`mnode dashboard --connect`)."""

from __future__ import annotations

import time

from ..home.keys import KeyPair
from .address import NodeAddress
from .admin import AdminClient

WILDCARD_HOSTS = ("*", "0.0.0.0", "::", "[::]")


class RemoteAddress:
    """A node known by its admin endpoint alone (`mnode dashboard --connect`): the other
    endpoints come from its `status`, asked again at most every `ttl_s` seconds so that a
    restart on other ports is followed. A wildcard host in them (the node binds every
    interface) is replaced by the admin endpoint's host."""

    def __init__(
        self, admin: str, server_key: bytes | None, key: KeyPair | None, ttl_s: float = 10.0
    ) -> None:
        self.probe = NodeAddress(orders="", market_data="", admin=admin, server_key=server_key)
        self.key = key
        self.ttl_s = ttl_s
        self._known: tuple[float, NodeAddress] | None = None

    def __call__(self) -> NodeAddress:
        now = time.monotonic()
        if self._known is not None and now - self._known[0] < self.ttl_s:
            return self._known[1]
        with AdminClient(self.probe, self.key, timeout_s=2.0) as client:
            endpoints = client.call("status")["endpoints"]
        host = _host_of(self.probe.admin)
        address = NodeAddress(
            orders=_reachable(endpoints["orders"], host),
            market_data=_reachable(endpoints["market_data"], host),
            admin=self.probe.admin,
            server_key=self.probe.server_key,
        )
        self._known = (now, address)
        return address


def _host_of(endpoint: str) -> str | None:
    transport, _, rest = endpoint.partition("://")
    return rest.rsplit(":", 1)[0] if transport == "tcp" else None


def _reachable(endpoint: str, host: str | None) -> str:
    if host is not None and _host_of(endpoint) in WILDCARD_HOSTS:
        return f"tcp://{host}:{endpoint.rsplit(':', 1)[1]}"
    return endpoint

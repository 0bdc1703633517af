"""The peer side of the protocol, in one import: what the CLI, the dashboard and the tools use
to talk to a node (docs/protocol.md describes the messages).

    from marketnode.node.client import Client, address_of_home
    with Client(address_of_home(home), key) as client:
        client.ping()

`Client` (peer.py) is blocking; `AsyncClient` (async_peer.py) is the same over asyncio;
`AdminClient` (admin.py) talks to the admin socket; `Subscriber` (subscriber.py) follows market
data; `address_of_home` and `NodeAddress` (address.py) say where a node is, `RemoteAddress`
(remote.py) finds it from its admin endpoint; `RoutedClient` (routed.py) sends each market's
commands to the node of a cluster serving it, following the directory it is handed.
May import: `core`, `protocol`, `home`.
"""

from __future__ import annotations

from .address import DEFAULT_TIMEOUT_S, ClientError, NodeAddress, address_of_home
from .admin import AdminClient
from .async_peer import AsyncClient
from .peer import Client, command_dict, encode_submit
from .remote import RemoteAddress
from .subscriber import Subscriber

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "AdminClient",
    "AsyncClient",
    "Client",
    "ClientError",
    "NodeAddress",
    "RemoteAddress",
    "Subscriber",
    "address_of_home",
    "command_dict",
    "encode_submit",
]

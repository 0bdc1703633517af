"""The wire protocol (docs/protocol.md): msgpack messages, their decoders, and the events as
peers see them (decimal text, not engine units).

Shared by the node's server and by every client, so it holds no sockets and no state.
May import: `core`.
"""

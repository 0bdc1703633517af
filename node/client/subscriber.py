"""Market data for some markets, with gap and restart detection (docs/protocol.md §11)."""

from __future__ import annotations

import zmq

from ..home.keys import KeyPair
from ..protocol.messages import MarketData, SnapshotReply, market_data_decoder, market_topic
from .address import NodeAddress, connect_socket


class Subscriber:
    """Market data for some markets, with gap detection: `gaps` counts missed messages."""

    def __init__(
        self,
        address: NodeAddress,
        key: KeyPair | None,
        markets: list[str],
        context: zmq.Context | None = None,
    ) -> None:
        self.socket = connect_socket(
            context or zmq.Context.instance(), zmq.SUB, address.market_data, address, key
        )
        for market in markets:
            self.socket.subscribe(market_topic(market))
        self.last_seq: dict[str, int] = {}
        self.runs: dict[str, int] = {}
        self.gaps = 0

    def close(self) -> None:
        self.socket.close(linger=0)

    def subscribe(self, market: str) -> None:
        """Follow one more market (a market moved to this node)."""
        self.socket.subscribe(market_topic(market))

    def unsubscribe(self, market: str) -> None:
        """Stop following a market (it moved away): its seqs here are forgotten."""
        self.socket.unsubscribe(market_topic(market))
        self.last_seq.pop(market, None)
        self.runs.pop(market, None)

    def receive(self, timeout_ms: int) -> MarketData | None:
        """The next message, or None on time-out. A jump in a topic's `seq` counts as a gap."""
        if not self.socket.poll(timeout_ms):
            return None
        _topic, payload = self.socket.recv_multipart()
        message = market_data_decoder.decode(payload)
        last = self.last_seq.get(message.market)
        if self.runs.get(message.market, message.run) != message.run:
            self.gaps += 1  # the node restarted: what happened meanwhile is unknown
        elif last is not None and message.seq != last + 1:
            self.gaps += max(1, message.seq - last - 1)
        self.last_seq[message.market] = message.seq
        self.runs[message.market] = message.run
        return message

    def resynchronised(self, snapshot: SnapshotReply) -> None:
        """Continue from a snapshot: messages up to its seq are already in it."""
        self.last_seq[snapshot.market] = snapshot.seq
        self.runs[snapshot.market] = snapshot.run

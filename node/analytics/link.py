"""The link between the node and its analytics process: typed messages over one ipc socket.

The node (a DEALER) asks; the analytics process (a ROUTER) answers every request that carries a
`token` with one `Answer` of that token, and pushes `AlertsPush` whenever an integrity scan finds
something new. The node picks the tokens (1, 2, 3, ... per run) and keeps what each one is for:
an operator's admin request to relay the answer to, or one of its own requests (the periodic
lag, a metrics rollup, the scaling history at start-up). Shared by both processes, so it holds
no sockets and imports nothing else of marketnode.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Hello(msgspec.Struct, tag="hello", tag_field="kind"):
    """The node's first message: where to push alerts. Not answered."""


class LagRequest(msgspec.Struct, tag="lag", tag_field="kind"):
    """How far behind the journal the analytics store is (result: `lag` of the service)."""

    token: int


class SqlRequest(msgspec.Struct, tag="sql", tag_field="kind"):
    """One read-only query (result: `columns` and `rows`)."""

    token: int
    query: str
    params: list[Any] | None = None


class HistoryRequest(SqlRequest, tag="history", tag_field="kind"):
    """The node's start-up query for the metrics rollups of earlier runs (the scaling
    history); answered like a `SqlRequest`."""


class ExportRequest(msgspec.Struct, tag="export", tag_field="kind"):
    """Write the tables as Parquet files under `path` (result: `path` and `tables`)."""

    token: int
    path: str


class AckRequest(msgspec.Struct, tag="ack", tag_field="kind"):
    """A reviewer's label for an integrity alert (result: `id` and `label`)."""

    token: int
    alert: str | None = None
    label: str | None = None


class MetricsRollup(msgspec.Struct, tag="metrics", tag_field="kind"):
    """One minute of the node's metrics for the `metrics` table (result: rows stored)."""

    token: int
    rows: list[list[Any]]


class Answer(msgspec.Struct, tag="answer", tag_field="kind", omit_defaults=True):
    """The answer to the request of `token`: its result, or why it failed."""

    token: int
    ok: bool
    result: Any = None
    error: str | None = None


class AlertsPush(msgspec.Struct, tag="alerts", tag_field="kind"):
    """New integrity alerts, for the node to publish on the market-data socket."""

    alerts: list[dict[str, Any]]


TokenRequest = LagRequest | SqlRequest | HistoryRequest | ExportRequest | AckRequest | MetricsRollup
"""The requests that are answered (by an `Answer` of their token)."""
LinkRequest = Hello | TokenRequest
LinkAnswer = Answer | AlertsPush

link_encoder = msgspec.msgpack.Encoder()
request_decoder = msgspec.msgpack.Decoder(LinkRequest)
answer_decoder = msgspec.msgpack.Decoder(LinkAnswer)

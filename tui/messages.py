"""What the dashboard's workers post to it; the handlers of these only render.

Each data source has a message of its own for its answer, named in the source table
(tui/sources.py), so a handler or a panel gets the answer under the name of what it is."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


class Fetched(Message):
    """A source's answer from the node: one subclass per source, made with the answer alone."""


@dataclass
class StatusFetched(Fetched):
    """The node's identity, endpoints and sequence (admin `status`)."""

    status: dict


@dataclass
class MetricsFetched(Fetched):
    """The node's counters and latest sample; `history` holds every per-second sample the
    dashboard has seen (admin `metrics`)."""

    metrics: dict


@dataclass
class PeersFetched(Fetched):
    """The registered peers, each as the node describes it (admin `peers`)."""

    peers: list[dict]


@dataclass
class MarketsFetched(Fetched):
    """Each market's top of book and state (admin `markets`)."""

    markets: list[dict]


@dataclass
class BookFetched(Fetched):
    """The watched market's depth ladder (admin `book`)."""

    book: dict


@dataclass
class TapeFetched(Fetched):
    """The watched market's trades over one refresh period: `market`, `time`, `trades`."""

    tape: dict


@dataclass
class MarketStatsFetched(Fetched):
    """Each market's last 24 hours from the analytics store: a SQL result (columns, rows)."""

    result: dict


@dataclass
class AlertsFetched(Fetched):
    """The integrity findings from the analytics store: a SQL result (columns, rows)."""

    result: dict


@dataclass
class SettlementProgressFetched(Fetched):
    """The analytics store's copy of a relayer's progress (for a node with no relayer of its
    own): a SQL result (columns, rows) of tui/panels/settlement.py's `PROGRESS_QUERY`."""

    result: dict


@dataclass
class ScaleFetched(Fetched):
    """The scaling recommendations and the load outlook (admin `scale`)."""

    scale: dict


@dataclass
class ClusterFetched(Fetched):
    """The cluster the dashboard's node is a member of: the market directory (nodes with
    their endpoints, markets with their node and any move under way) and each node's load
    from its own `status` and `metrics`, or why it did not answer; `folder` None when the
    node is in no cluster (tui/sources.py `NodeReader.cluster`)."""

    cluster: dict


@dataclass
class EvidenceFetched(Message):
    """The trades an alert names, asked once when its evidence is opened."""

    alert: str
    result: dict


@dataclass
class EvidenceUnavailable(Message):
    """An alert's trades could not be had, and why."""

    why: str


@dataclass
class SourceFailed(Message):
    """A source's request came to nothing, and why."""

    source: str
    why: str


class Unreachable(SourceFailed):
    """The node did not answer a source's request: it is down, restarting or unreachable."""


class Refused(SourceFailed):
    """The node answered, with an error (analytics off, say): the node is there."""


@dataclass
class ActionDone(Message):
    """An operator action (`--admin`) carried out, or refused."""

    text: str
    ok: bool

"""What the node measures about itself.

The hot loop only bumps plain integers and log-bucketed histograms held here (one writer, no
locks). Everything else, reading the clock of other threads, asking psutil, rates and
percentiles, happens in `sampler.MetricsSampler`, once a second, off the matching thread.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

SUB_BUCKETS = 8
"""Buckets per doubling: each is at most 1/8 (12.5%) of its value wide, so a percentile read
from the buckets is within that of the true one."""
BUCKETS = SUB_BUCKETS * 64


class Histogram:
    """Counts of non-negative integers (microseconds, commands) in log-spaced buckets.

    Recording is a handful of integer operations; percentiles walk the buckets; two histograms
    merge by adding their counts, so per-second ones add up to any window. Values below 16 have
    a bucket each; above, bucket `8 * shift + (value >> shift)` with `shift = bit_length - 4`.
    """

    __slots__ = ("count", "counts", "largest", "total")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.total = 0
        self.largest = 0

    def record(self, value: int) -> None:
        shift = value.bit_length() - 4
        if shift < 0:
            shift = 0
        self.counts[SUB_BUCKETS * shift + (value >> shift)] += 1
        self.count += 1
        self.total += value
        if value > self.largest:
            self.largest = value

    def merge(self, other: Histogram) -> None:
        counts = self.counts
        for index, count in enumerate(other.counts):
            if count:
                counts[index] += count
        self.count += other.count
        self.total += other.total
        self.largest = max(self.largest, other.largest)

    def percentile(self, share: float) -> int:
        """The value below which `share` (0 to 1) of the recorded values lie: the upper bound of
        the bucket holding that rank (never more than the largest value seen); 0 when empty."""
        if not self.count:
            return 0
        rank = max(1, round(share * self.count))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(bucket_upper(index), self.largest)
        return self.largest

    def summary(self, scale: float = 1.0, digits: int = 3) -> dict[str, float]:
        """p50, p90, p99 and max divided by `scale` (1000 turns microseconds into ms)."""
        return {
            "p50": round(self.percentile(0.50) / scale, digits),
            "p90": round(self.percentile(0.90) / scale, digits),
            "p99": round(self.percentile(0.99) / scale, digits),
            "max": round(self.largest / scale, digits),
            "count": self.count,
        }


def bucket_upper(index: int) -> int:
    """The largest value bucket `index` holds."""
    if index < 2 * SUB_BUCKETS:
        return index
    shift = index // SUB_BUCKETS - 1
    mantissa = index - SUB_BUCKETS * shift
    return ((mantissa + 1) << shift) - 1


@dataclass
class LoopMetrics:
    """What the matching thread counts as it goes; the sampler reads and differences them.

    Per-market counts are keyed by symbol; volume is in the market's lots (the sampler turns
    it into decimal text). Histograms are swapped for fresh ones by the sampler each second (an
    attribute assignment, atomic under the GIL), so each holds one second's values.
    """

    started: float = 0.0
    messages: int = 0
    commands: int = 0
    batches: int = 0
    saturated_batches: int = 0
    """Batches that stopped at their budget with more waiting: the loop is behind."""
    busy_ns: int = 0
    """Time the loop spent serving batches (decode, match, commit, answer, publish)."""
    answers_dropped: int = 0
    reports_dropped: int = 0
    orders: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    trades: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    volume_lots: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    events: Counter = field(default_factory=Counter)
    """Events by their class (Counter.update over a reply's events is one C call)."""
    rejects: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    ack_latency_us: Histogram = field(default_factory=Histogram)
    """From a message's receipt to its reply leaving, after the commit."""
    batch_commands: Histogram = field(default_factory=Histogram)
    commit_us: Histogram = field(default_factory=Histogram)

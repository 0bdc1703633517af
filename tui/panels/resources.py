"""Resources: CPU per core and per node thread, memory, disk, the LMDB map's use and the
DuckDB file's size, from the node's latest per-second sample."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from ..messages import MetricsFetched
from .base import Panel, bar

BAR_CELLS = 30
MIB = 2**20
GIB = 2**30


class ResourcesPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("waiting for the node…", id="resources-text", classes="label")

    def show_metrics(self, fetched: MetricsFetched) -> None:
        latest = fetched.metrics.get("latest")
        if latest is None:
            return
        process, host = latest["process"], latest["host"]
        text = Text()
        text.append("host CPU per core\n", style="bold")
        for core, percent in enumerate(host["cpu_percent"]):
            _meter(text, f"core {core}", percent / 100, f"{percent:.0f}%")
        text.append("\nnode process ", style="bold")
        text.append(f"{process['cpu_percent']}% CPU, {process['rss_bytes'] / MIB:,.0f} MiB "
                    f"resident, {process['open_files']} open files\n")  # fmt: skip
        for thread, percent in sorted(process["threads_cpu_percent"].items()):
            _meter(text, thread, percent / 100, f"{percent}%")
        analytics = process["analytics_cpu_percent"]
        text.append(f"analytics process: {'off' if analytics is None else f'{analytics}% CPU'}\n")
        text.append("\nmemory and storage\n", style="bold")
        memory = host["memory_percent"] / 100
        _meter(text, "host memory", memory,
               f"{host['memory_percent']}% used, {host['memory_available_bytes'] / GIB:.1f} GiB "
               "available")  # fmt: skip
        disk_used = 1 - host["disk_free_bytes"] / host["disk_total_bytes"]
        _meter(text, "disk", disk_used,
               f"{host['disk_free_bytes'] / GIB:.1f} of {host['disk_total_bytes'] / GIB:.1f} GiB "
               "free")  # fmt: skip
        lmdb_used, lmdb_map = latest["lmdb_used_bytes"], latest["lmdb_map_bytes"]
        _meter(text, "LMDB map", lmdb_used / lmdb_map,
               f"{lmdb_used / MIB:,.1f} of {lmdb_map / MIB:,.0f} MiB (it grows)")  # fmt: skip
        size = latest["duckdb_bytes"]
        text.append(f"{'DuckDB file':>16}  {'off' if size is None else f'{size / MIB:,.1f} MiB'}\n")
        self.query_one("#resources-text", Static).update(text)


def _meter(text: Text, name: str, fraction: float, reading: str) -> None:
    style = "red" if fraction >= 0.9 else "yellow" if fraction >= 0.7 else "green"
    text.append(f"{name:>16}  ")
    text.append_text(bar(fraction, BAR_CELLS, style))
    text.append(f"  {reading}\n")

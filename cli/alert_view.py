"""One alert for a person on a terminal (`mnode alerts show`): a heading, then each field and
the evidence indented by depth, long values wrapped at words to the terminal's width, and the
trade list cut to its first seqs (JSON, with --json or for a pipe, keeps them all)."""

from __future__ import annotations

import textwrap
from typing import Any

SHOWN_TRADES = 7
"""Seqs shown of an alert's trades before "…" (the count comes first)."""


def render_alert(record: dict[str, Any], width: int) -> str:
    """The alert `record` (as `alerts show --json` prints it) as lines no wider than `width`."""
    heading = "  ".join(
        str(record[key]) for key in ("severity", "detector", "market", "time") if record.get(key)
    )
    lines = textwrap.wrap(f"alert {record['id']}  {heading}", width, subsequent_indent="  ")
    values = {
        "wallets": ", ".join(record["wallets"]),
        "trades": _trades_text(record["trades"]),
        "wash_volume": record.get("wash_volume"),
        "label": record.get("label") or "(not reviewed)",
    }
    lines += _mapping(values, 1, width)
    lines.append("  evidence")
    lines += _mapping(record["evidence"], 2, width)
    return "\n".join(lines)


def _trades_text(trades: list[int]) -> str:
    shown = ", ".join(str(seq) for seq in trades[:SHOWN_TRADES])
    return f"{len(trades)}: {shown}{', …' if len(trades) > SHOWN_TRADES else ''}"


def _mapping(values: dict[str, Any], depth: int, width: int) -> list[str]:
    """Each entry at `depth` (two spaces a level), values lined up after the longest name: a
    mapping as its entries one level deeper, a list joined with commas, text wrapped at words
    (its further lines under the value's first column, or under the name when that leaves
    less than half the width)."""
    indent = "  " * depth
    names = max((len(str(name)) for name in values), default=0)
    lines = []
    for name, value in values.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{name}")
            lines += _mapping(value, depth + 1, width)
            continue
        text = ", ".join(str(item) for item in value) if isinstance(value, list) else value
        head = f"{indent}{name!s:<{names}}  "
        wrapped = textwrap.wrap(
            "" if text is None else str(text),
            width,
            initial_indent=head,
            subsequent_indent=" " * len(head) if len(head) < width // 2 else indent + "    ",
        )
        lines += wrapped or [head.rstrip()]
    return lines

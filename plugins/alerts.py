"""Alerts: what an integrity detector found, with the evidence a reviewer needs."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import msgspec

SEVERITIES = ("low", "medium", "high")


class Alert(msgspec.Struct, kw_only=True):
    """One finding: the wallets and trades (by seq) involved, why, and the volume at stake."""

    detector: str
    severity: str
    market: str
    wallets: list[str]
    trades: list[int]
    evidence: dict[str, Any]
    wash_volume: str
    time: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            basis = f"{self.detector}|{self.market}|{sorted(self.trades)}".encode()
            self.id = hashlib.blake2b(basis, digest_size=8).hexdigest()


def decimal_text(value: Decimal) -> str:
    """Plain decimal text without trailing zeros: "4", "400", "0.25" (never "4E+2")."""
    return format(value.normalize(), "f")

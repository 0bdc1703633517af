"""The Vyper contracts' compiled artifacts (ABI and bytecode), checked into `artifacts/` so
that a node deploys and calls the contracts without compiling anything; and the rebuild
that regenerates them from `contracts/*.vy` (`python -m marketnode.node.chain.contracts`).

The artifacts are what runs on chain, so a test recompiles the sources and requires the
checked-in files to match: they can never drift from the source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "contracts"
ARTIFACTS = HERE / "artifacts"
CONTRACT_NAMES = ("Settlement", "ERC20", "ERC721")
COMPILER = "vyper 0.4.3"


class SkipReason(IntEnum):
    """Why `Settlement.settle` skipped a trade (the `reason` of its `TradeSkipped` event);
    the same numbers as the contract's constants."""

    ORDERS_MISMATCHED = 1
    """The two orders do not make a trade: sides, tokens, token id or scale differ, a zero
    fill, an ERC-721 fill other than one token, or a lot or tick worth out of bounds."""
    ALREADY_SETTLED = 2
    """The trade id settled before: a replay."""
    PRICE_OUTSIDE_LIMIT = 3
    EXPIRED = 4
    NONCE_BELOW_MINIMUM = 5
    """The owner raised the minimum nonce past the order's: a bulk cancel."""
    CANCELLED = 6
    OVERFILL = 7
    """The fill would take the order past its quantity."""
    FEE_OVER_MAX = 8
    BAD_SIGNATURE = 9
    BUYER_TRANSFER_FAILED = 10
    """The buyer's quote could not be pulled: balance, approval, or the token refused."""
    SELLER_TRANSFER_FAILED = 11
    """The seller's base could not be pulled: balance, approval, or the token refused."""
    EXECUTION_FAILED = 12
    """The transfers failed without a reason: they ran out of gas."""


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: what `web3.eth.contract(abi=..., bytecode=...)` takes."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str

    def to_json(self) -> str:
        document = {"contract": self.name, "compiler": COMPILER, "abi": self.abi,
                    "bytecode": self.bytecode}  # fmt: skip
        return json.dumps(document, indent=1, sort_keys=True) + "\n"


def artifact_path(name: str) -> Path:
    return ARTIFACTS / f"{name}.json"


@cache
def load(name: str) -> Artifact:
    """The checked-in artifact of contract `name` (one of CONTRACT_NAMES)."""
    if name not in CONTRACT_NAMES:
        raise ValueError(f"no contract {name!r}: the contracts are {', '.join(CONTRACT_NAMES)}")
    document = json.loads(artifact_path(name).read_text())
    return Artifact(name, document["abi"], document["bytecode"])


def compile_contract(name: str) -> Artifact:
    """Compiles `contracts/<name>.vy` with the installed vyper (slow: about 2 s for the
    settlement contract; the node never needs it, the artifacts are checked in)."""
    import vyper  # only here: compiling is a build step, not something a node does

    if vyper.__version__ != COMPILER.split()[1]:
        raise RuntimeError(f"the artifacts are built with {COMPILER}, not {vyper.__version__}")
    path = SOURCES / f"{name}.vy"
    output = vyper.compile_code(
        path.read_text(), contract_path=path.name, output_formats=["abi", "bytecode"]
    )
    return Artifact(name, output["abi"], output["bytecode"])


def rebuild() -> list[Path]:
    """Recompiles every contract and rewrites its artifact; returns the files written."""
    written = []
    for name in CONTRACT_NAMES:
        path = artifact_path(name)
        path.write_text(compile_contract(name).to_json())
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in rebuild():
        print(f"wrote {written_path}")

"""How long a small synced LMDB commit takes on this disk (the floor of acknowledgement latency).

    python bench/lmdb_commit.py [--commits N] [--puts K]

Commits N transactions of K small puts each, with the node's default durability
(`sync = "full"`: data and metadata synced) and with `no_metasync`, and prints percentiles.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lmdb


def measure(path: Path, commits: int, puts: int, metasync: bool) -> list[float]:
    env = lmdb.open(str(path), map_size=1 << 28, sync=True, metasync=metasync)
    timings = []
    try:
        for commit in range(commits):
            started = time.perf_counter()
            with env.begin(write=True) as txn:
                for put in range(puts):
                    txn.put(f"{commit}-{put}".encode(), b"x" * 60)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        env.close()
    return sorted(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1500)
    parser.add_argument("--puts", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mnode-lmdb-") as folder:
        for label, metasync in (("full", True), ("no_metasync", False)):
            ms = measure(Path(folder) / label, args.commits, args.puts, metasync)
            pick = {q: ms[min(len(ms) - 1, int(q * len(ms)))] for q in (0.5, 0.9, 0.99, 0.999)}
            print(
                f"{label:<12} ms per commit: p50 {pick[0.5]:.2f}  p90 {pick[0.9]:.2f}  "
                f"p99 {pick[0.99]:.2f}  p99.9 {pick[0.999]:.2f}  max {ms[-1]:.2f}"
            )


if __name__ == "__main__":
    main()

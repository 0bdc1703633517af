"""Profile the engine on the benchmark flow: where does an op's time go?

    python bench/profile_engine.py [--ops N] [--seed S] [--top K]

Runs the same seeded flow as `mnode bench engine` in memory under cProfile and prints the
functions by own time. cProfile's overhead inflates every call, so read the shares, not the
absolute times; `mnode bench engine` gives the real rate.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

from marketnode.node.core.engine import Engine
from marketnode.node.home.config import default_markets
from marketnode.node.tools.flow import generate_flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    markets = default_markets()
    commands = list(generate_flow(args.ops, seed=args.seed, markets=markets))
    batches = [commands[start : start + 1000] for start in range(0, len(commands), 1000)]
    engine = Engine(markets)
    out: list = []

    def run() -> None:
        for batch in batches:
            engine.process_batch(batch, out)
            engine.take_changes()
            out.clear()

    profiler = cProfile.Profile()
    profiler.runcall(run)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()

"""Instructions per command of the engine on the benchmark flow, counted by valgrind.

    python bench/engine_instructions.py [--ops N] [--seed S] [--batch B] [--json]

Runs the first N commands of `mnode bench engine`'s seeded flow through the compiled core in
memory, in batches of B, under `valgrind --tool=callgrind`, and counts only the instructions
executed inside its `process_batch` (generating the flow and starting Python are left out). On a
machine whose neighbours make the clock swing by 2x, a count of instructions is the same from
run to run, so a change to the compiled core can be judged by it where timing cannot; it leaves
out what instructions do not show (cache misses, branch mispredictions), so `mnode bench engine`
stays the measure of speed. Needs valgrind (Debian's package `valgrind`) and the compiled core:
the Python engine's `process_batch` is interpreted, with no C function of its own to count in.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ENTRY = "*CompiledEngine_3process_batch*"
"""The C function Cython makes of `CompiledEngine.process_batch`: what callgrind counts inside."""


def run_flow(ops: int, seed: int, batch: int) -> None:
    """The measured part, run inside valgrind: the flow's batches through the engine."""
    from marketnode.node.core.engine import Engine
    from marketnode.node.home.config import default_markets
    from marketnode.node.tools.flow import generate_flow

    markets = default_markets()
    commands = list(generate_flow(ops, seed=seed, markets=markets))
    engine = Engine(markets)
    if getattr(engine, "core", "python") != "compiled":
        sys.exit("engine_instructions: the compiled core is not built here")
    out: list = []
    for start in range(0, ops, batch):
        engine.process_batch(commands[start : start + batch], out)
        engine.take_changes()
        out.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        run_flow(args.ops, args.seed, args.batch)
        return
    if shutil.which("valgrind") is None:
        sys.exit("engine_instructions: valgrind is not installed (apt install valgrind)")
    with tempfile.TemporaryDirectory(prefix="mnode-instructions-") as folder:
        command = [
            "valgrind", "--tool=callgrind", f"--toggle-collect={ENTRY}",
            f"--callgrind-out-file={Path(folder) / 'callgrind.out'}",
            sys.executable, __file__, "--inside", "--ops", str(args.ops), "--seed",
            str(args.seed), "--batch", str(args.batch),
        ]  # fmt: skip
        environment = {**os.environ, "MARKETNODE_CORE": "compiled"}
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"engine_instructions: the run failed: {done.stderr.strip()[-600:]}")
    instructions = int(found.group(1))
    report = {
        "ops": args.ops,
        "seed": args.seed,
        "batch": args.batch,
        "instructions": instructions,
        "instructions_per_command": round(instructions / args.ops),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"compiled core, {args.ops:,} commands (seed {args.seed}, batches of "
              f"{args.batch:,}): {instructions:,} instructions, "
              f"{report['instructions_per_command']:,} per command")  # fmt: skip


if __name__ == "__main__":
    main()

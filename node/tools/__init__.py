"""Tools the CLI runs, not the node: the demo, order-flow and wash-trade generators, the load
generator, benchmarks and the integrity and scaling evaluations.

May import anything of marketnode; nothing outside `tools` (other than the CLI commands that run
them) imports `tools`.
"""

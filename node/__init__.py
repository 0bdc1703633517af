"""The marketnode node, laid out along its data path.

A peer's command travels `server` (sockets, admission, the loop) -> `core` (validation,
matching: no I/O) -> `store` (the LMDB journal and books, committed before any answer) ->
`protocol` (the answer and market data on the wire) -> `analytics` (DuckDB, integrity
detectors, in a process of its own) and `ops` (metrics and scaling advice, off the hot path).
`home` holds a node's files and configuration, `client` is the peer side of the protocol and
`tools` the demo, load generators, benchmarks and evaluations that only the CLI runs. Each
subpackage's docstring says what it owns and what it may import; tests/test_layout.py checks it.
"""

__version__ = "0.1.0"

"""The running node: the one matching thread and everything on its path.

Sockets and CURVE/ZAP, decoding of envelopes, admission (peer, rate, limits), the batch loop
that applies and commits, answers and execution reports, market data, the admin socket, and the
links to the child processes it supervises. May import: `core`, `store`, `protocol`, `home`,
`ops`, `analytics` (to start and talk to its process, never its DuckDB), and `marketnode.plugins`.
"""

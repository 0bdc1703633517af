"""Analytics off the hot path: the journal follower that fills DuckDB, the analytics process
the node starts beside itself, and the integrity scans over its tables.

Only the analytics process writes the DuckDB file. May import: `core`, `store`, `home`,
`protocol` and `marketnode.plugins`.
"""

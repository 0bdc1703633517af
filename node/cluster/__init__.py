"""A cluster of nodes: each the single writer of its markets, and a market directory saying
which node serves which market, kept in NATS JetStream key-value (docs/cluster.md says why).

`directory` is the directory's content (nodes with their endpoints and server key, markets with
their node) and its store in a JetStream bucket: read, compare-and-set on its version, watch.
`servers` starts local NATS servers (JetStream on, clustered), `processes` starts and stops
processes by pid, `local` is the local cluster of `mnode cluster up` (its folder, its nodes),
`moving` a market's move from node to node, `scaling` the sharding advice as moves, and
`following` the directory's changes handed to a routed client.
May import: `core`, `protocol`, `home`, `client` (the moves talk to nodes as their operator does).
"""

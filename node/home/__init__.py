"""A node's home: its folder layout, config.toml (parsed and checked), CURVE keys, the peer
allowlist, and plugin settings tables.

Files an operator edits, read the same way by the node, the CLI and the dashboard.
May import: `core` (market specs and the configuration error).
"""

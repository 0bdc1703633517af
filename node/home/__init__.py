"""A node's home: its folder layout, config.toml (parsed and checked), CURVE keys and the peer
allowlist. Plugin settings tables are read here as written; the plugin host
(marketnode.plugins.settings) merges them over each plugin's defaults.

Files an operator edits, read the same way by the node, the CLI and the dashboard.
May import: `core` (market specs and the configuration error).
"""

"""The peer side of the protocol: synchronous and asyncio clients, the admin client, the
market-data subscriber, and how to find a node (its home's runtime file or an endpoint).

What the CLI, the dashboard and the tools use to talk to a node. May import: `core`,
`protocol`, `home`.
"""

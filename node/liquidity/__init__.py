"""Automated liquidity: the host that runs liquidity strategies (the `marketnode.liquidity`
plugins) as ordinary peers of the node, and the process that runs the configured instances.

Each instance (`[liquidity.NAME]`, parsed in `config`) is a peer with its own CURVE key and
owner, talking to the node through `node.client` like any other: the node's limits, self-trade
prevention and journal apply to it, and it never touches the matching thread. `ledger` keeps an
instance's inventory, PnL, volatility and flow from its fills; `plan` diffs the quotes a
strategy wants against what rests; `quoter` ties them to the client; `service` is the process
(`python -m marketnode.node.liquidity.service HOME`, supervised by the node through
node/server/liquidity_link.py). May import: `core`, `protocol`, `home`, `client`, `plugins`.
"""

"""Settlement on a chain: EIP-712 signed orders (their typed data, digest and signature
checks), the Vyper contracts and their compiled artifacts, and the relayer that turns the
journal's trades into settlement transactions.

Signature checks run at the edge in worker processes, never on the matching thread.
May import: `core`, `store`, `home`, `protocol` and `marketnode.plugins`.
"""
